"""JetStream publishes over the Trio-owned link and over blocking sockets (issue 14):
the same acks, errors and headers as through nats-py, and a fallback when unusable."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
import trio
import trio.testing

from actorq.exceptions import ActorqError, BrokerError, BrokerTimeout, Conflict, NotFound
from actorq.nats import Connection, NatsServerProcess, open_nats
from actorq.nats.embedded_server import free_port
from actorq.nats.provisioning import StreamSpec, ensure_stream


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def _stream(nc: Connection) -> tuple[str, str]:
    name = _name("L")
    await ensure_stream(nc, StreamSpec(name=name, subjects=[f"{name}.>"]))
    return name, f"{name}.x"


async def test_js_publish_goes_over_the_link_with_the_same_acks_and_errors(
    nc: Connection,
) -> None:
    with trio.fail_after(20):
        stream, subject = await _stream(nc)
        link = await nc.open_link()
        assert link is not None
        before = link.published
        first = await nc.js_publish(subject, b"a", msg_id="m-1", headers={"X-Trace": "t1"})
        again = await nc.js_publish(subject, b"a", msg_id="m-1")
        assert (first.stream, first.duplicate, again.duplicate) == (stream, False, True)
        assert again.seq == first.seq
        assert link.published - before == 2  # no thread hop: the link carried both
        stored = await nc.jsm("get_msg", stream, first.seq)
        assert stored.data == b"a"
        assert stored.headers["X-Trace"] == "t1"
        assert stored.headers["Nats-Msg-Id"] == "m-1"

        # Expected-last-sequence: the write that lost is a Conflict, as via nats-py.
        key = f"{stream}.k"
        await nc.js_publish(key, b"1", headers={"Nats-Expected-Last-Subject-Sequence": "0"})
        with pytest.raises(Conflict):
            await nc.js_publish(key, b"2", headers={"Nats-Expected-Last-Subject-Sequence": "0"})
        with pytest.raises(NotFound):  # no stream listens: "no responders"
            await nc.js_publish(f"nostream{uuid.uuid4().hex}.x", b"z")


async def test_many_concurrent_publishes_share_the_link_and_each_gets_its_ack(
    nc: Connection,
) -> None:
    with trio.fail_after(30):
        _, subject = await _stream(nc)
        seqs: list[int] = []

        async def one(i: int) -> None:
            ack = await nc.js_publish(subject, str(i).encode())
            seqs.append(ack.seq)

        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(one, i)
        assert sorted(seqs) == list(range(min(seqs), min(seqs) + 300))


async def test_callbacks_receive_core_messages_over_the_link(nc: Connection) -> None:
    with trio.fail_after(10):
        got: list[bytes] = []
        arrived = trio.Event()
        subject = _name("cb.")

        def on(data: bytes) -> None:
            got.append(data)
            if len(got) == 3:
                arrived.set()

        async with nc.on_messages(subject, on):
            for i in range(3):
                await nc.publish(subject, b"m%d" % i)  # sent by nats-py, read by the link
            await arrived.wait()
        assert got == [b"m0", b"m1", b"m2"]


async def test_without_the_link_everything_still_works_through_nats_py(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTORQ_CLIENT_LINK", "0")
    with trio.fail_after(20):
        async with open_nats(nats_url) as conn:
            assert await conn.open_link() is None
            assert conn.blocking_pool() is None
            _, subject = await _stream(conn)
            first = await conn.js_publish(subject, b"a", msg_id="n-1")
            again = await conn.js_publish(subject, b"a", msg_id="n-1")
            assert again.duplicate
            assert again.seq == first.seq
            got = trio.Event()
            async with conn.on_messages(subject + ".cb", lambda data: got.set()):
                await conn.publish(subject + ".cb", b"x")
                await got.wait()


async def test_a_restarted_server_is_published_to_again_by_both_paths(tmp_path: Path) -> None:
    # A fixed port: the restarted server must be where the connection looks.
    server = NatsServerProcess(port=free_port("127.0.0.1"), data_dir=tmp_path / "nats")
    server.start()
    try:
        await _restart_and_publish(server)
    finally:
        server.close()


async def _restart_and_publish(server: NatsServerProcess) -> None:
    with trio.fail_after(60):
        async with open_nats(server.url, max_reconnect_attempts=-1) as conn:
            _, subject = await _stream(conn)
            link = await conn.open_link()
            pool = conn.blocking_pool()
            assert link is not None
            assert pool is not None
            await conn.js_publish(subject, b"before")
            js = pool.acquire()
            assert js is not None
            await trio.to_thread.run_sync(js.publish, subject, b"before", None)
            pool.release(js)

            await trio.to_thread.run_sync(server.stop)
            await trio.to_thread.run_sync(server.start)
            # While the link reconnects, publishes take nats-py; then the link again.
            while True:
                try:
                    await conn.js_publish(subject, b"after")
                    break
                except ActorqError:  # still reconnecting
                    await trio.sleep(0.1)
            await link.link.connected.wait()
            before = link.published
            await conn.js_publish(subject, b"after")
            assert link.published == before + 1

            # The pooled socket the server closed is retired, not used and failed.
            def blocking() -> int:
                js = pool.acquire()
                assert js is not None
                try:
                    return js.publish(subject, b"after", None).seq
                finally:
                    pool.release(js)

            assert await trio.to_thread.run_sync(blocking) > 0
        pool.close()


def test_blocking_pool_lends_each_socket_to_one_thread_at_a_time(
    nats_server: NatsServerProcess,
) -> None:
    async def run() -> None:
        async with open_nats(nats_server.url) as conn:
            _, subject = await _stream(conn)
            pool = conn.blocking_pool(size=2)
            assert pool is not None
            errors: list[BaseException] = []
            seqs: list[int] = []
            fallbacks = 0
            lock = threading.Lock()

            def worker() -> None:
                nonlocal fallbacks
                for i in range(50):
                    js = pool.acquire()
                    if js is None:
                        with lock:
                            fallbacks += 1
                        continue
                    try:
                        seqs.append(js.publish(subject, b"%d" % i, None).seq)
                    except BaseException as exc:
                        errors.append(exc)
                        pool.release(js, broken=True)
                    else:
                        pool.release(js)

            threads = [threading.Thread(target=worker) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                await trio.to_thread.run_sync(t.join, 30.0)
            pool.close()
            assert not errors
            assert len(seqs) + fallbacks == 200
            assert len(set(seqs)) == len(seqs)  # each ack went to its own publisher
            assert pool.published == len(seqs)

    trio.run(run)


async def test_a_publish_nobody_acks_times_out_and_a_cancelled_one_leaves_the_link_usable(
    nats_url: str,
) -> None:
    with trio.fail_after(20):
        async with open_nats(nats_url, request_timeout=0.5) as conn:
            _, subject = await _stream(conn)
            link = await conn.open_link()
            assert link is not None
            silent = _name("silent.")
            # A subscriber that never answers: no "no responders" status, no ack.
            async with conn.on_messages(silent, lambda data: None):
                started = trio.current_time()
                with pytest.raises(BrokerTimeout):
                    await conn.js_publish(silent, b"x")
                assert trio.current_time() - started < 0.5 + 0.25 + 1.0  # sweep slack

            with trio.CancelScope() as scope:
                scope.cancel()  # delivered while it waits for its ack
                await conn.js_publish(subject, b"cancelled")
            assert scope.cancelled_caught
            ack = await conn.js_publish(subject, b"after")  # its late ack harms nothing
            assert ack.seq > 0
            assert not link._acks  # no waiter left behind


async def test_a_publish_still_waiting_when_its_connection_closes_raises_at_once(
    nats_url: str,
) -> None:
    errors: list[BaseException] = []
    with trio.fail_after(20):  # far below the request timeout: not the sweeper
        async with (
            trio.open_nursery() as nursery,
            open_nats(nats_url, request_timeout=60) as conn,
        ):
            assert await conn.open_link() is not None
            silent = _name("silent.")
            async with conn.on_messages(silent, lambda data: None):

                async def waiting() -> None:
                    try:
                        await conn.js_publish(silent, b"x")  # no ack will come
                    except BrokerError as exc:
                        errors.append(exc)

                nursery.start_soon(waiting)
                await trio.testing.wait_all_tasks_blocked()
    assert len(errors) == 1
