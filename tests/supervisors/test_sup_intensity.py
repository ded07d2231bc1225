"""Restart intensity: too many restarts stop every child and fail upward."""

from __future__ import annotations

import pytest
import trio
from conftest import gone
from sup_control import Controller, crash_after_start, idle
from sup_specs import pspec

from supervisors import (
    Backoff,
    ChildRestarted,
    RestartIntensityExceeded,
    SupervisorEscalated,
    SupervisorEvent,
    SupervisorSpec,
    TaskSpec,
    open_supervisor,
)

FAST = Backoff(initial=0.01, max=0.05)


async def test_exceeding_intensity_stops_all_children_in_reverse_order_and_carries_the_error() -> (
    None
):
    control = Controller()
    children = [
        control.spec("first"),
        pspec("proc", "serve_forever"),
        TaskSpec(id="crasher", target=crash_after_start),
        control.spec("last"),
    ]
    send, receive = trio.open_memory_channel[SupervisorEvent](100)
    pids: list[int | None] = []

    async def run() -> None:
        async with open_supervisor(
            children, max_restarts=2, within=10, backoff=FAST, events=send
        ) as sup:
            pids.append(sup.snapshot().find("proc").pid)
            await trio.sleep_forever()

    with trio.fail_after(10), pytest.raises(RestartIntensityExceeded) as info:
        await run()
    pid = pids[0]

    error = info.value
    assert error.child_id == "crasher"
    assert error.reason.kind == "exception"
    assert "ValueError: boom" in error.reason.text
    assert isinstance(error.__cause__, ValueError)
    assert "raise max_restarts" in str(error)
    assert control.log.index(("stop", "last")) < control.log.index(("stop", "first"))
    assert pid is not None
    assert gone(pid)
    events = [event async for event in receive]
    assert sum(isinstance(e, ChildRestarted) for e in events) == 2
    assert isinstance(events[-4], SupervisorEscalated)


async def test_a_nested_supervisor_that_gives_up_is_restarted_by_its_parent() -> None:
    nested = SupervisorSpec(
        id="inner",
        children=(TaskSpec(id="crasher", target=crash_after_start),),
        max_restarts=0,
    )
    with trio.fail_after(10):
        async with open_supervisor(
            [TaskSpec(id="steady", target=idle), nested], backoff=FAST, max_restarts=5
        ) as sup:
            with sup.subscribe() as events:
                async for event in events:
                    if isinstance(event, ChildRestarted) and event.child_id == "inner":
                        break
            inner = sup.snapshot().find("inner")
            assert inner.restarts >= 1
            assert inner.last_exit is not None
            assert "RestartIntensityExceeded" in inner.last_exit.text


async def test_a_nested_supervisor_failing_too_often_takes_the_root_down() -> None:
    nested = SupervisorSpec(
        id="inner",
        children=(TaskSpec(id="crasher", target=crash_after_start),),
        max_restarts=0,
    )
    with trio.fail_after(10), pytest.raises(RestartIntensityExceeded) as info:
        async with open_supervisor([nested], backoff=FAST, max_restarts=1):
            await trio.sleep_forever()
    assert info.value.child_id == "inner"
    assert isinstance(info.value.__cause__, RestartIntensityExceeded)
    assert info.value.__cause__.supervisor == "root/inner"
