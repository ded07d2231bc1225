"""Real-browser tests: the runtime and its dashboard in a Trio loop of their own (a
background thread), Debian's chromium driven by Playwright's sync API from the test.

Playwright's browser download is never used (no ``playwright install``): the tests
launch ``/usr/bin/chromium`` and skip, saying why, where it is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
import trio.from_thread

from actorq.dashboard import DashboardInfo
from tests.helpers import paths
from tests.helpers.dashboard_harness import open_dashboard
from tests.helpers.jobs_harness import Runtime
from tests.helpers.scheduler_harness import open_scheduled_runtime

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
#: Set to 1 to (re)write the screenshots in docs/img/ (CI leaves them alone).
SCREENSHOTS = os.environ.get("ACTORQ_SCREENSHOTS") == "1"
IMG = paths.ROOT / "docs" / "img"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium); "
    ".ci/run does",
)


class Served:
    """A runtime with a scheduler and its dashboard, running in a background thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.info: DashboardInfo | None = None
        self.rt: Runtime | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with (
            open_scheduled_runtime(self.url, lease_ttl=2.0) as (rt, _scheduler),
            open_dashboard(rt.client, interval=0.3) as info,
        ):
            self.rt, self.info = rt, info
            self._ready.set()
            await self._stop.wait()

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` in the runtime's Trio loop; return its value."""
        assert self._token is not None
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    @property
    def base(self) -> str:
        assert self.info is not None
        return self.info.url

    def __enter__(self) -> Served:
        self._thread.start()
        assert self._ready.wait(60), "the runtime did not start within 60s"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the runtime thread did not stop"


@contextlib.contextmanager
def open_browser(profile: Path) -> Iterator[Any]:
    """A logged-out chromium context (a fresh profile), closed at the end."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API makes its loop with asyncio.new_event_loop(), through the
    # current policy; once trio_asyncio is imported in this process (an asyncio job ran
    # in it: a test file that ran before on the same pytest-xdist worker), that is a
    # trio-asyncio loop, which Playwright cannot drive. It gets a plain one.
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                headless=True,
                args=ARGS,
                viewport={"width": 1280, "height": 800},
                # Playwright's wait_for_function evaluates strings, which the dashboard's
                # CSP forbids; without the CSP the XSS test is also the stricter one: the
                # page must be safe by how it renders, not only by policy.
                bypass_csp=True,
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        asyncio.set_event_loop_policy(policy)


def login(page: Any, served: Served, path: str = "/") -> None:
    """Log the page in the way an operator does: the URL with the token."""
    assert served.info is not None
    page.goto(f"{served.base}{path}?token={served.info.token}")
    page.wait_for_selector("body[data-ready]", timeout=15_000)


def screenshot(page: Any, name: str) -> None:
    """Save ``docs/img/dashboard-<name>.png`` when :data:`SCREENSHOTS` is on."""
    if SCREENSHOTS:
        IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMG / f"dashboard-{name}.png"), full_page=True)
