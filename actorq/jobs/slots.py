"""A queue actor's job slots: it fetches only as many jobs as it has free slots, so a
process never hoards jobs that idle workers elsewhere could run."""

from __future__ import annotations

import trio

__all__ = ["Slots"]


class Slots:
    """Counts free job slots; a slot is held from fetch until the job's ack."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._changed = trio.Event()

    @property
    def free(self) -> int:
        """Slots not held by a job."""
        return self.size - self.used

    def take(self, n: int) -> None:
        self.used += n

    def give(self, n: int = 1) -> None:
        self.used -= n
        self._changed.set()
        self._changed = trio.Event()

    async def wait_free(self, stop: trio.Event) -> None:
        while self.free <= 0 and not stop.is_set():
            await self._changed.wait()
