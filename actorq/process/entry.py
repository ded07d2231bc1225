"""What every actor process's entry point does: logging, signals, ready, run.

The queue, result, scheduler and user-actor hosts are process children of a
supervisor (``python -m supervisors.child_runtime actorq.<x>:main SETTINGS_JSON``).
Each runs one Trio service until SIGTERM/SIGINT. How they react to the signal
differs (the queue actor drains; the others just stop), so that part is a callback.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["cancel_on_signals", "default_logging", "run_until_signalled"]


def default_logging() -> None:
    """Plain text logging, unless ``actorq up`` configured it already (then a no-op)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


async def cancel_on_signals(scope: trio.CancelScope) -> None:
    """Cancel ``scope`` on the first SIGTERM or SIGINT."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


def run_until_signalled(
    ready: Callable[[], None],
    serve: Callable[..., Awaitable[Any]],
) -> None:
    """``trio.run`` a ``serve(task_status=...)`` service; ``ready()`` once it started;
    stop it (cancel) on SIGTERM/SIGINT."""
    default_logging()

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_on_signals, nursery.cancel_scope)
            await nursery.start(serve)
            ready()

    trio.run(run)
