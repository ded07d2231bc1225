"""The entry points that start a root supervisor: ``open_supervisor`` and ``serve_supervisor``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import NoReturn

import trio

from .events import EventBus, SupervisorEvent
from .spec import Backoff, ChildSpec, Strategy, SupervisorSpec
from .supervisor import DEFAULT_BACKOFF, Supervisor

__all__ = ["open_supervisor", "raise_single", "serve_supervisor"]


def raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise a group holding one plain exception as that exception, else the group.

    A context manager that opens a nursery would otherwise hand its caller an exception
    group for a lone error (the block's own, or the supervisor giving up).
    """
    if len(group.exceptions) == 1:
        single = group.exceptions[0]
        if isinstance(single, Exception) and not isinstance(single, BaseExceptionGroup):
            single.__suppress_context__ = True
            raise single from single.__cause__
    raise group


def _build_spec(
    children: Iterable[ChildSpec],
    id: str,
    strategy: Strategy | str,
    max_restarts: int,
    within: float,
    backoff: Backoff,
) -> SupervisorSpec:
    return SupervisorSpec(
        id=id,
        children=tuple(children),
        strategy=Strategy(strategy) if strategy in tuple(Strategy) else strategy,  # type: ignore[arg-type]
        max_restarts=max_restarts,
        within=within,
        backoff=backoff,
    )


async def serve_supervisor(
    children: Iterable[ChildSpec] = (),
    *,
    id: str = "root",
    strategy: Strategy | str = Strategy.ONE_FOR_ONE,
    max_restarts: int = 3,
    within: float = 5.0,
    backoff: Backoff = DEFAULT_BACKOFF,
    events: trio.MemorySendChannel[SupervisorEvent] | None = None,
    task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a root supervisor until cancelled: ``sup = await nursery.start(serve_supervisor, ...)``.

    Starts ``children`` in order, then reports the :class:`Supervisor` as ready.
    Returns after :meth:`Supervisor.stop`; on cancellation it stops every child first.
    Raises :class:`RestartIntensityExceeded` when it gives up, :class:`StartError` if an
    initial child does not start. ``events``, if given, receives every event of the
    tree (without waiting: it must have room) and is closed when the tree stops.
    """
    spec = _build_spec(children, id, strategy, max_restarts, within, backoff)
    bus = EventBus()
    if events is not None:
        bus.add_sink(events)
    try:
        await Supervisor(spec, bus, spec.id)._serve(task_status)
    finally:
        bus.close()


@asynccontextmanager
async def open_supervisor(
    children: Iterable[ChildSpec] = (),
    *,
    id: str = "root",
    strategy: Strategy | str = Strategy.ONE_FOR_ONE,
    max_restarts: int = 3,
    within: float = 5.0,
    backoff: Backoff = DEFAULT_BACKOFF,
    events: trio.MemorySendChannel[SupervisorEvent] | None = None,
) -> AsyncIterator[Supervisor]:
    """Start a supervisor for the duration of an ``async with`` block.

    The block starts once every child is ready. Leaving it (normally, by exception or by
    cancellation) stops every child in reverse start order, each with its shutdown
    spec, before the block exits. If the supervisor gives up, the block is cancelled and
    :class:`RestartIntensityExceeded` is raised from the ``async with``. Options are
    those of :func:`serve_supervisor`.
    """
    try:
        async with trio.open_nursery() as nursery:
            supervisor: Supervisor = await nursery.start(
                lambda task_status: serve_supervisor(
                    children,
                    id=id,
                    strategy=strategy,
                    max_restarts=max_restarts,
                    within=within,
                    backoff=backoff,
                    events=events,
                    task_status=task_status,
                )
            )
            try:
                yield supervisor
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise_single(group)
