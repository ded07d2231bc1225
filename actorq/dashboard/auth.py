"""Who may look and who may act: the token, its cookie, and CSRF-safe actions.

* The token comes from ``[dashboard] token`` or ``ACTORQ_DASHBOARD_TOKEN``; without
  either, :func:`make_token` makes a random one, printed in the login URL at start.
* A browser logs in once (``/login``, or a first visit to ``/?token=...``); the token
  then travels in an ``HttpOnly``, ``SameSite=Strict`` cookie. Scripts send
  ``Authorization: Bearer <token>`` instead.
* Viewing (GET) needs the token unless ``read_only`` is configured.
* Actions (POST) always need it, and, when it comes from the cookie, also the header
  ``X-Actorq-CSRF`` with :func:`csrf_token` (pages carry it in ``<body data-csrf>``,
  which another site cannot read) and an ``Origin``, if sent, of this very host.
  A cross-site form or script can therefore neither read nor act.
* Every response carries a strict Content-Security-Policy (no inline script), no
  framing, no referrer (the login URL holds the token).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode

__all__ = ["COOKIE", "AuthMiddleware", "csrf_token", "make_token"]

#: Name of the cookie holding the token.
COOKIE = "actorq_dashboard"
#: Paths anyone may fetch.
_OPEN = ("/static/", "/login", "/favicon.ico")

_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def make_token() -> str:
    """A fresh random token (32 bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def csrf_token(token: str) -> str:
    """The anti-CSRF value that goes with ``token`` (derived, so nothing is stored)."""
    return hmac.new(token.encode(), b"actorq-dashboard-csrf", hashlib.sha256).hexdigest()


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cookie_header(token: str, *, secure: bool) -> bytes:
    """The ``Set-Cookie`` value that logs a browser in."""
    value = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    return (value + ("; Secure" if secure else "")).encode()


class AuthMiddleware:
    """ASGI middleware enforcing the rules of the module docstring."""

    def __init__(self, app: Any, *, token: str, read_only: bool) -> None:
        self.app = app
        self.token = token
        self.csrf = csrf_token(token)
        self.read_only = read_only

    def credentials(self, scope: dict[str, Any]) -> tuple[bool, bool]:
        """(authenticated, via a bearer header) for a request."""
        auth = _header(scope, b"authorization")
        if auth and auth.lower().startswith("bearer "):
            return _same(auth[7:].strip(), self.token), True
        cookies = SimpleCookie()
        raw = _header(scope, b"cookie")
        if raw:
            try:
                cookies.load(raw)
            except Exception:
                return False, False
        morsel = cookies.get(COOKIE)
        return (morsel is not None and _same(morsel.value, self.token)), False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Check the request, then pass it on with the security headers added."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_HEADERS]}
            await send(message)

        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith(_OPEN):
            await self.app(scope, receive, send_secure)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if method == "GET" and "token" in query:
            await self._login_redirect(scope, query, send_secure)
            return
        authed, bearer = self.credentials(scope)
        scope.setdefault("state", {})["authed"] = authed
        if method in ("GET", "HEAD"):
            if not authed and not self.read_only:
                await self._deny(scope, send_secure, 401, "log in: open /login with the token")
                return
        else:
            if not authed:
                await self._deny(scope, send_secure, 401, "actions need the dashboard token")
                return
            if not bearer and not self._csrf_ok(scope):
                await self._deny(scope, send_secure, 403, "cross-site request refused")
                return
        await self.app(scope, receive, send_secure)

    def _csrf_ok(self, scope: dict[str, Any]) -> bool:
        if not _same(_header(scope, b"x-actorq-csrf"), self.csrf):
            return False
        origin = _header(scope, b"origin")
        if origin is None:  # not every browser sends it on same-origin requests
            return True
        host = _header(scope, b"host") or ""
        scheme = scope.get("scheme", "http")
        return origin == f"{scheme}://{host}"

    async def _login_redirect(
        self, scope: dict[str, Any], query: dict[str, list[str]], send: Any
    ) -> None:
        given = query.pop("token")[0]
        if not _same(given, self.token):
            await self._deny(scope, send, 401, "wrong token")
            return
        rest = urlencode({k: v[0] for k, v in query.items()})
        path = scope["path"]
        if not path.startswith("/") or path.startswith("//"):
            path = "/"  # never a redirect to another host (//host/...)
        location = path + ("?" + rest if rest else "")
        secure = scope.get("scheme") == "https"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"set-cookie", cookie_header(self.token, secure=secure)),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _deny(self, scope: dict[str, Any], send: Any, status: int, why: str) -> None:
        path: str = scope["path"]
        if status == 401 and scope["method"] == "GET" and not path.startswith("/api/"):
            headers = [(b"location", b"/login"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 303, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = json.dumps({"error": why}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
