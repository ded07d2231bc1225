"""Process actors: across processes, remote errors, durable mailboxes across kill -9.

Every actor process is a supervisor child; each test checks by PID that none is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
import trio

import actorq
import actorq.nats
import supervisors
from actorq.actors.host import actor_process_spec
from supervisors import ChildSnapshot
from tests.helpers import paths

from .test_actors import Add, Counter, Divide, Forwarder, Recorder, Seen, Total

ROOT = str(paths.ROOT)


def _pids(node: ChildSnapshot) -> list[int]:
    own = [node.pid] if node.kind == "process" and node.pid else []
    return own + [pid for child in node.children for pid in _pids(child)]


def _find(node: ChildSnapshot, child_id: str) -> ChildSnapshot:
    for child in node.children:
        if child.id == child_id:
            return child
    raise KeyError(child_id)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill_all(pids: set[int]) -> None:
    # A failed test must not leave actor processes behind either.
    for pid in pids:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


async def _collect(channel: trio.MemoryReceiveChannel[Seen], n: int) -> list[Seen]:
    return [await channel.receive() for _ in range(n)]


async def test_send_and_ask_work_across_two_actor_processes(nats_url: str) -> None:
    ns = f"t{uuid.uuid4().hex[:10]}"
    send, receive = trio.open_memory_channel[Seen](100)
    pids: set[int] = set()
    try:
        with trio.fail_after(40):
            async with actorq.open_actor_supervisor(nats_url, namespace=ns) as sup:
                await sup.spawn(Recorder, send, [], name="recorder")
                counter = await sup.spawn(Counter, "recorder", name="counter", process=True)
                forwarder = await sup.spawn(Forwarder, "counter", name="fwd", process=True)
                pids.update(_pids(sup.snapshot()))
                for i in range(1, 6):
                    await forwarder.send(Add(i))
                seen = await _collect(receive, 5)
                reply = await counter.ask(Total())
                with pytest.raises(actorq.RemoteError) as info:
                    await counter.ask(Divide(1, 0))
            assert all(_gone(pid) for pid in pids)
    finally:
        _kill_all(pids)
    counter_pid = reply.pid
    assert [s.amount for s in seen] == [1, 2, 3, 4, 5]
    assert {s.pid for s in seen} == {counter_pid}
    assert counter_pid != os.getpid()
    assert reply.total == 15
    assert info.value.exc_type == "ZeroDivisionError"
    assert "test_actors.py" in info.value.traceback


async def test_a_durable_mailbox_keeps_messages_sent_while_the_killed_actor_restarts(
    nats_url: str,
) -> None:
    ns = f"t{uuid.uuid4().hex[:10]}"
    send, receive = trio.open_memory_channel[Seen](100)
    pids: set[int] = set()
    try:
        with trio.fail_after(40):
            async with actorq.open_actor_supervisor(nats_url, namespace=ns, max_restarts=3) as sup:
                await sup.spawn(Recorder, send, [], name="recorder")
                counter = await sup.spawn(
                    Counter,
                    "recorder",
                    name="counter",
                    process=True,
                    mailbox="durable",
                    ack_wait=2.0,
                )
                await counter.send(Add(1))
                (first,) = await _collect(receive, 1)
                victim = _find(sup.snapshot(), "counter").pid
                assert victim == first.pid
                pids.add(victim)
                os.kill(victim, signal.SIGKILL)
                # Sent at once: the replacement is still importing, so these wait in
                # the stream (a new interpreter takes far longer than five publishes).
                for i in range(10, 15):
                    await counter.send(Add(i))
                later = await _collect(receive, 5)
                after = _find(sup.snapshot(), "counter")
                pids.update(_pids(sup.snapshot()))
                # The restarted actor answers asks too (state starts afresh).
                reply = await counter.ask(Total())
            assert all(_gone(pid) for pid in pids)
    finally:
        _kill_all(pids)
    assert after.restarts == 1
    # One may have reached the killed process's last pull request: it comes back
    # after the ack wait, so order is not kept across a crash.
    assert sorted(s.amount for s in later) == [10, 11, 12, 13, 14]
    assert {s.pid for s in later} == {after.pid} != {victim}
    assert reply.total == sum(range(10, 15))


async def test_the_spec_builder_runs_several_processes_that_share_one_mailbox(
    nats_url: str,
) -> None:
    ns = f"t{uuid.uuid4().hex[:10]}"
    spec = actor_process_spec(
        "counter", "tests.actors.test_actors:Counter", processes=2, url=nats_url, namespace=ns,
        sys_path=[ROOT],
    )  # fmt: skip
    assert isinstance(spec, supervisors.SupervisorSpec)
    pids: set[int] = set()
    try:
        with trio.fail_after(40):
            async with (
                supervisors.open_supervisor([spec]) as sup,
                actorq.nats.open_nats(nats_url) as nc,
            ):
                pids.update(_pids(sup.snapshot()))
                counter = actorq.ref("counter", conn=nc, namespace=ns, actor=Counter)
                answered = set()
                for _ in range(40):
                    answered.add((await counter.ask(Total())).pid)
                    if answered == pids:
                        break
            assert all(_gone(pid) for pid in pids)
    finally:
        _kill_all(pids)
    assert len(pids) == 2
    assert answered == pids


def test_the_spec_builder_refuses_bad_values_with_what_to_do() -> None:
    with pytest.raises(actorq.ConfigError, match="mailbox"):
        actor_process_spec("a", "m:C", mailbox="sometimes")  # type: ignore[arg-type]
    with pytest.raises(actorq.ConfigError, match="letters, digits"):
        actor_process_spec("a b", "m:C")
    with pytest.raises(actorq.ConfigError, match="cannot be imported"):
        actorq.actors.host.resolve_actor_class("tests.nowhere:Nothing")


def test_the_actors_example_prints_balances_audits_and_the_remote_error() -> None:
    out = subprocess.run(
        [sys.executable, str(Path(ROOT) / "examples" / "actors_bank.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "balance after deposit: 120" in out
    assert "audit: 100\nbalance after deposit: 120\naudit: 20" in out
    assert "withdraw failed remotely: ValueError - ada has only 120" in out
    assert "balance: 120" in out
