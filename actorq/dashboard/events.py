"""Live updates: one publisher task, any number of server-sent-event streams.

:class:`EventHub` gathers the overview once per :attr:`~EventHub.interval` — only
while at least one browser listens — encodes it once, and hands the same frame to
every open stream. A browser costs one memory channel and one write per frame, never
a query of its own; a stream too slow to take a frame skips it (the next one carries
the whole state again).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

from actorq.exceptions import ActorqError

__all__ = ["EventHub", "sse_frame"]

log = logging.getLogger("actorq.dashboard")


def sse_frame(event: str, data: Any) -> bytes:
    """One server-sent event: ``event: <name>`` and its JSON ``data`` line."""
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class EventHub:
    """The shared publisher of ``overview`` events (see the module docstring)."""

    def __init__(
        self, gather: Callable[[], Awaitable[dict[str, Any]]], *, interval: float = 1.0
    ) -> None:
        self.gather = gather
        self.interval = interval
        self._streams: set[trio.MemorySendChannel[bytes]] = set()
        self._listening = trio.Event()
        self.last: bytes | None = None
        #: Frames published so far (for tests and the bench).
        self.published = 0

    @property
    def listeners(self) -> int:
        """How many streams are open."""
        return len(self._streams)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Publish until cancelled; idle while nobody listens."""
        task_status.started()
        while True:
            if not self._streams:
                self._listening = trio.Event()
                await self._listening.wait()
            try:
                data = await self.gather()
            except ActorqError as exc:
                data = {"error": str(exc)[:500]}
                log.warning("dashboard overview not gathered: %s", exc)
            frame = sse_frame("overview", data)
            self.last = frame
            self.published += 1
            for stream in list(self._streams):
                with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                    stream.send_nowait(frame)
            await trio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[trio.MemoryReceiveChannel[bytes]]:
        """A stream of frames for one browser, for the block's duration; the latest
        frame comes first, so a new page shows figures at once."""
        send, receive = trio.open_memory_channel[bytes](2)
        if self.last is not None:
            send.send_nowait(self.last)
        self._streams.add(send)
        self._listening.set()
        try:
            async with receive:
                yield receive
        finally:
            self._streams.discard(send)
            send.close()
