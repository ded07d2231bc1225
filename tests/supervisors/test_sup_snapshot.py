"""Snapshots and events reflect what happened."""

from __future__ import annotations

import os
import signal

import msgspec
import trio
from sup_control import idle
from sup_specs import pspec

from supervisors import (
    ChildExited,
    ChildRestarted,
    ChildSnapshot,
    ChildStarted,
    ExitReason,
    SupervisorEvent,
    SupervisorSpec,
    TaskSpec,
    open_supervisor,
)


async def test_a_killed_process_child_gets_a_new_pid_and_a_higher_restart_count() -> None:
    send, receive = trio.open_memory_channel[SupervisorEvent](100)
    with trio.fail_after(10):
        async with open_supervisor([pspec("worker", "serve_forever")], events=send) as sup:
            before = sup.snapshot().find("worker")
            assert before.state == "running"
            assert before.restarts == 0
            assert before.pid is not None
            assert before.started_at is not None
            os.kill(before.pid, signal.SIGKILL)
            async for event in receive:
                if isinstance(event, ChildRestarted):
                    break
            after = sup.snapshot().find("worker")
    assert after.pid is not None
    assert after.pid != before.pid
    assert after.restarts == 1
    assert after.started_at is not None
    assert after.started_at > before.started_at
    assert after.last_exit == ExitReason("signal", signal=signal.SIGKILL)
    assert after.last_exit.describe() == "killed by SIGKILL"

    events = [event async for event in receive]
    assert [type(e) for e in events] == [ChildExited]
    assert events[0].reason.kind == "shutdown"


async def test_started_events_come_in_start_order_and_record_pids() -> None:
    send, receive = trio.open_memory_channel[SupervisorEvent](100)
    children = [TaskSpec(id="t", target=idle), pspec("p", "serve_forever")]
    with trio.fail_after(10):
        async with open_supervisor(children, events=send) as sup:
            pid = sup.snapshot().find("p").pid
    events = [event async for event in receive]
    assert events[:2] == [
        ChildStarted("root", "t", "task", None, events[0].at),
        ChildStarted("root", "p", "process", pid, events[1].at),
    ]
    assert [(type(e), e.child_id) for e in events[2:]] == [(ChildExited, "p"), (ChildExited, "t")]


async def test_a_snapshot_covers_nested_supervisors_and_round_trips_as_json() -> None:
    nested = SupervisorSpec(id="inner", children=(pspec("leaf", "serve_forever"),))
    with trio.fail_after(10):
        async with open_supervisor([TaskSpec(id="t", target=idle), nested], id="top") as sup:
            snapshot = sup.snapshot()
    assert snapshot.id == "top"
    assert snapshot.kind == "supervisor"
    assert snapshot.pid == os.getpid()
    assert [n.id for n in snapshot.walk()] == ["top", "t", "inner", "leaf"]
    leaf = snapshot.find("inner/leaf")
    assert leaf.kind == "process"
    assert leaf.state == "running"
    assert leaf.pid is not None
    assert leaf.pid != os.getpid()
    decoded = msgspec.json.decode(msgspec.json.encode(snapshot), type=ChildSnapshot)
    assert decoded == snapshot


async def test_nested_events_name_their_supervisor_by_path() -> None:
    nested = SupervisorSpec(id="inner", children=(TaskSpec(id="t", target=idle),))
    send, receive = trio.open_memory_channel[SupervisorEvent](100)
    with trio.fail_after(10):
        async with open_supervisor([nested], events=send):
            pass
    started = [e async for e in receive if isinstance(e, ChildStarted)]
    assert [(e.supervisor, e.child_id) for e in started] == [("root/inner", "t"), ("root", "inner")]
