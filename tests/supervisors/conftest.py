"""Fixtures for the supervisors tests: every process a test starts is stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

import psutil
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
# The real package must win over tests/supervisors when tests/ is on sys.path.
for path in (HERE, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)


def kill_pids(pids: set[int]) -> None:
    """SIGKILL every pid in ``pids`` that still exists; ignore the ones already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for PID 1 counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class PidRegistry:
    """Pids a test learned about that are not its own children (e.g. grandchildren)."""

    def __init__(self) -> None:
        self.pids: set[int] = set()

    def add(self, *pids: int) -> None:
        """Remember ``pids`` so they are killed when the test ends."""
        self.pids.update(pids)


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[PidRegistry]:
    """After each test, SIGKILL every descendant of this process it started (those
    alive before it, such as the session's nats-server, are not its) and every noted pid."""
    registry = PidRegistry()
    before: set[int] = set()
    with contextlib.suppress(psutil.Error):
        before = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        yield registry
    finally:
        pids = set(registry.pids)
        with contextlib.suppress(psutil.Error):
            pids.update(
                p.pid for p in psutil.Process().children(recursive=True) if p.pid not in before
            )
        kill_pids(pids)


@pytest.fixture
def pids(no_leftover_processes: PidRegistry) -> PidRegistry:
    """The registry of extra pids to kill after the test."""
    return no_leftover_processes
