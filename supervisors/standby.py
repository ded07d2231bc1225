"""Warm standbys: one spare process per ``ProcessSpec(standby=True)``, parked ahead.

A restarted process child pays for a fresh interpreter and for importing its code
(for a program on Trio and a network client, a few hundred milliseconds, most of it
imports). A :class:`StandbyPool` keeps one process of the spec started ahead, its
target imported and prepared (:func:`supervisors.on_standby`), parked on its control
socket (:mod:`supervisors.child_runtime`). A restart takes it and activates it
instead of spawning; the pool starts the next spare only once that replacement is
ready, so the two never compete for the CPU during a restart.

Ownership: the pool's keeper task (in its supervisor's nursery) owns the parked
process until :meth:`StandbyPool.take` hands it to an incarnation, which then owns
it like a spawned one. :meth:`StandbyPool.close` (the supervisor's stop) stops a
parked one; a spare that dies while parked is replaced, after a growing delay if
that keeps happening (a target that cannot even be imported does not spin).
"""

from __future__ import annotations

import logging

import trio

from .events import EventBus, ExitReason, StandbyParked, now
from .exceptions import StartError, StartFailed
from .process_child import Spawned, park_process, stop_spawned
from .spec import ProcessSpec

__all__ = ["StandbyPool"]

log = logging.getLogger("supervisors")

#: Delay before the n-th consecutive replacement of a spare that failed or died young.
_RETRY_INITIAL = 0.5
_RETRY_MAX = 30.0
#: A spare that stayed parked this long and then died does not count as failing.
_HEALTHY_AFTER = 10.0


class StandbyPool:
    """At most one parked spare process for ``spec`` (and the specs equal to it but
    for their id). Run :meth:`keep` in the supervisor's nursery."""

    def __init__(self, spec: ProcessSpec, path: str, bus: EventBus) -> None:
        self.spec = spec
        self.path = path
        self._bus = bus
        self._parked: Spawned | None = None
        self._wanted = trio.Event()
        self._watch = trio.CancelScope()
        self._handed = trio.Event()
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self.failures = 0
        #: Spares started so far (for tests and snapshots).
        self.spawned = 0

    @property
    def pid(self) -> int | None:
        """The parked spare's pid, ``None`` when there is none right now."""
        return self._parked.pid if self._parked is not None else None

    def refill(self) -> None:
        """Start a spare (if none is parked or on its way)."""
        self._wanted.set()

    async def take(self) -> Spawned | None:
        """The parked spare, now the caller's (``None`` if there is none)."""
        spawned = self._parked
        if spawned is None:
            return None
        self._parked = None
        # The next spare waits for this replacement's refill(), not an earlier one.
        self._wanted = trio.Event()
        self._watch.cancel()
        # The keeper stops waiting on the spare's pidfd before the caller does.
        await self._handed.wait()
        return spawned

    async def close(self) -> None:
        """Stop the keeper and the parked spare; returns once it is gone."""
        self._scope.cancel()
        await self._done.wait()

    async def keep(self) -> None:
        """Keep one spare parked whenever one is wanted, until :meth:`close`."""
        try:
            with self._scope:
                while True:
                    await self._wanted.wait()
                    self._wanted = trio.Event()
                    if self.failures:
                        await trio.sleep(min(_RETRY_MAX, _RETRY_INITIAL * 2 ** (self.failures - 1)))
                    await self._park_one()
        finally:
            self._done.set()

    async def _park_one(self) -> None:
        try:
            spawned = await park_process(self.spec)
        except StartError as exc:
            self.failures += 1
            # The reason alone: the child's own restart reports the same failure, with
            # the advice that goes with it.
            why = exc.reason.describe() if isinstance(exc, StartFailed) else str(exc)
            log.warning("standby of %r in %r did not park: %s", self.spec.id, self.path, why)
            self._wanted.set()
            return
        self.spawned += 1
        parked_at = trio.current_time()
        self._watch = trio.CancelScope()
        self._handed = trio.Event()
        self._parked = spawned
        self._bus.publish(StandbyParked(self.path, self.spec.id, spawned.pid, now()))
        taken = False
        try:
            with self._watch:
                await spawned.process.wait()
        finally:
            taken = self._parked is not spawned
            if not taken:  # died while parked, or the pool is closing
                self._parked = None
                await stop_spawned(spawned, self.spec)
            self._handed.set()
        if taken:
            self.failures = 0  # it parked fine; its incarnation owns it now
            return
        # Died while parked (killed by someone, or its own thread crashed it).
        healthy = trio.current_time() - parked_at >= _HEALTHY_AFTER
        self.failures = 1 if healthy else self.failures + 1
        code = spawned.process.returncode
        why = ExitReason.from_returncode(code).describe() if code is not None else "gone"
        log.warning(
            "standby of %r in %r (pid %d) died while parked: %s; starting another",
            self.spec.id,
            self.path,
            spawned.pid,
            why,
        )
        self._wanted.set()
