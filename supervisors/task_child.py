"""Running one incarnation of a :class:`~supervisors.TaskSpec` inside the supervisor's nursery.

The target is awaited directly (not in a nursery of its own), so an exception it raises
reaches the supervisor as itself rather than wrapped in an exception group. Its
``task_status`` is a stand-in that lifts the start deadline and forwards readiness.
"""

from __future__ import annotations

import math

import trio

from .events import ExitReason
from .exceptions import StartFailed, StartTimeout
from .spec import TaskSpec

__all__ = ["run_task"]


class _StartReporter(trio.TaskStatus[object]):
    def __init__(self, outer: trio.TaskStatus[object], start_scope: trio.CancelScope) -> None:
        self._outer = outer
        self._start_scope = start_scope
        self.is_started = False

    def started(self, value: object = None) -> None:
        if self.is_started:
            raise RuntimeError("task_status.started() called twice")
        self.is_started = True
        self._start_scope.deadline = math.inf
        # An int is the pid of a process the task owns: snapshots show it.
        self._outer.started(value if isinstance(value, int) else None)


async def run_task(
    spec: TaskSpec,
    task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED,
) -> ExitReason:
    """Run ``spec.target`` until it returns; report ready when it calls ``started()``.

    A task that runs a process of its own may report its pid (``started(pid)``).
    Returns a ``normal`` exit reason; exceptions from the target after it is ready
    propagate unchanged. Raises :class:`StartTimeout` or :class:`StartFailed` when it
    does not get ready.
    """
    with trio.CancelScope(deadline=trio.current_time() + spec.start_timeout) as start_scope:
        reporter = _StartReporter(task_status, start_scope)
        try:
            await spec.target(*spec.args, task_status=reporter)
        except Exception as exc:
            if not reporter.is_started:
                raise StartFailed(spec.id, ExitReason.from_exception(exc)) from exc
            raise
    if not reporter.is_started:
        if start_scope.cancelled_caught:
            raise StartTimeout(spec.id, spec.start_timeout)
        raise StartFailed(
            spec.id,
            ExitReason("start_failed", text="returned without calling task_status.started()"),
        )
    return ExitReason("normal")
