"""Child specs and supervisor options: plain data, validated once when built.

A spec says *what* to run and *how to treat it*; it holds no runtime state, so the same
spec can be started, stopped and restarted any number of times.

- :class:`TaskSpec`: a Trio task, ``async def fn(*args, task_status)`` started with
  ``nursery.start``; it counts as ready when it calls ``task_status.started()``.
- :class:`ProcessSpec`: a fresh Python interpreter (never a ``fork`` of this one); it
  counts as ready when it calls ``ready()`` (see :mod:`supervisors.child_runtime`).
- :class:`SupervisorSpec`: a nested supervisor with its own children and strategy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any, Literal

import msgspec

from .exceptions import SpecError

__all__ = [
    "Backoff",
    "ChildSpec",
    "ProcessSpec",
    "Restart",
    "Shutdown",
    "Strategy",
    "SupervisorSpec",
    "TaskSpec",
]


class Restart(StrEnum):
    """When a stopped child is started again (OTP restart types)."""

    PERMANENT = "permanent"
    """Always restarted, whatever the exit."""
    TRANSIENT = "transient"
    """Restarted only after an abnormal exit (exception, non-zero status, signal)."""
    TEMPORARY = "temporary"
    """Never restarted; removed from its supervisor when it stops."""


class Strategy(StrEnum):
    """Which children a supervisor restarts when one of them must be restarted."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that stopped."""
    ONE_FOR_ALL = "one_for_all"
    """Every running child: the others are stopped in reverse start order, then all
    are started again in start order."""
    REST_FOR_ONE = "rest_for_one"
    """The child that stopped and every running child started after it."""


Shutdown = float | Literal["brutal"]
"""How a child is stopped: seconds to wait after a graceful request (cancel / SIGTERM)
before killing it (``math.inf`` waits forever, the default for nested supervisors),
or ``"brutal"`` to kill a process at once with SIGKILL."""

_ID = re.compile(r"^[A-Za-z0-9_.:@+-]+$")
_TARGET = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*)?$")


def _check_id(child_id: str) -> None:
    if not isinstance(child_id, str) or not _ID.match(child_id):
        raise SpecError(
            f"child id {child_id!r} is invalid: use a non-empty string of letters, digits "
            "and _ . : @ + - (no '/', which separates supervisor paths)"
        )


def _check_timeout(owner: str, name: str, value: object, allow_zero: bool = False) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and not math.isnan(value) and (value > 0 or (allow_zero and value == 0)):  # type: ignore[arg-type, operator]
        return
    bound = ">= 0" if allow_zero else "> 0"
    raise SpecError(f"{owner}: {name}={value!r} is invalid; give seconds {bound} or math.inf")


def _check_shutdown(owner: str, value: object) -> None:
    if value == "brutal":
        return
    _check_timeout(owner, "shutdown", value, allow_zero=True)


def _check_restart(owner: str, value: object) -> None:
    if value not in tuple(Restart):
        choices = ", ".join(repr(r.value) for r in Restart)
        raise SpecError(f"{owner}: restart={value!r} is invalid; use one of {choices}")


class Backoff(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Delay between consecutive restarts of the same child, so a crash loop idles.

    The first restart after a child has been up for ``reset_after`` seconds (or ever)
    is immediate; each further consecutive restart waits ``initial * factor ** (n - 2)``
    seconds for the n-th, capped at ``max``.
    """

    initial: float = 0.1
    factor: float = 2.0
    max: float = 5.0
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        _check_timeout("Backoff", "initial", self.initial, allow_zero=True)
        _check_timeout("Backoff", "max", self.max, allow_zero=True)
        _check_timeout("Backoff", "reset_after", self.reset_after, allow_zero=True)
        factor: object = self.factor
        if not isinstance(factor, int | float) or factor < 1:
            raise SpecError(f"Backoff: factor={self.factor!r} is invalid; give a number >= 1")
        if self.max < self.initial:
            raise SpecError(
                f"Backoff: max={self.max!r} is below initial={self.initial!r}; raise max"
            )

    def delay(self, consecutive: int) -> float:
        """Seconds to wait before the ``consecutive``-th restart in a row (1-based)."""
        if consecutive <= 1:
            return 0.0
        exponent = min(consecutive - 2, 64)
        return float(min(self.max, self.initial * self.factor**exponent))


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A child that is a Trio task in the supervisor's own process.

    ``target(*args, task_status=...)`` must call ``task_status.started()`` once ready.
    Stopping it cancels it; ``shutdown`` is how long the supervisor waits for it to
    finish unwinding before logging that it is stuck (a task cannot be killed).
    """

    id: str
    target: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...] = ()
    restart: Restart = Restart.PERMANENT
    shutdown: Shutdown = 5.0
    start_timeout: float = 5.0

    def __post_init__(self) -> None:
        _check_id(self.id)
        owner = f"TaskSpec {self.id!r}"
        if not callable(self.target):
            raise SpecError(f"{owner}: target must be an async function, got {self.target!r}")
        if not isinstance(self.args, tuple):
            raise SpecError(f"{owner}: args must be a tuple, got {type(self.args).__name__}")
        _check_restart(owner, self.restart)
        _check_shutdown(owner, self.shutdown)
        _check_timeout(owner, "start_timeout", self.start_timeout)

    @property
    def kind(self) -> Literal["task"]:
        """Always ``"task"``."""
        return "task"


class ProcessSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A child that is a fresh Python interpreter.

    ``target`` is either ``"pkg.module:function"``, run as
    ``python -m supervisors.child_runtime pkg.module:function *args`` where the function
    is ``def main(ready, *args)`` or ``async def main(ready, *args)``; or a bare
    ``"pkg.module"``, run as ``python -m pkg.module *args``, which must call
    :func:`supervisors.setup_child` itself and then ``ready()``.

    ``env`` entries are added to this process's environment (``PYTHONPATH`` entries
    are prepended to the inherited path). Stopping it sends SIGTERM, waits
    ``shutdown`` seconds, then sends SIGKILL; ``"brutal"`` sends SIGKILL at once.
    """

    id: str
    target: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    python: str | None = None
    restart: Restart = Restart.PERMANENT
    shutdown: Shutdown = 5.0
    start_timeout: float = 10.0
    standby: bool = False

    def __post_init__(self) -> None:
        _check_id(self.id)
        owner = f"ProcessSpec {self.id!r}"
        if not isinstance(self.target, str) or not _TARGET.match(self.target):
            raise SpecError(
                f"{owner}: target={self.target!r} is invalid; give 'pkg.module:function' "
                "(run through supervisors.child_runtime) or 'pkg.module' (run with python -m)"
            )
        if not isinstance(self.args, tuple) or not all(isinstance(a, str) for a in self.args):
            raise SpecError(f"{owner}: args must be a tuple of str, got {self.args!r}")
        env_ok = isinstance(self.env, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        )
        if not env_ok:
            raise SpecError(f"{owner}: env must map str to str, got {self.env!r}")
        _check_restart(owner, self.restart)
        _check_shutdown(owner, self.shutdown)
        _check_timeout(owner, "start_timeout", self.start_timeout)
        if not isinstance(self.standby, bool):
            raise SpecError(f"{owner}: standby must be True or False, got {self.standby!r}")
        if self.standby and ":" not in self.target:
            raise SpecError(
                f"{owner}: standby=True needs a 'pkg.module:function' target (a standby "
                "parks in supervisors.child_runtime before calling it); "
                f"{self.target!r} runs with python -m"
            )

    @property
    def kind(self) -> Literal["process"]:
        """Always ``"process"``."""
        return "process"


class SupervisorSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A supervisor: its children, its strategy and its restart intensity.

    Used for nested supervisors (as a child spec of another supervisor) and built
    internally by :func:`supervisors.open_supervisor` for the root. If more than
    ``max_restarts`` restarts happen within ``within`` seconds, the supervisor stops
    all of its children in reverse start order and raises
    :class:`~supervisors.RestartIntensityExceeded`.
    """

    id: str
    children: tuple[ChildSpec, ...] = ()
    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    within: float = 5.0
    backoff: Backoff = Backoff()
    restart: Restart = Restart.PERMANENT
    shutdown: Shutdown = math.inf
    start_timeout: float = math.inf

    def __post_init__(self) -> None:
        _check_id(self.id)
        owner = f"SupervisorSpec {self.id!r}"
        if not isinstance(self.children, tuple):
            raise SpecError(f"{owner}: children must be a tuple of child specs")
        seen: set[str] = set()
        for child in self.children:
            if not isinstance(child, TaskSpec | ProcessSpec | SupervisorSpec):
                raise SpecError(
                    f"{owner}: {child!r} is not a TaskSpec, ProcessSpec or SupervisorSpec"
                )
            if child.id in seen:
                raise SpecError(f"{owner}: two children share the id {child.id!r}; rename one")
            seen.add(child.id)
        if self.strategy not in tuple(Strategy):
            choices = ", ".join(repr(s.value) for s in Strategy)
            raise SpecError(f"{owner}: strategy={self.strategy!r} is invalid; use one of {choices}")
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise SpecError(f"{owner}: max_restarts={self.max_restarts!r} must be an int >= 0")
        _check_timeout(owner, "within", self.within)
        if not isinstance(self.backoff, Backoff):
            raise SpecError(f"{owner}: backoff must be a Backoff, got {self.backoff!r}")
        _check_restart(owner, self.restart)
        _check_shutdown(owner, self.shutdown)
        _check_timeout(owner, "start_timeout", self.start_timeout)

    @property
    def kind(self) -> Literal["supervisor"]:
        """Always ``"supervisor"``."""
        return "supervisor"


ChildSpec = TaskSpec | ProcessSpec | SupervisorSpec
"""Anything a supervisor can start."""
