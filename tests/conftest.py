"""Shared fixtures: real nats-server processes on free loopback ports, always stopped by PID."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from actorq.nats import Connection, NatsServerProcess, open_nats

#: Fixture scopes wider than a test that are still narrower than a pytest-xdist worker.
_SHARED_SCOPES = ("class", "module", "package")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep a module's tests on one pytest-xdist worker (``--dist loadgroup``) when they
    share a module-scoped fixture, such as one ``actorq up``: it then starts once. The
    other tests are spread one by one. Runs before xdist reads the markers."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        shared = any(
            defs[-1].scope in _SHARED_SCOPES
            for name in info.names_closure
            if (defs := info.name2fixturedefs.get(name))
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServerProcess]:
    """One JetStream server for the whole session (tests must use unique names)."""
    server = NatsServerProcess(data_dir=tmp_path_factory.mktemp("nats-session"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fresh_nats_server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    """A server of this test's own, for tests that stop, kill or restart it."""
    server = NatsServerProcess(data_dir=tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def nats_url(nats_server: NatsServerProcess) -> str:
    """URL of the session server."""
    return nats_server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Connection]:
    """A Trio NATS connection to the session server."""
    async with open_nats(nats_url) as conn:
        yield conn
