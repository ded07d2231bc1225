"""User actors in one process: send, ask, remote errors, refs by name, supervision.

The actor classes here are also run as processes by ``tests/actors/test_host.py``.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import msgspec
import pytest
import trio

import actorq
import actorq.exceptions
import actorq.nats
from actorq import Actor, handler
from actorq.nats import actor_transport
from actorq.nats.embedded_server import find_nats_server, free_port

# -- messages and actors (importable by child processes) -------------------------------


class Add(msgspec.Struct, tag=True):
    amount: int


class Total(msgspec.Struct, tag=True):
    pass


class Divide(msgspec.Struct, tag=True):
    a: float
    b: float


class Crash(msgspec.Struct, tag=True):
    pass


class Seen(msgspec.Struct, tag=True):
    amount: int
    pid: int


class Stranger(msgspec.Struct, tag=True):
    pass


class Reply(msgspec.Struct):
    total: int
    pid: int


class Counter(Actor):
    """Adds up; can divide and crash; reports each Add to ``report_to`` if given."""

    def __init__(self, report_to: str = "") -> None:
        self.report_to = report_to
        self.total = 0

    @handler
    async def add(self, msg: Add) -> int:
        self.total += msg.amount
        if self.report_to:
            await self.ref(self.report_to).send(Seen(msg.amount, os.getpid()))
        return self.total

    @handler
    async def get_total(self, msg: Total) -> Reply:
        return Reply(self.total, os.getpid())

    @handler
    async def divide(self, msg: Divide) -> float:
        return msg.a / msg.b

    @handler
    async def crash(self, msg: Crash) -> None:
        raise RuntimeError("asked to crash")


class Forwarder(Actor):
    """Passes every Add on to the actor ``target`` (actor to actor, by name)."""

    def __init__(self, target: str) -> None:
        self.target = target

    @handler
    async def add(self, msg: Add) -> None:
        await self.ref(self.target).send(msg)


class Recorder(Actor):
    """Forwards every ``Seen`` to a Trio channel of the test."""

    def __init__(self, channel: trio.MemorySendChannel[Seen], starts: list[int]) -> None:
        self.channel = channel
        starts.append(1)

    @handler
    async def seen(self, msg: Seen) -> None:
        await self.channel.send(msg)


class Lifecycle(Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("start")

    async def on_stop(self) -> None:
        self.log.append("stop")

    @handler
    async def crash(self, msg: Crash) -> None:
        raise RuntimeError("crash on send")

    @handler
    async def total(self, msg: Total) -> int:
        return len(self.log)


def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


# -- tests -----------------------------------------------------------------------------


async def test_send_and_ask_reach_an_in_process_actor_in_order(nats_url: str) -> None:
    with trio.fail_after(20):
        async with actorq.open_actor_supervisor(nats_url, namespace=namespace()) as sup:
            counter = await sup.spawn(Counter, name="counter")
            for i in range(100):
                await counter.send(Add(i))
            reply = await counter.ask(Total())
    assert reply == Reply(total=sum(range(100)), pid=os.getpid())


async def test_a_refs_actor_link_lives_and_dies_with_its_connection(nats_url: str) -> None:
    ns = namespace()
    with trio.fail_after(30):
        async with actorq.open_actor_supervisor(nats_url, namespace=ns) as sup:
            await sup.spawn(Counter, name="counted")
            before = trio.lowlevel.current_statistics().tasks_living
            async with actorq.nats.open_nats(nats_url) as nc:
                counter = actorq.ref("counted", conn=nc, namespace=ns, actor=Counter)
                assert (await counter.ask(Total())).total == 0
                link = actor_transport._transports[nc].link
                assert link is not None, "the test needs the Trio link (plain TCP, no TLS)"
                assert link._stream is not None
            # Leaving open_nats closed the link's socket and ended its task: no system
            # task lingers, reconnecting forever to a connection that is gone.
            assert link._stream is None
            assert trio.lowlevel.current_statistics().tasks_living == before


class Probed(Counter):
    def stats(self) -> dict[str, int | float | str | bool | None]:
        return {"total": self.total}


async def test_every_actor_answers_ping_and_introspect_with_its_own_figures(
    nats_url: str,
) -> None:
    ns = namespace()
    with trio.fail_after(20):
        async with actorq.open_actor_supervisor(nats_url, namespace=ns) as sup:
            typed = await sup.spawn(Probed, name="probed")
            await typed.ask(Add(5))
            pong = await typed.ping()
            # A ref that knows nothing of the class asks the same way.
            info = await actorq.ref("probed", conn=sup.conn, namespace=ns).introspect()
            plain = await sup.spawn(Counter, name="plain")
            plain_info = await plain.introspect()
    assert (pong.name, pong.pid) == ("probed", os.getpid())
    assert (info.name, info.role, info.pid) == ("probed", "actor", os.getpid())
    assert info.stats == {"total": 5}
    assert 0 < info.started_at <= time.time()
    assert plain_info.stats == {}


class FailsToStart(Actor):
    async def on_start(self) -> None:
        raise RuntimeError("no database")


async def test_spawn_raises_spawn_error_for_a_taken_name_or_a_failed_start(nats_url: str) -> None:
    with trio.fail_after(30):
        async with actorq.open_actor_supervisor(nats_url, namespace=namespace()) as sup:
            await sup.spawn(Counter, name="taken")
            with pytest.raises(actorq.exceptions.SpawnError, match="already runs") as taken:
                await sup.spawn(Counter, name="taken")
            with pytest.raises(actorq.exceptions.SpawnError, match="did not start") as failed:
                await sup.spawn(FailsToStart, name="broken", restart="temporary")
    assert isinstance(taken.value, actorq.ActorError)
    assert failed.value.__cause__ is not None


async def test_a_handler_exception_comes_back_as_a_remote_error_and_the_actor_carries_on(
    nats_url: str,
) -> None:
    with trio.fail_after(20):
        async with actorq.open_actor_supervisor(nats_url, namespace=namespace()) as sup:
            counter = await sup.spawn(Counter, name="counter")
            with pytest.raises(actorq.RemoteError) as info:
                await counter.ask(Divide(1, 0))
            assert await counter.ask(Add(5)) == 5
    err = info.value
    assert err.exc_type == "ZeroDivisionError"
    assert err.exc_message == "float division by zero"
    assert "in divide" in err.traceback
    assert err.actor == "counter"


async def test_a_message_type_without_a_handler_is_a_clear_unhandled_message_error(
    nats_url: str,
) -> None:
    with trio.fail_after(20):
        async with actorq.open_actor_supervisor(nats_url, namespace=namespace()) as sup:
            counter = await sup.spawn(Counter, name="counter")
            unhandled = "no handler for message type 'Stranger'"
            with pytest.raises(actorq.exceptions.UnhandledMessage, match=unhandled):
                await counter.ask(Stranger())


class Untagged(msgspec.Struct):
    x: int


def test_a_handler_for_an_untagged_or_non_struct_type_is_refused_with_what_to_do() -> None:
    class Bad(Actor):
        @handler
        async def on_untagged(self, msg: Untagged) -> None: ...

    class Worse(Actor):
        @handler
        async def on_int(self, msg: int) -> None: ...

    with pytest.raises(actorq.exceptions.ActorDefinitionError, match="tag=True"):
        actorq.actors.actor.dispatch_table(Bad)
    with pytest.raises(actorq.exceptions.ActorDefinitionError, match=r"not a msgspec\.Struct"):
        actorq.actors.actor.dispatch_table(Worse)
    with pytest.raises(TypeError, match="tag=True"):
        actorq.actors.actor.encode_message(Untagged(1))


async def test_an_ask_to_an_actor_nobody_serves_fails_at_once(nats_url: str) -> None:
    with trio.fail_after(5):
        async with actorq.open_actor_supervisor(nats_url, namespace=namespace()) as sup:
            with pytest.raises(actorq.exceptions.ActorUnavailable, match=r"\(no responders\)"):
                await sup.ref("nobody").ask(Total(), timeout=4)


async def test_an_ask_without_a_reply_in_time_raises_ask_timeout(nats_url: str) -> None:
    ns = namespace()
    with trio.fail_after(10):
        async with (
            actorq.nats.open_nats(nats_url) as nc,
            actorq.open_actor_supervisor(conn=nc, namespace=ns),
            # A bare subscriber that never answers stands in for a busy actor.
            nc.subscribe(f"{ns}.actor.silent"),
        ):
            await nc.flush()
            with pytest.raises(actorq.AskTimeout):
                await actorq.ref("silent", conn=nc, namespace=ns).ask(Total(), timeout=0.3)


async def test_a_ref_by_name_from_another_connection_reaches_the_actor(nats_url: str) -> None:
    ns = namespace()
    with trio.fail_after(20):
        async with actorq.open_actor_supervisor(nats_url, namespace=ns) as sup:
            await sup.spawn(Counter, name="counter")
            async with actorq.nats.open_nats(nats_url) as other:
                counter = actorq.ref("counter", conn=other, namespace=ns)
                await counter.send(Add(2))
                assert await counter.ask(Add(3)) == 5
                typed = actorq.ref("counter", conn=other, namespace=ns, actor=Counter)
                assert isinstance(await typed.ask(Total()), Reply)
                assert await counter.ask(Total(), returns=Reply) == Reply(5, os.getpid())


async def test_a_crashing_send_handler_restarts_the_actor_with_on_stop_and_on_start(
    nats_url: str,
) -> None:
    log: list[str] = []
    with trio.fail_after(20):
        async with actorq.open_actor_supervisor(nats_url, namespace=namespace()) as sup:
            ref = await sup.spawn(Lifecycle, log, name="life")
            with sup.supervisor.subscribe() as events:
                await ref.send(Crash())
                async for event in events:
                    if type(event).__name__ == "ChildRestarted":
                        break
            assert await ref.ask(Total()) == 3
            assert sup.snapshot().children[0].restarts == 1
    assert log == ["start", "stop", "start", "stop"]


async def test_a_temporary_actor_that_crashes_is_gone_and_asks_fail_at_once(
    nats_url: str,
) -> None:
    log: list[str] = []
    with trio.fail_after(20):
        async with actorq.open_actor_supervisor(nats_url, namespace=namespace()) as sup:
            ref = await sup.spawn(Lifecycle, log, name="life", restart="temporary")
            with sup.supervisor.subscribe() as events:
                await ref.send(Crash())
                async for event in events:
                    if type(event).__name__ == "ChildExited":
                        break
            with pytest.raises(actorq.exceptions.ActorUnavailable):
                await ref.ask(Total())
            assert sup.snapshot().children == ()


async def test_restart_intensity_exceeded_comes_out_of_the_supervisor_block(
    nats_url: str,
) -> None:
    import supervisors

    log: list[str] = []

    async def crash_twice() -> None:
        async with actorq.open_actor_supervisor(
            nats_url, namespace=namespace(), max_restarts=1, within=30
        ) as sup:
            ref = await sup.spawn(Lifecycle, log, name="life")
            with sup.supervisor.subscribe() as events:
                await ref.send(Crash())
                async for event in events:
                    if type(event).__name__ == "ChildRestarted":
                        break
                await ref.send(Crash())  # the second crash within 30 s: give up
                await trio.sleep_forever()

    with trio.fail_after(20), pytest.raises(supervisors.RestartIntensityExceeded):
        await crash_twice()


async def test_actors_work_over_the_asyncio_bridge_when_the_trio_link_is_off(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The path taken when the NATS connection needs TLS, a .creds file or nkeys.
    monkeypatch.setenv(actorq.nats.actor_transport.ENV_LINK, "0")
    with trio.fail_after(20):
        async with actorq.open_actor_supervisor(nats_url, namespace=namespace()) as sup:
            counter = await sup.spawn(Counter, name="counter")
            assert actorq.nats.actor_transport._transports[sup.conn].link is None
            for i in range(100):
                await counter.send(Add(i))
            assert (await counter.ask(Total())).total == sum(range(100))
            with pytest.raises(actorq.RemoteError):
                await counter.ask(Divide(1, 0))
            with pytest.raises(actorq.exceptions.ActorUnavailable):
                await sup.ref("nobody").ask(Total())


def _start_server(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    # nats-server itself (sets SO_REUSEADDR): NatsServerProcess refuses a port whose
    # old connections linger in TIME_WAIT, which a restart on the same port always has.
    binary = str(find_nats_server())
    args = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(data_dir)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _wait_accepting(port: int) -> None:
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.02)  # polling a port: bounded by the caller's fail_after
            continue
        await stream.aclose()
        return


async def test_actors_answer_again_after_the_nats_server_restarts(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    servers = [_start_server(port, tmp_path)]
    try:
        with trio.fail_after(30):
            await _wait_accepting(port)
            url = f"nats://127.0.0.1:{port}"
            async with actorq.open_actor_supervisor(url, namespace=namespace()) as sup:
                counter = await sup.spawn(Counter, name="counter")
                assert await counter.ask(Add(1)) == 1
                servers[0].kill()
                servers[0].wait()
                servers.append(_start_server(port, tmp_path))
                # Each attempt is bounded; the links reconnect and subscribe again.
                while True:
                    try:
                        total = await counter.ask(Add(1), timeout=0.5)
                        break
                    except (actorq.exceptions.ActorUnavailable, actorq.AskTimeout):
                        continue
    finally:
        for proc in servers:  # stopped by PID, whatever happened
            proc.kill()
            proc.wait()
    assert total >= 2  # an ask buffered while down may have been handled as well
