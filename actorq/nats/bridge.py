"""One asyncio event loop in a helper thread, crossed from Trio in batches.

nats-py is asyncio-only. Measured on this machine class, running it inside a
trio-asyncio loop gives about 0.3x of plain asyncio, while a plain asyncio loop in a
helper thread gives about 0.8-1.0x *if* the two worlds are crossed rarely. So:

* Every call from Trio is queued in an outbox; the first call into an empty outbox
  wakes the asyncio loop once, and the loop starts every queued call in one go.
  Completions travel back the same way through an inbox. Concurrent Trio callers
  therefore share crossings automatically; bulk APIs (``publish_many``, ``fetch``,
  ``ack_many``) put whole batches through one crossing.
* Cancellation keeps Trio semantics: cancelling the Trio task cancels the asyncio
  task, and the Trio task only resumes once the asyncio side has really finished, so
  nothing keeps running on the connection behind the caller's back.

The thread is owned by :func:`open_bridge`: started on entry, stopped and joined on
exit. Synchronous callers on other threads use :meth:`AsyncioBridge.call_blocking`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import outcome
import trio

__all__ = ["AsyncioBridge", "open_bridge"]

T = TypeVar("T")
P = ParamSpec("P")

#: How often a cancelled asyncio task that is still running is cancelled again.
_RECANCEL_EVERY = 0.05

_Call = tuple[Callable[[], Awaitable[Any]], trio.lowlevel.Task, "_Pending"]


class _Pending:
    """State of one crossing, shared by the two threads."""

    __slots__ = ("abort_requested", "asyncio_task", "raise_cancel")

    def __init__(self) -> None:
        self.asyncio_task: asyncio.Task[Any] | None = None
        self.abort_requested = False
        self.raise_cancel: Callable[[], Any] | None = None


class AsyncioBridge:
    """Runs coroutine functions on a private asyncio loop on behalf of Trio tasks.

    Create it with :func:`open_bridge`; do not instantiate directly.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, token: trio.lowlevel.TrioToken) -> None:
        self.loop = loop
        self._token = token
        self._lock = threading.Lock()
        self._outbox: list[_Call] = []
        self._inbox: list[tuple[trio.lowlevel.Task, _Pending, outcome.Outcome[Any]]] = []
        self.crossings = 0  # loop wake-ups; lets benchmarks show batching works

    # -- Trio side -----------------------------------------------------------------

    async def run(self, afn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``afn(*args, **kwargs)`` on the asyncio loop from a Trio task."""
        await trio.lowlevel.checkpoint_if_cancelled()
        pending = _Pending()
        task = trio.lowlevel.current_task()
        with self._lock:
            self._outbox.append((lambda: afn(*args, **kwargs), task, pending))
            wake = len(self._outbox) == 1
        if wake:
            self.crossings += 1
            self.loop.call_soon_threadsafe(self._start_outbox)

        def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
            pending.raise_cancel = raise_cancel
            self.loop.call_soon_threadsafe(self._abort, pending)
            # Resume only when the asyncio side has finished: see module docstring.
            return trio.lowlevel.Abort.FAILED

        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    def _finish_inbox(self) -> None:
        with self._lock:
            done, self._inbox = self._inbox, []
        for task, pending, result in done:
            if pending.raise_cancel is not None and isinstance(result, outcome.Error) and (
                isinstance(result.error, asyncio.CancelledError)
            ):
                result = outcome.capture(pending.raise_cancel)
            trio.lowlevel.reschedule(task, result)

    # -- asyncio side --------------------------------------------------------------

    def _start_outbox(self) -> None:
        with self._lock:
            calls, self._outbox = self._outbox, []
        for afn, task, pending in calls:
            if pending.abort_requested:
                self._complete(task, pending, outcome.Error(asyncio.CancelledError()))
                continue
            try:
                coro = afn()
                atask: asyncio.Task[Any] = self.loop.create_task(coro)  # type: ignore[arg-type]
            except BaseException as exc:  # a bad call must still wake its caller
                self._complete(task, pending, outcome.Error(exc))
                continue
            pending.asyncio_task = atask
            atask.add_done_callback(functools.partial(self._on_done, task, pending))

    def _on_done(
        self, task: trio.lowlevel.Task, pending: _Pending, atask: asyncio.Task[Any]
    ) -> None:
        self._complete(task, pending, _task_outcome(atask))

    def _abort(self, pending: _Pending) -> None:
        pending.abort_requested = True
        self._cancel_until_done(pending)

    def _cancel_until_done(self, pending: _Pending) -> None:
        atask = pending.asyncio_task
        if atask is None or atask.done():
            return
        atask.cancel()
        # A coroutine can swallow one cancellation (nats-py's first-connect retry loop
        # does, then retries for minutes): cancel again until it ends, or the Trio
        # caller, which resumes only once the asyncio side has finished, waits forever.
        self.loop.call_later(_RECANCEL_EVERY, self._cancel_until_done, pending)

    def _complete(
        self, task: trio.lowlevel.Task, pending: _Pending, result: outcome.Outcome[Any]
    ) -> None:
        with self._lock:
            self._inbox.append((task, pending, result))
            wake = len(self._inbox) == 1
        if wake:
            self._token.run_sync_soon(self._finish_inbox)

    # -- other threads -------------------------------------------------------------

    def call_blocking(
        self, afn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``afn`` on the loop from a plain (non-Trio, non-loop) thread and wait."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("call_blocking() called from the bridge's own loop thread")

        async def wrapper() -> T:
            return await afn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result()

    _thread: threading.Thread


def _task_outcome(task: asyncio.Task[Any]) -> outcome.Outcome[Any]:
    if task.cancelled():
        return outcome.Error(asyncio.CancelledError())
    exc = task.exception()
    if exc is not None:
        return outcome.Error(exc)
    return outcome.Value(task.result())


@contextlib.asynccontextmanager
async def open_bridge(name: str = "actorq-asyncio") -> AsyncIterator[AsyncioBridge]:
    """Start an asyncio loop in a helper thread for the duration of the block.

    Example::

        async with open_bridge() as bridge:
            nc = await bridge.run(nats.connect, url)
    """
    # Not new_event_loop(): once trio-asyncio is imported (for asyncio jobs) its policy
    # refuses to make a loop from inside Trio. A plain selector loop is all we need.
    loop = asyncio.SelectorEventLoop()
    started = threading.Event()

    def run_loop() -> None:
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        finally:
            # Cancel what is left so nothing is destroyed while pending.
            leftovers = asyncio.all_tasks(loop)
            for t in leftovers:
                t.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run_loop, name=name, daemon=True)
    bridge = AsyncioBridge(loop, trio.lowlevel.current_trio_token())
    bridge._thread = thread
    thread.start()
    try:
        await trio.to_thread.run_sync(started.wait)
        yield bridge
    finally:
        loop.call_soon_threadsafe(loop.stop)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)
