"""Generic OTP-style supervision trees on Trio, for tasks and processes, with no orphans.

This package knows nothing of actorq, NATS or jobs. Start with :func:`open_supervisor`
and the specs :class:`TaskSpec`, :class:`ProcessSpec` and :class:`SupervisorSpec`;
``docs/supervisors.md`` has the semantics tables and the child-process protocol.

Names are imported lazily, so that ``python -m supervisors.child_runtime`` (which runs
in every process child) does not pay for importing Trio and msgspec before the child's
own code needs them.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .child_runtime import Ready as Ready
    from .child_runtime import on_standby as on_standby
    from .child_runtime import setup_child as setup_child
    from .events import ChildExited as ChildExited
    from .events import ChildKind as ChildKind
    from .events import ChildRestarted as ChildRestarted
    from .events import ChildStarted as ChildStarted
    from .events import EventBus as EventBus
    from .events import ExitKind as ExitKind
    from .events import ExitReason as ExitReason
    from .events import StandbyParked as StandbyParked
    from .events import SupervisorEscalated as SupervisorEscalated
    from .events import SupervisorEvent as SupervisorEvent
    from .exceptions import ChildNotFound as ChildNotFound
    from .exceptions import DuplicateChild as DuplicateChild
    from .exceptions import RestartIntensityExceeded as RestartIntensityExceeded
    from .exceptions import SpecError as SpecError
    from .exceptions import StartError as StartError
    from .exceptions import StartFailed as StartFailed
    from .exceptions import StartTimeout as StartTimeout
    from .exceptions import SupervisorError as SupervisorError
    from .exceptions import SupervisorStopped as SupervisorStopped
    from .serve import open_supervisor as open_supervisor
    from .serve import serve_supervisor as serve_supervisor
    from .signals import ShutdownSignals as ShutdownSignals
    from .signals import shutdown_on_signals as shutdown_on_signals
    from .snapshot import ChildSnapshot as ChildSnapshot
    from .snapshot import ChildState as ChildState
    from .spec import Backoff as Backoff
    from .spec import ChildSpec as ChildSpec
    from .spec import ProcessSpec as ProcessSpec
    from .spec import Restart as Restart
    from .spec import Shutdown as Shutdown
    from .spec import Strategy as Strategy
    from .spec import SupervisorSpec as SupervisorSpec
    from .spec import TaskSpec as TaskSpec
    from .supervisor import Supervisor as Supervisor
    from .trio_popen import TrioPopen as TrioPopen

logging.getLogger("supervisors").addHandler(logging.NullHandler())

_WHERE = {
    "Ready": "child_runtime",
    "setup_child": "child_runtime",
    "on_standby": "child_runtime",
    "ChildExited": "events",
    "ChildKind": "events",
    "ChildRestarted": "events",
    "ChildStarted": "events",
    "EventBus": "events",
    "ExitKind": "events",
    "ExitReason": "events",
    "SupervisorEscalated": "events",
    "StandbyParked": "events",
    "SupervisorEvent": "events",
    "ChildNotFound": "exceptions",
    "DuplicateChild": "exceptions",
    "RestartIntensityExceeded": "exceptions",
    "SpecError": "exceptions",
    "StartError": "exceptions",
    "StartFailed": "exceptions",
    "StartTimeout": "exceptions",
    "SupervisorError": "exceptions",
    "SupervisorStopped": "exceptions",
    "ShutdownSignals": "signals",
    "shutdown_on_signals": "signals",
    "ChildSnapshot": "snapshot",
    "ChildState": "snapshot",
    "Backoff": "spec",
    "ChildSpec": "spec",
    "ProcessSpec": "spec",
    "Restart": "spec",
    "Shutdown": "spec",
    "Strategy": "spec",
    "SupervisorSpec": "spec",
    "TaskSpec": "spec",
    "TrioPopen": "trio_popen",
    "Supervisor": "supervisor",
    "open_supervisor": "serve",
    "serve_supervisor": "serve",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'supervisors' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
