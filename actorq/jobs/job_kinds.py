"""How a job function runs: a plain ``def`` in a worker thread, an ``async def`` as a
Trio task, and one marked :func:`asyncio_job` as an asyncio coroutine (trio-asyncio)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["asyncio_job", "runs_in_thread"]


def asyncio_job(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Mark an ``async def`` as an asyncio coroutine function (run via trio-asyncio).

    Unmarked ``async def`` jobs run as Trio tasks::

        @actorq.asyncio_job
        async def fetch(url):
            async with aiohttp.ClientSession() as s: ...
    """
    fn.__actorq_asyncio__ = True  # type: ignore[attr-defined]
    return fn


def runs_in_thread(fn: Callable[..., Any]) -> bool:
    """Whether a job function runs in a worker thread (a plain ``def``)."""
    asyncio_job = getattr(fn, "__actorq_asyncio__", False)
    return not asyncio_job and not inspect.iscoroutinefunction(fn)
