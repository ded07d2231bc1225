"""Starting children: in order, ready by pipe or task_status, bounded by start_timeout."""

from __future__ import annotations

import pytest
import trio
from sup_control import Controller, idle
from sup_specs import HERE, pspec

from supervisors import (
    ChildRestarted,
    ExitReason,
    ProcessSpec,
    StartFailed,
    StartTimeout,
    TaskSpec,
    open_supervisor,
)


async def never_started(task_status: trio.TaskStatus[None]) -> None:
    await trio.sleep_forever()


async def test_a_task_that_never_reports_ready_times_out(autojump_clock: trio.abc.Clock) -> None:
    control = Controller()
    children = [control.spec("before"), TaskSpec(id="slow", target=never_started, start_timeout=3)]
    with pytest.raises(StartTimeout, match="'slow' did not report ready within 3 s"):
        async with open_supervisor(children):
            pytest.fail("the block must not run")
    assert control.log == [("start", "before"), ("stop", "before")]


async def test_a_process_that_never_reports_ready_times_out() -> None:
    with trio.fail_after(10), pytest.raises(StartTimeout, match="start_timeout"):
        async with open_supervisor([pspec("slow", "never_ready", start_timeout=0.5)]):
            pytest.fail("the block must not run")


async def test_a_process_that_exits_before_ready_fails_to_start_with_its_exit_code() -> None:
    with trio.fail_after(10), pytest.raises(StartFailed) as info:
        async with open_supervisor([pspec("bad", "exit_before_ready", "3")]):
            pytest.fail("the block must not run")
    assert info.value.reason == ExitReason("exit_code", code=3)
    assert "exit code 3" in str(info.value)


async def test_async_targets_and_self_setting_up_modules_report_ready() -> None:
    module_child = ProcessSpec(id="module", target="sup_module_child", env={"PYTHONPATH": HERE})
    children = [pspec("async", "async_serve"), module_child]
    with trio.fail_after(10):
        async with open_supervisor(children) as sup:
            states = [(c.id, c.state, c.pid is not None) for c in sup.snapshot().children]
    assert states == [("async", "running", True), ("module", "running", True)]


async def test_a_process_exiting_non_zero_after_ready_is_restarted_as_transient() -> None:
    spec = pspec("flaky", "exit_with", "4", restart="transient")
    with trio.fail_after(10):
        # It keeps crashing; the backoff (0.1 s, 0.2 s, ...) leaves time to stop it.
        async with open_supervisor([spec], max_restarts=10) as sup:
            with sup.subscribe() as events:
                async for event in events:
                    if isinstance(event, ChildRestarted):
                        break
            assert sup.snapshot().find("flaky").last_exit == ExitReason("exit_code", code=4)
            await sup.terminate_child("flaky")


async def test_a_task_that_raises_before_ready_fails_to_start() -> None:
    async def broken(task_status: trio.TaskStatus[None]) -> None:
        raise OSError("no such thing")

    with pytest.raises(StartFailed, match="OSError: no such thing"):
        async with open_supervisor(
            [TaskSpec(id="t", target=idle), TaskSpec(id="b", target=broken)]
        ):
            pytest.fail("the block must not run")
