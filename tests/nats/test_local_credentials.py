"""The credentials file of a local runtime: written 0600, found the documented ways, and
used only for the server it names."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from actorq import ConfigError
from actorq.nats.local_credentials import (
    LocalCredentials,
    credentials_path,
    find_credentials,
    read_credentials,
    resolve_local,
    write_credentials,
)

CREDS = LocalCredentials(
    url=["nats://127.0.0.1:4333"], user="actorq", password="pw", signing_key="ab" * 32
)


def test_the_file_is_written_for_its_owner_only_and_read_back(tmp_path: Path) -> None:
    path = credentials_path(tmp_path / "data")
    write_credentials(path, CREDS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_credentials(path) == CREDS
    assert read_credentials(tmp_path / "none.json") is None
    assert "pw" not in repr(CREDS)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="delete it"):
        read_credentials(path)


def test_the_file_is_found_by_variable_by_data_dir_or_up_the_tree(tmp_path: Path) -> None:
    write_credentials(credentials_path(tmp_path / "project" / ".actorq" / "nats"), CREDS)
    deep = tmp_path / "project" / "src" / "app"
    deep.mkdir(parents=True)
    assert find_credentials({}, cwd=deep) == CREDS
    assert find_credentials({}, cwd=tmp_path) is None
    elsewhere = credentials_path(tmp_path / "other")
    write_credentials(elsewhere, LocalCredentials(url=["nats://127.0.0.1:1"]))
    assert find_credentials({"ACTORQ_NATS_DATA_DIR": str(tmp_path / "other")}, cwd=deep) == (
        LocalCredentials(url=["nats://127.0.0.1:1"])
    )
    assert find_credentials({"ACTORQ_CREDENTIALS_FILE": str(elsewhere)}, cwd=deep) is not None
    # Set empty: never look.
    assert find_credentials({"ACTORQ_CREDENTIALS_FILE": ""}, cwd=deep) is None


def test_secrets_are_used_only_for_the_server_the_file_names(tmp_path: Path) -> None:
    path = credentials_path(tmp_path)
    write_credentials(path, CREDS)
    env = {"ACTORQ_CREDENTIALS_FILE": str(path)}
    key = bytes.fromhex("ab" * 32)
    # No URL: the file's, with its password and key.
    assert resolve_local(None, {}, None, environ=env) == (
        ["nats://127.0.0.1:4333"], {"user": "actorq", "password": "pw"}, key
    )
    # The same server by another loopback name.
    _, options, signing = resolve_local("nats://localhost:4333", {}, None, environ=env)
    assert (options["password"], signing) == ("pw", key)
    # Another server: nothing from the file.
    for other in ("nats://127.0.0.1:4222", "nats://10.0.0.5:4333"):
        assert resolve_local(other, {}, None, environ=env) == ([other], {}, None)
    # What the caller gives wins.
    given = resolve_local(None, {"token": "t"}, b"k" * 32, environ=env)
    assert given[1:] == ({"token": "t"}, b"k" * 32)
