"""Named fault points: make one step fail on purpose, to prove what survives it.

A fault point is a call at a place where the real world can fail (a store, a
publish, a wake-up message)::

    faults.hit("result.store")          # raises when armed with raise/timeout
    if faults.hit("result.notify"):     # True when armed with drop: skip the step
        return

Points are off unless armed, and cost one module-level check then. Arm them with
the environment variable ``ACTORQ_FAULTS``, read once at import, so child processes
inherit it::

    ACTORQ_FAULTS="result.store=timeout:1,queue.publish_outcome=raise:2"

or, in a test process, with :func:`arm` / :func:`injected`. Each entry is
``point=kind[:count][@trigger]``; ``count`` (default 1) is how many hits fire before
the point is quiet again, ``*`` for every hit. Kinds:

=========== ===================================================================
``raise``   raise :class:`FaultInjected` (a ``RuntimeError``)
``timeout`` raise ``TimeoutError``, as a NATS request that got no answer
``drop``    return ``True``: the caller skips the step (a lost message)
``exit``    end the process at once with ``os._exit(70)``, as ``kill -9`` would
=========== ===================================================================

With ``@trigger`` (a file path), a hit fires only when this process can claim the
file by removing it, so the point fires once per creation of the file, in whichever
process of a runtime gets there first, however many inherited the variable (and a
restarted process does not die again). A test arms every process of ``actorq up``
through its environment, then pulls the trigger when it wants, by creating the file::

    ACTORQ_FAULTS="queue.before_run=exit:*@/tmp/t/before_run"   # then: touch it

The points, by layer:

=============================  ===================================================
``client.publish_job``         client: the job's publish, after its id was claimed
``queue.dead_letter``          queue actor: publishing a dead letter
``queue.before_run``           queue actor: a job fetched and checked, not started
``queue.publish_outcome``      queue actor: publishing a batch of outcomes
``queue.before_ack``           queue actor: final outcomes published (durable),
                               their jobs' messages not yet acked
``result.store``               result actor: writing a batch of records (the batch
                               was fetched; nothing of it is stored yet)
``result.before_ack``          result actor: a batch stored, announced, its
                               outcome messages not yet acked
``result.notify``              result actor: the wake-up sent to a waiting client
``scheduler.after_fire``       scheduler: a schedule's due job published, the fire
                               not yet recorded (next timer, state, ack)
=============================  ===================================================

Imports nothing but the standard library, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from actorq.constants import ENV_FAULTS

__all__ = ["FaultInjected", "arm", "disarm", "fired", "hit", "injected"]

ENV_VAR = ENV_FAULTS
_KINDS = ("raise", "timeout", "drop", "exit")


class FaultInjected(RuntimeError):
    """Raised by a fault point armed with ``raise``."""


class _Fault:
    __slots__ = ("kind", "left", "trigger")

    def __init__(self, kind: str, left: int | None, trigger: str | None = None) -> None:
        self.kind = kind
        self.left = left  # None: fires on every hit
        self.trigger = trigger  # a file to claim (remove) before each fire


_lock = threading.Lock()
#: point -> armed fault; empty when nothing is armed (the usual case).
_armed: dict[str, _Fault] = {}
#: point -> how many times it fired.
_fired: dict[str, int] = {}


def _parse(spec: str) -> dict[str, _Fault]:
    plan: dict[str, _Fault] = {}
    for entry in spec.replace(";", ",").split(","):
        entry = entry.strip()
        if not entry:
            continue
        point, sep, action = entry.partition("=")
        action, at, trigger = action.partition("@")
        kind, _, count = action.partition(":")
        if not sep or kind not in _KINDS or (at and not trigger):
            raise ValueError(
                f"{ENV_VAR}: bad entry {entry!r}; write point=kind[:count][@trigger] with "
                f"kind one of {', '.join(_KINDS)}, e.g. 'result.store=timeout:1'"
            )
        left = None if count == "*" else int(count or 1)
        plan[point.strip()] = _Fault(kind, left, trigger or None)
    return plan


def arm(spec: str) -> None:
    """Arm the points of ``spec`` (same syntax as ``ACTORQ_FAULTS``), keeping others."""
    plan = _parse(spec)
    with _lock:
        _armed.update(plan)


def disarm() -> None:
    """Disarm every point and forget what fired."""
    with _lock:
        _armed.clear()
        _fired.clear()


def fired(point: str) -> int:
    """How many times ``point`` fired since the last :func:`disarm`."""
    return _fired.get(point, 0)


@contextlib.contextmanager
def injected(spec: str) -> Iterator[None]:
    """Arm ``spec`` for the block, then disarm everything."""
    arm(spec)
    try:
        yield
    finally:
        disarm()


def hit(point: str) -> bool:
    """Pass fault point ``point``: raise, end the process, or return ``True`` (drop)
    when it is armed; return ``False`` (carry on) when it is not."""
    if not _armed:
        return False
    with _lock:
        fault = _armed.get(point)
        if fault is None:
            return False
        if fault.trigger is not None:
            try:
                os.unlink(fault.trigger)  # atomic: one claimant per creation of the file
            except OSError:
                return False
        if fault.left is not None:
            fault.left -= 1
            if fault.left <= 0:
                del _armed[point]
        _fired[point] = _fired.get(point, 0) + 1
    if fault.kind == "raise":
        raise FaultInjected(f"fault injected at {point}")
    if fault.kind == "timeout":
        raise TimeoutError(f"fault injected at {point}: timed out")
    if fault.kind == "exit":
        os._exit(70)
    return True


arm(os.environ.get(ENV_VAR, ""))
