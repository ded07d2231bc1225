"""The Trio NATS layer against a real server: core, JetStream, consumers, KV, cancellation."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import trio
from nats.js.api import AckPolicy, ConsumerConfig

from actorq import ConnectionFailed
from actorq.exceptions import BrokerTimeout, KeyExists
from actorq.nats import Connection, OutMsg, open_nats
from actorq.nats.bridge import open_bridge
from actorq.nats.embedded_server import free_port
from actorq.nats.provisioning import KvSpec, StreamSpec, ensure_kv, ensure_stream


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def _stream_with_consumer(
    nc: Connection, *, ack_wait: float = 30.0, max_deliver: int = -1
) -> tuple[str, str]:
    name = _name("S")
    await ensure_stream(nc, StreamSpec(name=name, subjects=[f"{name}.>"]))
    await nc.jsm(
        "add_consumer",
        name,
        ConsumerConfig(
            durable_name="work",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
        ),
    )
    return name, f"{name}.jobs"


async def test_core_publish_reaches_a_subscriber(nc: Connection) -> None:
    subject = _name("core.")
    with trio.fail_after(10):
        async with nc.subscribe(subject) as messages:
            await nc.publish(subject, b"hello", headers={"k": "v"})
            msg = await messages.receive()
    assert msg.data == b"hello"
    assert msg.headers == {"k": "v"}


async def test_request_gets_the_reply_of_a_trio_responder(nc: Connection) -> None:
    subject = _name("svc.")
    with trio.fail_after(10):
        async with nc.subscribe(subject) as requests, trio.open_nursery() as nursery:

            async def respond() -> None:
                req = await requests.receive()
                await nc.publish(req.reply, req.data.upper())

            nursery.start_soon(respond)
            reply = await nc.request(subject, b"ping")
    assert reply.data == b"PING"


async def test_request_without_responder_times_out_with_our_error(nats_url: str) -> None:
    async with open_nats(nats_url, request_timeout=0.3) as nc:
        with trio.fail_after(10), pytest.raises(BrokerTimeout):
            # No responder: the server may answer "no responders" (NotFound) or
            # nothing at all; subscribe so the request is left hanging.
            async with nc.subscribe("silent.svc"):
                await nc.request("silent.svc", b"")


async def test_js_publish_deduplicates_by_message_id(nc: Connection) -> None:
    _, subject = await _stream_with_consumer(nc)
    first = await nc.js_publish(subject, b"a", msg_id="job-1")
    again = await nc.js_publish(subject, b"a", msg_id="job-1")
    assert not first.duplicate
    assert again.duplicate
    assert again.seq == first.seq


async def test_publish_many_then_fetch_and_ack_everything(nc: Connection) -> None:
    name, subject = await _stream_with_consumer(nc)
    acks = await nc.js_publish_many([OutMsg(subject, str(i).encode()) for i in range(300)])
    assert [a.seq for a in acks] == list(range(1, 301))
    consumer = await nc.pull_consumer(name, "work")
    seen: list[bytes] = []
    with trio.fail_after(20):
        while len(seen) < 300:
            batch = await consumer.fetch(64, expires=2)
            assert len(batch) <= 64
            seen.extend(m.data for m in batch)
            await consumer.ack_many(batch)
    assert sorted(int(d) for d in seen) == list(range(300))
    await nc.flush()
    info = await consumer.info()
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def test_fetch_returns_empty_when_nothing_arrives(nc: Connection) -> None:
    name, _ = await _stream_with_consumer(nc)
    consumer = await nc.pull_consumer(name, "work")
    with trio.fail_after(10):
        assert await consumer.fetch(10, expires=0.2) == []


async def test_nak_with_delay_redelivers_after_the_delay(nc: Connection) -> None:
    name, subject = await _stream_with_consumer(nc)
    await nc.js_publish(subject, b"retry-me")
    consumer = await nc.pull_consumer(name, "work")
    with trio.fail_after(15):
        (msg,) = await consumer.fetch(1, expires=5)
        assert msg.num_delivered == 1
        await consumer.nak(msg, delay=0.5)
        t0 = trio.current_time()
        again: list = []
        while not again:
            again = await consumer.fetch(1, expires=2)
        assert trio.current_time() - t0 >= 0.4
        assert again[0].num_delivered == 2
        assert again[0].data == b"retry-me"
        await consumer.term(again[0])
        assert await consumer.fetch(1, expires=0.5) == []


async def test_in_progress_keeps_a_slow_message_from_redelivery(nc: Connection) -> None:
    name, subject = await _stream_with_consumer(nc, ack_wait=1.0)
    await nc.js_publish(subject, b"slow")
    consumer = await nc.pull_consumer(name, "work")
    with trio.fail_after(15):
        (msg,) = await consumer.fetch(1, expires=5)
        # Past ack_wait twice over, extended each half-wait: never redelivered.
        for _ in range(5):
            await trio.sleep(0.5)
            await consumer.in_progress([msg])
            assert await consumer.fetch(1, expires=0.1) == []
        await consumer.ack_sync(msg)
        assert await consumer.fetch(1, expires=1.5) == []


async def test_kv_put_get_create_delete(nc: Connection) -> None:
    kv = await ensure_kv(nc, KvSpec(bucket=_name("kv")))
    assert await kv.get("a") is None
    rev = await kv.put("a", b"1")
    entry = await kv.get("a")
    assert entry is not None
    assert entry.value == b"1"
    assert entry.revision == rev
    with pytest.raises(KeyExists):
        await kv.create("a", b"2")
    await kv.create("b", b"x")
    assert sorted(await kv.keys()) == ["a", "b"]
    await kv.delete("a")
    assert await kv.get("a") is None
    assert await kv.keys() == ["b"]
    await kv.create("a", b"again")  # a deleted key can be created anew
    with pytest.raises(KeyExists):
        await kv.update("a", b"stale", rev)


async def test_kv_watch_pushes_current_values_then_changes(nc: Connection) -> None:
    kv = await ensure_kv(nc, KvSpec(bucket=_name("kv")))
    await kv.put("job.1", b"queued")
    with trio.fail_after(10):
        async with kv.watch("job.*") as updates:
            first = await updates.receive()
            assert first is not None
            assert (first.key, first.value) == ("job.1", b"queued")
            assert await updates.receive() is None  # caught up
            await kv.put("job.1", b"done")
            await kv.delete("job.1")
            changed = await updates.receive()
            deleted = await updates.receive()
    assert changed is not None
    assert changed.value == b"done"
    assert deleted is not None
    assert deleted.operation == "DEL"


async def test_cancelling_a_pending_call_leaves_the_connection_usable(nc: Connection) -> None:
    name, subject = await _stream_with_consumer(nc)
    consumer = await nc.pull_consumer(name, "work")
    with trio.fail_after(10):
        # A fetch that would wait 30 s, cancelled after 0.2 s.
        with trio.move_on_after(0.2) as scope:
            await consumer.fetch(1, expires=30)
        assert scope.cancelled_caught
        # A request with nobody answering, cancelled from outside.
        with trio.move_on_after(0.2) as scope:
            async with nc.subscribe("nobody.home"):
                await nc.request("nobody.home", b"")
        assert scope.cancelled_caught
        # Everything still works afterwards.
        await nc.js_publish(subject, b"after")
        got: list = []
        while not got:
            got = await consumer.fetch(1, expires=2)
        assert got[0].data == b"after"
        await consumer.ack(got[0])
        assert nc.connected


async def test_many_trio_tasks_share_one_connection(nc: Connection) -> None:
    _, subject = await _stream_with_consumer(nc)
    results: list[int] = []

    async def publisher(i: int) -> None:
        ack = await nc.js_publish(subject, str(i).encode())
        results.append(ack.seq)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(publisher, i)
    assert sorted(results) == list(range(1, 201))


async def test_connecting_to_nothing_fails_with_a_clear_error() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with trio.fail_after(20), pytest.raises(ConnectionFailed, match="actorq server") as info:
        async with open_nats(url, connect_timeout=1):
            pass
    # The cause nats-py reported, not the deadline that ended its retries.
    assert f"could not connect to NATS at {url}: connection refused (" in str(info.value)
    assert "TooSlowError" not in str(info.value)


async def test_a_server_that_never_answers_fails_saying_how_long_it_waited() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")  # accepts, says nothing
    port = listeners[0].socket.getsockname()[1]
    try:
        with trio.fail_after(20), pytest.raises(ConnectionFailed) as info:
            async with open_nats(f"nats://127.0.0.1:{port}", connect_timeout=0.5):
                pass
    finally:
        for listener in listeners:
            await listener.aclose()
    assert "no answer within 0.5s" in str(info.value)


async def test_leaving_a_watch_while_updates_still_arrive_is_harmless(nc: Connection) -> None:
    kv = await ensure_kv(nc, KvSpec(bucket=_name("kv")))
    for i in range(300):
        await kv.put(f"k{i}", b"v")
    with trio.fail_after(10):
        for _ in range(5):
            # 300 current values are on their way when the block ends after one.
            async with kv.watch() as updates:
                await updates.receive()
            async with nc.subscribe("late.msgs") as msgs:
                await nc.publish_many([OutMsg("late.msgs", b"x")] * 300)
                await msgs.receive()
        await trio.sleep(0.2)  # let the stragglers arrive at the closed channels
    assert await kv.get("k0") is not None


async def test_cancelling_a_call_whose_coroutine_swallows_a_cancel_still_returns() -> None:
    # nats-py's first-connect retry loop swallowed a cancellation; the caller, waiting
    # for the asyncio side to finish, hung until pytest's timeout (seen under xdist).
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed >= 3:
                    raise

    async with open_bridge() as bridge:
        with trio.fail_after(10):
            with trio.move_on_after(0.1) as scope:
                await bridge.run(stubborn)
    assert scope.cancelled_caught
    assert swallowed == 3
