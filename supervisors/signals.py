"""Top-level signal handling: the first SIGINT/SIGTERM stops the tree gracefully, the
second kills.

Child processes live in their own process groups, so a terminal's Ctrl-C reaches only
the top-level process; it then stops the tree in reverse start order, each child with
its shutdown spec. An impatient second signal SIGKILLs every process child of this
process at once (their own children follow by parent-death signal), and a third exits
on the spot.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from .process_child import kill_all_children
from .serve import raise_single

__all__ = ["ShutdownSignals", "shutdown_on_signals"]

log = logging.getLogger("supervisors")


@dataclass
class ShutdownSignals:
    """What :func:`shutdown_on_signals` saw, for the program's exit status."""

    received: int | None = None
    """The first signal number received, or ``None``."""
    count: int = 0
    """How many signals were received in all."""

    @property
    def exit_status(self) -> int:
        """``128 + signal`` after a signal (the shell convention), else 0."""
        return 0 if self.received is None else 128 + self.received


async def _watch(
    receiver: AsyncIterator[int], body: trio.CancelScope, state: ShutdownSignals
) -> None:
    async for signum in receiver:
        state.count += 1
        name = signal.Signals(signum).name
        if state.count == 1:
            state.received = signum
            log.warning("%s received: stopping gracefully; send it again to kill", name)
            body.cancel()
        elif state.count == 2:
            log.warning("%s received again: killing every child process", name)
            kill_all_children()
        else:
            os._exit(128 + signum)


@asynccontextmanager
async def shutdown_on_signals(
    signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM),
) -> AsyncIterator[ShutdownSignals]:
    """Cancel the ``async with`` block gracefully on the first of ``signals``.

    Put the supervisor inside it::

        async with shutdown_on_signals() as got, open_supervisor(children) as sup:
            await trio.sleep_forever()
        sys.exit(got.exit_status)

    Must run in the main thread (Python only delivers signals there). The block ends
    normally after a signal; ``got.received`` says which one.
    """
    state = ShutdownSignals()
    with trio.open_signal_receiver(*signals) as receiver:
        try:
            async with trio.open_nursery() as nursery:
                with trio.CancelScope() as body:
                    nursery.start_soon(_watch, receiver, body, state)
                    yield state
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise_single(group)
