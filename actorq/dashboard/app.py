"""The dashboard's ASGI application: its state, its routes, its middleware."""

from __future__ import annotations

import hmac
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actorq.dashboard import api, gather, pages
from actorq.dashboard.auth import AuthMiddleware
from actorq.dashboard.events import EventHub
from actorq.dashboard.procs import ProcessIndex
from actorq.dashboard.records import RecordIndex
from actorq.jobs.client import Client

__all__ = ["Dashboard", "build_app"]

_STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


class Dashboard:
    """What every request reads: the client, the job index, the event hub, the token."""

    def __init__(
        self, client: Client, *, token: str, read_only: bool = False, interval: float = 1.0
    ) -> None:
        self.client = client
        self.token = token
        self.read_only = read_only
        self.index = RecordIndex()
        self.procs = ProcessIndex()
        self.hub = EventHub(self._overview, interval=interval)

    async def _overview(self) -> dict[str, Any]:
        return await gather.overview(self.client, self.index, self.procs)

    def check_token(self, given: str) -> bool:
        """Whether ``given`` is the token (constant time)."""
        return hmac.compare_digest(given.encode(), self.token.encode())


def _static_files() -> dict[str, bytes]:
    folder = resources.files("actorq.dashboard") / "static"
    return {name: (folder / name).read_bytes() for name in _STATIC}


def build_app(board: Dashboard) -> Any:
    """The ASGI app serving ``board``: pages, JSON API, static files, behind the
    token (see :mod:`actorq.dashboard.auth`)."""
    files = _static_files()

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in files:
            return Response("not found", status_code=404)
        return Response(
            files[name], media_type=_STATIC[name], headers={"cache-control": "no-cache"}
        )

    app = Starlette(
        routes=[*pages.routes(), *api.routes(), Route("/static/{name}", static)],
        middleware=[Middleware(AuthMiddleware, token=board.token, read_only=board.read_only)],
    )
    app.state.dashboard = board
    return app
