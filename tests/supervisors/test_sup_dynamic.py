"""Children added, stopped, restarted and removed at run time; serve_supervisor."""

from __future__ import annotations

import pytest
import trio
from conftest import gone
from sup_control import idle
from sup_specs import pspec

from supervisors import (
    ChildNotFound,
    DuplicateChild,
    Restart,
    Supervisor,
    SupervisorError,
    SupervisorStopped,
    TaskSpec,
    open_supervisor,
    serve_supervisor,
)


async def test_start_terminate_restart_and_delete_a_process_child_at_run_time() -> None:
    with trio.fail_after(10):
        async with open_supervisor() as sup:
            added = await sup.start_child(pspec("worker", "serve_forever"))
            assert added.state == "running"
            assert added.pid is not None

            with pytest.raises(DuplicateChild, match="pick another id"):
                await sup.start_child(TaskSpec(id="worker", target=idle))

            await sup.terminate_child("worker")
            assert gone(added.pid)
            stopped = sup.snapshot().find("worker")
            assert stopped.state == "stopped"
            assert stopped.pid is None

            restarted = await sup.restart_child("worker")
            assert restarted.state == "running"
            assert restarted.restarts == 1
            assert restarted.pid not in (None, added.pid)

            again = await sup.restart_child("worker")
            assert again.restarts == 2
            assert restarted.pid is not None
            assert gone(restarted.pid)

            with pytest.raises(SupervisorError, match="terminate_child"):
                await sup.delete_child("worker")
            await sup.terminate_child("worker")
            await sup.delete_child("worker")
            assert sup.snapshot().children == ()
            with pytest.raises(ChildNotFound, match="worker"):
                await sup.terminate_child("worker")


async def test_terminating_a_temporary_child_removes_it() -> None:
    with trio.fail_after(5):
        async with open_supervisor() as sup:
            await sup.start_child(TaskSpec(id="once", target=idle, restart=Restart.TEMPORARY))
            await sup.terminate_child("once")
            assert sup.snapshot().children == ()


async def test_serve_supervisor_runs_under_any_nursery_and_stops_on_request() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            sup: Supervisor = await nursery.start(
                lambda task_status: serve_supervisor(
                    [pspec("p", "serve_forever")], id="served", task_status=task_status
                )
            )
            pid = sup.snapshot().find("p").pid
            assert sup.state == "running"
            sup.stop()
    assert sup.state == "stopped"
    assert pid is not None
    assert gone(pid)
    with pytest.raises(SupervisorStopped, match="not running"):
        await sup.start_child(TaskSpec(id="late", target=idle))
