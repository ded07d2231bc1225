"""The exceptions the supervisors package raises, in one tree.

::

    SupervisorError                  base of everything raised here
     ├── SpecError                   a child spec or supervisor option is invalid (also ValueError)
     ├── ChildNotFound               no child with that id under this supervisor (also LookupError)
     ├── DuplicateChild              a child with that id already exists
     ├── SupervisorStopped           the supervisor is no longer running
     ├── StartError                  a child did not become ready
     │    ├── StartTimeout           ... within its start_timeout
     │    └── StartFailed            ... because it exited or raised first
     └── RestartIntensityExceeded    too many restarts in too short a time; carries the
                                     id and exit reason of the last failing child

Every message says what to do next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import ExitReason

__all__ = [
    "ChildNotFound",
    "DuplicateChild",
    "RestartIntensityExceeded",
    "SpecError",
    "StartError",
    "StartFailed",
    "StartTimeout",
    "SupervisorError",
    "SupervisorStopped",
]


class SupervisorError(Exception):
    """Base class of every exception raised by :mod:`supervisors`."""


class SpecError(SupervisorError, ValueError):
    """A child spec or a supervisor option is invalid; the message names the field."""


class ChildNotFound(SupervisorError, LookupError):
    """No child with the given id exists under this supervisor."""

    def __init__(self, child_id: str, supervisor: str) -> None:
        self.child_id = child_id
        self.supervisor = supervisor
        super().__init__(
            f"supervisor {supervisor!r} has no child {child_id!r}; "
            "check the id against Supervisor.snapshot().children"
        )


class DuplicateChild(SupervisorError):
    """A child with the given id already exists under this supervisor."""

    def __init__(self, child_id: str, supervisor: str) -> None:
        self.child_id = child_id
        self.supervisor = supervisor
        super().__init__(
            f"supervisor {supervisor!r} already has a child {child_id!r}; "
            "pick another id, or delete_child() the old one first"
        )


class SupervisorStopped(SupervisorError):
    """The supervisor has stopped (or is stopping) and accepts no more requests."""

    def __init__(self, supervisor: str) -> None:
        self.supervisor = supervisor
        super().__init__(
            f"supervisor {supervisor!r} is not running; "
            "call this only inside its open_supervisor() block or while serve_supervisor() runs"
        )


class StartError(SupervisorError):
    """A child did not report ready."""

    def __init__(self, child_id: str, message: str) -> None:
        self.child_id = child_id
        super().__init__(message)


class StartTimeout(StartError):
    """A child did not report ready within its ``start_timeout``."""

    def __init__(self, child_id: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(
            child_id,
            f"child {child_id!r} did not report ready within {timeout:g} s; a task child must "
            "call task_status.started(), a process child must call ready(); raise "
            "start_timeout in its spec if it is merely slow",
        )


class StartFailed(StartError):
    """A child exited, or raised, before it reported ready."""

    def __init__(self, child_id: str, reason: ExitReason) -> None:
        self.reason = reason
        super().__init__(
            child_id,
            f"child {child_id!r} stopped before reporting ready ({reason.describe()}); "
            "run it on its own to see its error output",
        )


class RestartIntensityExceeded(SupervisorError):
    """A supervisor restarted its children too often and gave up.

    All of its children have been stopped by the time this is raised. ``child_id`` and
    ``reason`` describe the last failure; when that child was a task that raised, the
    exception is also chained as ``__cause__``.
    """

    def __init__(
        self,
        supervisor: str,
        child_id: str,
        reason: ExitReason,
        max_restarts: int,
        within: float,
    ) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        self.reason = reason
        self.max_restarts = max_restarts
        self.within = within
        super().__init__(
            f"supervisor {supervisor!r} gave up: more than {max_restarts} restarts within "
            f"{within:g} s, the last after child {child_id!r} stopped ({reason.describe()}); "
            "fix that child's error, or raise max_restarts / within if the failures are expected"
        )
