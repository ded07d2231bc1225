"""A client that loads the runtime's config signs with the runtime's key: the one
[security] names, else the one `actorq up` generated into the data dir."""

from __future__ import annotations

from pathlib import Path

from actorq.config.schema import loads_config
from actorq.nats.local_credentials import LocalCredentials, credentials_path, write_credentials
from actorq.wire.codec import Signer


def test_config_signer_falls_back_to_the_generated_key_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = loads_config(f'[nats]\ndata_dir = "{data}"\n', check_imports=False)
    assert config.signer() is None  # not started yet: no key anywhere
    write_credentials(credentials_path(data), LocalCredentials(signing_key="ab" * 32))
    generated = config.signer()
    assert generated is not None
    assert generated.sign(b"x") == Signer(bytes.fromhex("ab" * 32)).sign(b"x")
    named = loads_config(
        f'[security]\nsigning_key_env = "K"\n[nats]\ndata_dir = "{data}"\n',
        environ={"K": "cd" * 32},
        check_imports=False,
    )
    signer = named.signer({"K": "cd" * 32})
    assert signer is not None
    assert signer.sign(b"x") == Signer(bytes.fromhex("cd" * 32)).sign(b"x")
