"""A dashboard served in the test's own Trio loop, on a free loopback port, over an
in-process runtime (see :mod:`tests.helpers.jobs_harness`)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

import httpx
import trio

from actorq.config.schema import DashboardConfig
from actorq.dashboard import DashboardInfo, serve_dashboard
from actorq.dashboard.auth import COOKIE, csrf_token
from actorq.jobs.client import Client

TOKEN = "test-token-0123456789"


@contextlib.asynccontextmanager
async def open_dashboard(
    client: Client, *, token: str | None = TOKEN, read_only: bool = False, interval: float = 0.2
) -> AsyncIterator[DashboardInfo]:
    """Serve the dashboard of ``client`` for the block; yields where it listens."""
    config = DashboardConfig(port=0, token=token, read_only=read_only)
    async with trio.open_nursery() as nursery:
        info: DashboardInfo = await nursery.start(
            functools.partial(serve_dashboard, client, config, interval=interval)
        )
        yield info
        nursery.cancel_scope.cancel()


def browser_client(info: DashboardInfo, *, logged_in: bool = True) -> httpx.AsyncClient:
    """An HTTP client that behaves like a logged-in browser tab: the cookie, and the
    CSRF header a page's script sends."""
    cookies = {COOKIE: info.token} if logged_in else {}
    headers = {"x-actorq-csrf": csrf_token(info.token)} if logged_in else {}
    return httpx.AsyncClient(base_url=info.url, cookies=cookies, headers=headers, timeout=10)


def bearer_client(info: DashboardInfo) -> httpx.AsyncClient:
    """An HTTP client of a script: the token as a bearer header."""
    return httpx.AsyncClient(
        base_url=info.url, headers={"authorization": f"Bearer {info.token}"}, timeout=10
    )


async def read_events(info: DashboardInfo, count: int) -> list[bytes]:
    """Open ``/api/events`` over a raw socket (as a browser's EventSource does) and
    return the ``data:`` lines of the first ``count`` events."""
    host, port = info.url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        request = (
            f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {info.token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        await stream.send_all(request.encode())
        buffer = b""
        found: list[bytes] = []
        while len(found) < count:
            chunk = await stream.receive_some(65536)
            assert chunk, "the event stream ended"
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            found += [line.strip() for line in lines if line.startswith(b"data: ")]
        return found[:count]
