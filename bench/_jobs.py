"""Job functions the benchmarks enqueue; importable by queue actor processes.

The bench passes this directory in ``QueueActorSettings.sys_path`` and ``_jobs`` in
``imports``, so a worker process resolves ``_jobs.noop`` exactly as the client named it.
"""

from __future__ import annotations

import time


def noop() -> None:
    """A sync no-op (runs in a worker thread, the common case)."""
    return None


async def noop_async() -> None:
    """A Trio no-op (runs as a Trio task: no thread hop)."""
    return None


def stamp() -> float:
    """A sync job that returns when it started (``time.time()``): the idle pickup bench."""
    return time.time()
