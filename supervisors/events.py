"""Why a child stopped, and the events a supervisor tree emits.

Every value here is a frozen :class:`msgspec.Struct`, so the monitoring side can encode
events as msgpack or JSON without adapters. Events form a tagged union
(:data:`SupervisorEvent`, tag field ``"event"``).

Delivery is best effort by design: a supervisor never waits for a slow subscriber, so a
subscriber whose buffer is full misses events (``EventBus.dropped`` counts them).
"""

from __future__ import annotations

import logging
import math
import signal
import time
import traceback
from typing import Literal

import msgspec
import trio

__all__ = [
    "ChildExited",
    "ChildKind",
    "ChildRestarted",
    "ChildStarted",
    "EventBus",
    "ExitKind",
    "ExitReason",
    "StandbyParked",
    "SupervisorEscalated",
    "SupervisorEvent",
]

log = logging.getLogger("supervisors")

ChildKind = Literal["task", "process", "supervisor"]
ExitKind = Literal["normal", "exception", "exit_code", "signal", "shutdown", "start_failed"]


class ExitReason(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Why one run of a child ended.

    ``kind`` is one of:

    - ``normal``: a task returned, a process exited with status 0;
    - ``exception``: a task raised (``text`` holds the exception line);
    - ``exit_code``: a process exited with a non-zero ``code``;
    - ``signal``: a process was killed by ``signal`` (not sent by its supervisor);
    - ``shutdown``: its supervisor stopped it on purpose;
    - ``start_failed``: it raised, exited or timed out before reporting ready.
    """

    kind: ExitKind
    code: int | None = None
    signal: int | None = None
    text: str = ""

    @property
    def abnormal(self) -> bool:
        """True when a ``transient`` child stopping this way is restarted."""
        return self.kind in ("exception", "exit_code", "signal", "start_failed")

    def describe(self) -> str:
        """A short human-readable phrase, used in error messages and logs."""
        if self.kind == "exit_code":
            return f"exit code {self.code}"
        if self.kind == "signal" and self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by {name}"
        if self.text:
            return f"{self.kind}: {self.text}"
        return self.kind

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitReason:
        """Translate a ``Popen.returncode`` (negative means killed by that signal)."""
        if returncode == 0:
            return cls("normal", code=0)
        if returncode < 0:
            return cls("signal", signal=-returncode)
        return cls("exit_code", code=returncode)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ExitReason:
        """Summarise an exception on one line: ``ValueError: bad input``."""
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return cls("exception", text=text)


class ChildStarted(msgspec.Struct, frozen=True, tag_field="event", tag="started"):
    """A child reported ready for the first time under this spec."""

    supervisor: str
    child_id: str
    kind: ChildKind
    pid: int | None
    at: float


class ChildExited(msgspec.Struct, frozen=True, tag_field="event", tag="exited"):
    """A child stopped, for any reason including its supervisor stopping it."""

    supervisor: str
    child_id: str
    kind: ChildKind
    pid: int | None
    reason: ExitReason
    at: float


class ChildRestarted(msgspec.Struct, frozen=True, tag_field="event", tag="restarted"):
    """A child was started again and reported ready; ``restarts`` counts its restarts."""

    supervisor: str
    child_id: str
    kind: ChildKind
    pid: int | None
    restarts: int
    at: float


class SupervisorEscalated(msgspec.Struct, frozen=True, tag_field="event", tag="escalated"):
    """A supervisor exceeded its restart intensity and is failing upward."""

    supervisor: str
    child_id: str
    reason: ExitReason
    at: float


class StandbyParked(msgspec.Struct, frozen=True, tag_field="event", tag="standby_parked"):
    """A warm standby for ``child_id``'s spec (``ProcessSpec(standby=True)``) parked:
    imported and prepared, ready to take over at the next restart. Not a child."""

    supervisor: str
    child_id: str
    pid: int
    at: float


SupervisorEvent = ChildStarted | ChildExited | ChildRestarted | SupervisorEscalated | StandbyParked


def now() -> float:
    """Wall-clock time for events and snapshots (Unix seconds)."""
    return time.time()


class EventBus:
    """Fans events of one supervisor tree out to any number of subscribers.

    Nested supervisors share their root's bus, so one subscription sees the whole tree;
    each event names its supervisor by path (``"root/workers"``).
    """

    def __init__(self) -> None:
        self._subscribers: list[trio.MemorySendChannel[SupervisorEvent]] = []
        self.dropped = 0
        """How many events were not delivered because a subscriber's buffer was full."""

    def subscribe(self, max_buffer: float = 1024) -> trio.MemoryReceiveChannel[SupervisorEvent]:
        """Return a channel that receives every later event.

        Close the channel (``with bus.subscribe() as events:``) to unsubscribe. The
        channel ends (``async for`` finishes) when :meth:`close` is called.
        """
        if not (max_buffer == math.inf or (isinstance(max_buffer, int) and max_buffer >= 0)):
            raise ValueError("max_buffer must be a non-negative int or math.inf")
        send, receive = trio.open_memory_channel[SupervisorEvent](max_buffer)
        self._subscribers.append(send)
        return receive

    def add_sink(self, channel: trio.MemorySendChannel[SupervisorEvent]) -> None:
        """Deliver every later event to a send channel the caller owns."""
        self._subscribers.append(channel)

    def publish(self, event: SupervisorEvent) -> None:
        """Deliver ``event`` without ever blocking; full or closed subscribers are skipped."""
        log.debug("%s", event)
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(channel)

    def close(self) -> None:
        """End every subscription; the tree calls this when its root stops."""
        for channel in self._subscribers:
            channel.close()
        self._subscribers.clear()
