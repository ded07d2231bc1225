"""Leaving a supervisor's scope stops every child, with each child's shutdown spec."""

from __future__ import annotations

import os
import signal

import pytest
import trio
from conftest import gone
from sup_control import Controller
from sup_specs import pspec

from supervisors import ChildExited, open_supervisor

MARGIN = 1.5


async def test_cancelling_the_scope_kills_a_child_ignoring_sigterm_after_its_timeout() -> None:
    shutdown = 0.5
    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            async with open_supervisor(
                [pspec("stubborn", "ignore_term", shutdown=shutdown)]
            ) as sup:
                pid = sup.snapshot().find("stubborn").pid
                began = trio.current_time()
                scope.cancel()
                await trio.sleep_forever()
        elapsed = trio.current_time() - began
    assert pid is not None
    assert gone(pid)
    assert shutdown <= elapsed < shutdown + MARGIN


async def test_brutal_shutdown_kills_at_once() -> None:
    with trio.fail_after(10):
        async with open_supervisor([pspec("stubborn", "ignore_term", shutdown="brutal")]) as sup:
            pid = sup.snapshot().find("stubborn").pid
            began = trio.current_time()
        elapsed = trio.current_time() - began
    assert pid is not None
    assert gone(pid)
    assert elapsed < 1.0  # graceful would take the default 5 s


async def test_an_exception_in_the_block_stops_children_and_propagates_unwrapped() -> None:
    pids: list[int | None] = []

    async def run() -> None:
        async with open_supervisor([pspec("worker", "serve_forever")]) as sup:
            pids.append(sup.snapshot().find("worker").pid)
            raise KeyError("oops")

    with trio.fail_after(10), pytest.raises(KeyError, match="oops"):
        await run()
    assert pids[0] is not None
    assert gone(pids[0])


async def test_children_stop_in_reverse_start_order() -> None:
    control = Controller()
    with trio.fail_after(5):
        async with open_supervisor([control.spec(x) for x in "abc"]):
            pass
    assert control.log == [
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
        ("stop", "c"),
        ("stop", "b"),
        ("stop", "a"),
    ]


async def test_cancelling_while_a_restart_is_starting_stops_promptly(tmp_path: object) -> None:
    marker = os.path.join(str(tmp_path), "ran")
    spec = pspec("once", "ready_only_once", marker, start_timeout=30)
    with trio.fail_after(5), trio.CancelScope() as scope:
        async with open_supervisor([spec]) as sup:
            with sup.subscribe() as events:
                pid = sup.snapshot().find("once").pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                async for event in events:
                    if isinstance(event, ChildExited):
                        break
            # The replacement never gets ready; the restart is still starting.
            assert sup.snapshot().find("once").state == "starting"
            scope.cancel()
            await trio.sleep_forever()
