"""Worker threads for plain (sync) job functions, owned by a queue actor.

Why not ``trio.to_thread.run_sync``: measured here it tops out near 10k calls/s
however many run at once, a third of a queue actor's budget for a no-op job. Here
threads block on one shared queue and keep taking work while there is some, so a
busy pool hands jobs over without waking a sleeping thread each time (18-25k
calls/s on the same machine).

A thread is started only when a job arrives and none is idle, up to ``max_threads``
(the queue's concurrency, so I/O-bound sync jobs really run side by side); a thread
idle for ``idle_timeout`` seconds exits. :meth:`SyncJobThreads.close` stops them all.
A cancelled call is abandoned, as ``abandon_on_cancel=True`` would: the thread
finishes on its own and its result is dropped. A caller that must know when that
happens (a queue actor keeps a timed-out job's lease until then) passes ``ended``, an
event set once the call returned in its thread, abandoned or not.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import outcome
import trio

__all__ = ["SyncJobThreads"]


class _Call:
    __slots__ = ("abandoned", "ended", "fn", "task")

    def __init__(
        self, fn: Callable[[], Any], task: trio.lowlevel.Task, ended: trio.Event | None
    ) -> None:
        self.fn = fn
        self.task = task
        self.ended = ended
        self.abandoned = False


class SyncJobThreads:
    """A growable pool of threads running sync callables for Trio tasks.

    Example::

        threads = SyncJobThreads(max_threads=10)
        try:
            value = await threads.run(functools.partial(fn, *args))
        finally:
            threads.close()
    """

    def __init__(self, max_threads: int, *, idle_timeout: float = 10.0) -> None:
        self.max_threads = max_threads
        self.idle_timeout = idle_timeout
        self._token = trio.lowlevel.current_trio_token()
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # threads waiting for work that no caller has claimed
        self._backlog = 0  # calls queued while every thread was busy
        self._closed = False

    @property
    def threads(self) -> int:
        """How many threads exist now."""
        return len(self._threads)

    async def run(self, fn: Callable[[], Any], *, ended: trio.Event | None = None) -> Any:
        """Run ``fn()`` in a pool thread and return (or raise) what it did.

        ``ended`` is set once ``fn()`` has returned in its thread, even when this call
        was cancelled and the thread ran on (never, if it never returns).
        """
        if self._closed:
            raise RuntimeError("SyncJobThreads is closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        call = _Call(fn, trio.lowlevel.current_task(), ended)
        spawn: threading.Thread | None = None
        # Claim an idle thread, or start one, or queue behind busy ones; the put
        # happens under the lock so a thread retiring on idle timeout cannot miss it.
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self.max_threads:
                spawn = threading.Thread(target=self._work, name="actorq-job", daemon=True)
                self._threads.add(spawn)
            else:
                self._backlog += 1
            self._queue.put(call)
        if spawn is not None:
            spawn.start()

        def abort(_: Callable[[], Any]) -> trio.lowlevel.Abort:
            call.abandoned = True
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def _deliver(self, call: _Call, result: outcome.Outcome[Any]) -> None:
        # Runs in the Trio thread, as abort() does: no race on `abandoned`.
        if call.ended is not None:
            call.ended.set()
        if not call.abandoned:
            trio.lowlevel.reschedule(call.task, result)

    def _work(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                try:
                    call = self._queue.get(timeout=self.idle_timeout)
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():
                            self._idle -= 1  # retire; nobody claimed this thread
                            return
                    continue
                if call is None:
                    return
                result = outcome.capture(call.fn)
                try:
                    self._token.run_sync_soon(self._deliver, call, result)
                except trio.RunFinishedError:
                    return
                with self._lock:
                    if self._backlog > 0:
                        self._backlog -= 1  # take a queued call without going idle
                    else:
                        self._idle += 1
        finally:
            with self._lock:
                self._threads.discard(me)

    def close(self) -> None:
        """Ask every thread to exit once its current call returns; does not wait."""
        self._closed = True
        with self._lock:
            count = len(self._threads)
        for _ in range(count):
            self._queue.put(None)
