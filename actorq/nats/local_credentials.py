"""The credentials file ``actorq up`` keeps in its data dir, and how local clients find it.

On its first start ``actorq up`` generates what makes its runtime private: a NATS user
and password for the embedded server, and an HMAC key that signs every pickled job. It
keeps them, with the URL clients should use, in ``<data_dir>/credentials.json``
(mode 0600, so only the user who runs the runtime can read it), and reuses them on
every later start::

    {"url": ["nats://127.0.0.1:4222"], "user": "actorq", "password": "...",
     "signing_key": "9f1c..."}

A client on the same machine (the sync helper, :func:`~actorq.open_client`, the CLI,
the examples) that is given no credentials looks for that file, first match wins:

1. ``$ACTORQ_CREDENTIALS_FILE`` (a path; set it empty to never look);
2. ``$ACTORQ_NATS_DATA_DIR/credentials.json`` (the variable that moves the data dir of
   ``actorq up`` also tells clients where it is);
3. ``.actorq/nats/credentials.json`` in the current directory or one of its parents
   (the default data dir, relative to where ``actorq up`` runs).

The file's secrets are used only for the server it names: a client given another URL
never sends them anywhere else. A client given no URL takes the file's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from actorq.constants import ENV_CREDENTIALS_FILE, ENV_DATA_DIR
from actorq.exceptions import ConfigError

__all__ = [
    "CREDENTIALS_FILE",
    "DEFAULT_DATA_DIR",
    "ENV_CREDENTIALS_FILE",
    "ENV_DATA_DIR",
    "LocalCredentials",
    "credentials_path",
    "find_credentials",
    "generate_password",
    "generate_signing_key",
    "read_credentials",
    "resolve_local",
    "write_credentials",
]

log = logging.getLogger("actorq.credentials")

#: Name of the file in the data dir.
CREDENTIALS_FILE = "credentials.json"
#: Default data dir of ``actorq up`` (relative to its working directory).
DEFAULT_DATA_DIR = ".actorq/nats"
#: Environment variable naming the credentials file a client reads.
#: Environment variable that moves ``[nats] data_dir``; clients read it too.

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""})
_AUTH_KEYS = ("user", "password", "token", "credentials")


class LocalCredentials(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What ``credentials.json`` holds; ``signing_key`` is hex."""

    url: list[str] = []
    user: str | None = None
    password: str | None = None
    token: str | None = None
    signing_key: str | None = None

    def __repr__(self) -> str:
        return f"LocalCredentials(url={self.url!r}, user={self.user!r}, secrets=***)"

    def serves(self, urls: Sequence[str]) -> bool:
        """Whether one of ``urls`` is the server this file is for."""
        mine = {_endpoint(u) for u in self.url}
        return any(_endpoint(u) in mine for u in urls)

    def auth(self) -> dict[str, str]:
        """The credentials as :func:`~actorq.nats.connection.open_nats` keywords."""
        fields = {"user": self.user, "password": self.password, "token": self.token}
        return {k: v for k, v in fields.items() if v}


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host = parts.hostname or ""
    try:
        port = parts.port or 4222
    except ValueError:
        port = 0
    return ("loopback" if host in _LOOPBACK else host.lower()), port


def generate_password() -> str:
    """A random secret for the embedded server (URL-safe text, 192 bits)."""
    return secrets.token_urlsafe(24)


def generate_signing_key() -> str:
    """A random 32-byte HMAC key, hex."""
    return secrets.token_hex(32)


def credentials_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the credentials of the runtime with ``data_dir`` live."""
    return Path(data_dir) / CREDENTIALS_FILE


_DECODER = msgspec.json.Decoder(LocalCredentials)


def read_credentials(path: str | os.PathLike[str]) -> LocalCredentials | None:
    """The credentials in ``path``; ``None`` when there is no such file.

    Raises :class:`~actorq.ConfigError` when the file is there but unreadable or invalid.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the credentials file {file}: {exc.strerror}; run as the user "
            f"that runs `actorq up`, or point {ENV_CREDENTIALS_FILE} elsewhere"
        ) from exc
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise ConfigError(
            f"the credentials file {file} is invalid ({exc}); delete it and restart "
            "`actorq up` to generate new credentials"
        ) from exc


def write_credentials(path: str | os.PathLike[str], creds: LocalCredentials) -> None:
    """Write ``creds`` to ``path`` atomically, readable by this user only (0600)."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(msgspec.json.encode(creds))
        os.chmod(tmp, 0o600)  # whatever the umask said
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def find_credentials(
    environ: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None
) -> LocalCredentials | None:
    """The credentials a local client should use, looked up as the module docstring says."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_CREDENTIALS_FILE)
    if explicit is not None:
        return read_credentials(explicit) if explicit else None
    data_dir = env.get(ENV_DATA_DIR)
    if data_dir:
        return read_credentials(credentials_path(data_dir))
    here = Path(cwd) if cwd is not None else Path.cwd()
    for folder in (here, *here.parents):
        found = read_credentials(credentials_path(folder / DEFAULT_DATA_DIR))
        if found is not None:
            return found
    return None


def resolve_local(
    url: str | Sequence[str] | None,
    connect_options: dict[str, Any],
    signing_key: Any,
    *,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str] | None, dict[str, Any], Any]:
    """Fill in what a client was not given from the local credentials file.

    Returns ``(urls, connect_options, signing_key)``: the file's URL when ``url`` is
    ``None``; its user/password or token when ``connect_options`` hold no credentials;
    its signing key (bytes) when ``signing_key`` is ``None``. Nothing is taken when the
    file is for another server than ``url``.
    """
    urls = None if url is None else ([url] if isinstance(url, str) else list(url))
    try:
        found = find_credentials(environ)
    except ConfigError as exc:
        log.warning("%s", exc)
        return urls, connect_options, signing_key
    if found is None or (urls is not None and not found.serves(urls)):
        return urls, connect_options, signing_key
    if urls is None and found.url:
        urls = list(found.url)
    options = dict(connect_options)
    if not any(options.get(k) for k in _AUTH_KEYS):
        options.update(found.auth())
    if signing_key is None and found.signing_key:
        signing_key = bytes.fromhex(found.signing_key)
    return urls, options, signing_key
