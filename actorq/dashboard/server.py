"""Serving the dashboard: Hypercorn's Trio worker, inside the caller's ``trio.run``.

:func:`serve_dashboard` runs the job index, the event hub and the HTTP server as tasks
of one nursery, with no thread or event loop of their own; it reports where it
listens once it does::

    async with actorq.open_client(url) as client:
        info = await nursery.start(serve_dashboard, client, DashboardConfig(port=0))
        print(info.login_url)
"""

from __future__ import annotations

import logging
import os

import msgspec
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from actorq.config.schema import DashboardConfig
from actorq.dashboard.app import Dashboard, build_app
from actorq.dashboard.auth import make_token
from actorq.jobs.client import Client

__all__ = ["ENV_TOKEN", "DashboardInfo", "resolve_token", "serve_dashboard"]

log = logging.getLogger("actorq.dashboard")

#: The environment variable a token can come from (the config's own override too).
ENV_TOKEN = "ACTORQ_DASHBOARD_TOKEN"


class DashboardInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Where a started dashboard listens, and how to log in."""

    url: str
    token: str
    #: Whether the token was made at start (none configured).
    generated: bool
    read_only: bool

    @property
    def login_url(self) -> str:
        """The URL that logs a browser in (it holds the token: do not share it)."""
        return f"{self.url}/?token={self.token}"


def resolve_token(config: DashboardConfig) -> tuple[str, bool]:
    """The token from the config or :data:`ENV_TOKEN`, else a random one; and whether
    it was made here."""
    token = config.token or os.environ.get(ENV_TOKEN) or ""
    if token:
        return token, False
    return make_token(), True


async def serve_dashboard(
    client: Client,
    config: DashboardConfig,
    *,
    interval: float = 1.0,
    task_status: trio.TaskStatus[DashboardInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard of ``client``'s namespace until cancelled.

    Started (``nursery.start``) once it listens: the value is a :class:`DashboardInfo`
    (with the real port when ``config.port`` is 0). ``interval``: seconds between two
    live updates.
    """
    token, generated = resolve_token(config)
    board = Dashboard(client, token=token, read_only=config.read_only, interval=interval)
    hconfig = HypercornConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hconfig.bind = [f"{host}:{config.port}"]
    hconfig.accesslog = None
    hconfig.errorlog = logging.getLogger("actorq.dashboard.http")
    hconfig.graceful_timeout = 1.0
    async with trio.open_nursery() as nursery:
        await nursery.start(board.index.serve, client.results)
        await nursery.start(board.procs.serve, client.conn, client.streams.ns.name)
        await nursery.start(board.hub.serve)
        binds: list[str] = await nursery.start(serve, build_app(board), hconfig)
        url = binds[0] if binds else f"http://{host}:{config.port}"
        info = DashboardInfo(url=url, token=token, generated=generated, read_only=config.read_only)
        log.info("dashboard at %s", url)
        task_status.started(info)
