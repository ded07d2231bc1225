"""Targets for actorq.runtime.child.main that crash, for tests of the crash record."""

from __future__ import annotations

from collections.abc import Callable

import trio


async def nested(ready: Callable[[], None]) -> None:
    """Fails three nurseries deep, as a real actor's error does."""
    ready()

    async def fail() -> None:
        raise ValueError("the database went away")

    async with trio.open_nursery() as outer:

        async def middle() -> None:
            async with trio.open_nursery() as inner:
                inner.start_soon(fail)

        outer.start_soon(middle)
