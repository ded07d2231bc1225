"""A supervisor's private records: one per child, one per run of a child, and the
messages its loop handles. Plain mutable objects, written only by the supervisor's loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from .events import ExitReason
from .snapshot import ChildState
from .spec import ChildSpec, ProcessSpec, Restart

if TYPE_CHECKING:
    from .supervisor import Supervisor

__all__ = [
    "Call",
    "Child",
    "Exited",
    "Incarnation",
    "Message",
    "Reply",
    "RestartDue",
    "Stop",
    "should_restart",
    "stop_bound",
]

# Extra wait on top of a process's grace period: SIGKILL, then reaping.
_KILL_MARGIN = 6.0


def should_restart(restart: Restart, reason: ExitReason) -> bool:
    """The restart-type column of the OTP table."""
    if restart == Restart.PERMANENT:
        return True
    if restart == Restart.TRANSIENT:
        return reason.abnormal
    return False


def stop_bound(spec: ChildSpec) -> float:
    """How long the supervisor waits for a child it is stopping to be gone."""
    if isinstance(spec, ProcessSpec):
        grace = 0.0 if spec.shutdown == "brutal" else float(spec.shutdown)
        return grace + _KILL_MARGIN
    if spec.shutdown == "brutal":
        # A task cannot be killed; "brutal" only means "do not wait long for it".
        return 1.0
    return float(spec.shutdown)


class Incarnation:
    """One run of a child, from spawn to exit."""

    def __init__(self) -> None:
        # Shielded once ready (see _Reporter): cancelling the supervisor must not reach
        # all children at once; its loop stops them one by one, in reverse start order,
        # by cancelling this scope.
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.pid: int | None = None
        self.sub: Supervisor | None = None
        self.started_at: float | None = None
        self.started_clock = 0.0
        self.terminating = False


class Child:
    """A supervisor's record of one child spec across its incarnations."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state: ChildState = "starting"
        self.restarts = 0
        self.consecutive = 0
        self.last_exit: ExitReason | None = None
        self.current: Incarnation | None = None
        self.restart_token: object | None = None


@dataclass
class Exited:
    """A child's run ended (posted by the run itself)."""

    child: Child
    incarnation: Incarnation
    reason: ExitReason
    error: BaseException | None


@dataclass
class RestartDue:
    """A backoff delay elapsed: start the children holding ``token``."""

    token: object


@dataclass
class Reply:
    """Where the loop puts the outcome of a :class:`Call`."""

    done: trio.Event = field(default_factory=trio.Event)
    value: Any = None
    error: BaseException | None = None


@dataclass
class Call:
    """A caller's request, run by the loop between other messages."""

    fn: Callable[[], Awaitable[Any]]
    reply: Reply


@dataclass
class Stop:
    """Stop all children and return normally."""

    pass


Message = Exited | RestartDue | Call | Stop
