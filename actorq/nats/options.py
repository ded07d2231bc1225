"""How to connect to NATS beyond the URL: credentials and TLS, as one value.

:class:`ConnectOptions` travels in the settings of every actor process (queue, result,
scheduler, user actors), so each passes it explicitly to
:func:`~actorq.nats.connection.open_nats`::

    async with open_nats(settings.url, **settings.connect.kwargs()) as conn: ...

``actorq up`` builds the processes' settings without the secrets (command lines are
visible to every user of the host, in ``ps``) and :mod:`actorq.runtime.child` fills the
secrets in from the child's environment.
"""

from __future__ import annotations

import ssl
from typing import Any

import msgspec

__all__ = ["ConnectOptions", "ssl_context"]

_SECRETS = ("password", "token")


def ssl_context(cert: str | None, key: str | None, ca: str | None) -> ssl.SSLContext | None:
    """A client TLS context from PEM paths, or ``None`` when none is given."""
    if not (cert or ca):
        return None
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


class ConnectOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Credentials and TLS for a NATS connection; every field optional.

    ``creds`` is a ``.creds`` file (JWT + NKey seed); ``tls_ca`` verifies the server,
    ``tls_cert``/``tls_key`` are a client certificate. ``repr`` never shows secrets.
    """

    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    tls_hostname: str | None = None

    def __repr__(self) -> str:
        shown = [
            f"{name}={'***' if name in _SECRETS else value!r}"
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not None
        ]
        return f"ConnectOptions({', '.join(shown)})"

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> ConnectOptions:
        """The options among ``data``'s keys (a ``[nats]`` table has more; they are ignored)."""
        return cls(**{k: data[k] for k in cls.__struct_fields__ if data.get(k) is not None})

    @property
    def has_auth(self) -> bool:
        """Whether any credential is set (user, token or creds file)."""
        return bool(self.user or self.token or self.creds)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~actorq.nats.connection.open_nats`."""
        options: dict[str, Any] = {
            "user": self.user,
            "password": self.password,
            "token": self.token,
            "credentials": self.creds,
            "tls": ssl_context(self.tls_cert, self.tls_key, self.tls_ca),
            "tls_hostname": self.tls_hostname,
        }
        return {k: v for k, v in options.items() if v is not None}
