"""A job runtime (see jobs_harness) plus a scheduler actor, all Trio tasks."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

from actorq.jobs.scheduler_actor import SchedulerActor, serve_scheduler_actor
from tests.helpers.jobs_harness import Runtime, open_runtime


@contextlib.asynccontextmanager
async def open_scheduled_runtime(
    url: str, *, lease_ttl: float = 2.0, **kwargs: Any
) -> AsyncIterator[tuple[Runtime, SchedulerActor]]:
    async with open_runtime(url, **kwargs) as rt, trio.open_nursery() as nursery:
        scheduler: SchedulerActor = await nursery.start(
            functools.partial(
                serve_scheduler_actor, url, namespace=rt.namespace, lease_ttl=lease_ttl
            )
        )
        assert scheduler.lease is not None
        while not scheduler.lease.leading:
            await scheduler.lease.changed.wait()
        yield rt, scheduler
        nursery.cancel_scope.cancel()


async def eventually(check: Callable[[], Awaitable[bool] | bool], interval: float = 0.05) -> None:
    """Wait until ``check()`` holds, looking every ``interval`` seconds.

    For state outside this process (files written by jobs, another process's lease):
    callers bound it with ``trio.fail_after``.
    """
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await trio.sleep(interval)
