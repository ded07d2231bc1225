"""The least-privilege recipe of docs/security.md, on a real nats-server started with
exactly the config printed there: each role (client, worker, results, scheduler,
operator) does its job with its own user, and is refused what belongs to the others."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import pytest
import trio

from actorq.exceptions import JobFailed
from actorq.jobs.client import Client, open_client
from actorq.jobs.queue_actor import QueueActorSettings, serve_queue_actor
from actorq.jobs.result_actor import serve_result_actor
from actorq.jobs.scheduler_actor import serve_scheduler_actor
from actorq.jobs.streams import MAX_DELIVER, JobStreams
from actorq.nats import NatsServerProcess, open_nats
from actorq.nats.options import ConnectOptions
from actorq.nats.provisioning import KvSpec, ensure_kv
from actorq.process.heartbeat import TTL, procs_bucket
from actorq.wire.codec import get_codec
from actorq.wire.messages import JobEnvelope, encode
from tests.helpers import jobfuncs, paths
from tests.helpers.scheduler_harness import eventually

pytestmark = pytest.mark.timeout(120)

NS = "myapp"
LEASE_TTL = 2.0
KEY = b"k" * 32
ROLES = ("admin", "client", "publisher", "worker", "results", "scheduler", "operator")


def _recipe() -> str:
    text = (paths.ROOT / "docs" / "security.md").read_text()
    blocks = re.findall(r"```conf\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, "docs/security.md should hold one ```conf block: the recipe"
    return str(blocks[0])


def _password(role: str) -> str:
    return f"{role}-pw"


def _connect(role: str) -> ConnectOptions:
    return ConnectOptions(user=role, password=_password(role))


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NatsServerProcess]:
    for role in ROLES:
        monkeypatch.setenv(f"ACTORQ_{role.upper()}_PASSWORD", _password(role))
    conf = tmp_path / "least-privilege.conf"
    conf.write_text(_recipe())
    server = NatsServerProcess(data_dir=tmp_path / "nats", extra_args=["-c", str(conf)])
    server.start()
    try:
        yield server
    finally:
        server.close()


async def _provision(url: str, worker: QueueActorSettings) -> None:
    """What the admin does once, before the restricted users start."""
    streams = JobStreams(NS)
    async with open_nats(url, **_connect("admin").kwargs()) as conn:
        await streams.provision(conn)
        await streams.provision_queue(
            conn, "default", ack_wait=worker.ack_wait,
            max_ack_pending=max(1000, worker.concurrency * 4),
        )  # fmt: skip
        await streams.provision_scheduler(conn)
        await ensure_kv(conn, KvSpec(bucket=streams.leader_bucket, ttl=LEASE_TTL))
        await ensure_kv(conn, KvSpec(bucket=procs_bucket(NS), ttl=TTL))


@asynccontextmanager
async def _runtime(url: str, signing_key: bytes | None = None) -> AsyncIterator[None]:
    """Result actor, one queue actor and the scheduler, each with its own user."""
    worker = QueueActorSettings(
        queue="default", url=[url], namespace=NS, connect=_connect("worker"),
        signing_key_hex=signing_key.hex() if signing_key else None,
    )  # fmt: skip
    await _provision(url, worker)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(serve_result_actor, url, namespace=NS, connect=_connect("results"))
        )
        stop = trio.Event()
        await nursery.start(functools.partial(serve_queue_actor, worker, stop=stop))
        scheduler = await nursery.start(
            functools.partial(
                serve_scheduler_actor, url, namespace=NS, lease_ttl=LEASE_TTL,
                connect=_connect("scheduler"),
            )
        )  # fmt: skip
        while not scheduler.lease.leading:
            await scheduler.lease.changed.wait()
        yield
        stop.set()
        nursery.cancel_scope.cancel()


def _client(url: str, role: str, signing_key: bytes | None = None) -> AsyncIterator[Client]:
    return open_client(  # type: ignore[no-any-return]
        url, namespace=NS, local_credentials=False, signing_key=signing_key,
        **_connect(role).kwargs(),
    )  # fmt: skip


async def _refused(url: str, role: str, *, publish: str = "", subscribe: str = "") -> bool:
    """Whether the server refuses ``role`` a publish to or a subscription on a subject:
    its permissions error arrives (after the PONG at times, so waited for, bounded)."""

    async def probe() -> bool:
        refused = asyncio.Event()

        async def on_error(exc: Exception) -> None:
            if "permissions violation" in str(exc).lower():
                refused.set()

        nc = await nats.connect(
            url, user=role, password=_password(role), error_cb=on_error,
            allow_reconnect=False, connect_timeout=5,
        )  # fmt: skip
        try:
            if publish:
                await nc.publish(publish, b"forged")
            if subscribe:
                await nc.subscribe(subscribe)
            await nc.flush(timeout=5)
            try:
                await asyncio.wait_for(refused.wait(), 10)
            except TimeoutError:
                return False
            return True
        finally:
            await nc.close()

    return await trio.to_thread.run_sync(asyncio.run, probe())


async def _delivered(url: str, role: str, subject: str) -> bool:
    """Whether a message ``role`` publishes on ``subject`` gets through (the admin
    listens for it)."""

    async def probe() -> bool:
        admin = await nats.connect(url, user="admin", password=_password("admin"))
        sender = await nats.connect(url, user=role, password=_password(role))
        try:
            sub = await admin.subscribe(subject)
            await admin.flush()
            # Sent again until it arrives (bounded): on a fresh server the very first
            # message between two new connections was seen to go missing now and then.
            for _ in range(20):
                await sender.publish(subject, b"allowed")
                await sender.flush()
                try:
                    await sub.next_msg(timeout=0.5)
                except nats.errors.TimeoutError:
                    continue
                return True
            return False
        finally:
            await sender.close()
            await admin.close()

    return await trio.to_thread.run_sync(asyncio.run, probe())


async def test_each_role_does_its_job_with_its_own_user(
    server: NatsServerProcess, tmp_path: Path
) -> None:
    url = server.url
    marker = tmp_path / "runs"
    with trio.fail_after(60):
        async with _runtime(url), _client(url, "client") as client:
            job = await client.enqueue(jobfuncs.add, 2, 3)
            assert await job.result(timeout=10) == 5
            # Over max_payload both ways: through the object store, with these users.
            large = await client.enqueue(jobfuncs.digest_of, b"a" * (2 * 1024 * 1024))
            assert await large.result(timeout=20) == jobfuncs.digest_of(b"a" * (2 * 1024 * 1024))
            big = await client.enqueue(jobfuncs.big_result, 2 * 1024 * 1024)
            assert await big.result(timeout=20) == b"x" * (2 * 1024 * 1024)
            later = await client.enqueue_in(0.2, jobfuncs.add, 1, 1)
            child = await client.options(depends_on=[job.id]).enqueue(jobfuncs.add, 3, 3)
            assert await later.result(timeout=10) == 2
            assert await child.result(timeout=10) == 6
            await client.schedule("tick", jobfuncs.fail_until, str(marker), 1, every=1)
            await eventually(lambda: marker.exists() and any(marker.iterdir()))
            failing = await client.options(max_retries=0).enqueue(
                jobfuncs.fail_until, str(tmp_path / "f"), 9
            )
            with pytest.raises(Exception, match="failed"):
                await failing.result(timeout=10)
            async with _client(url, "operator") as operator:
                assert [d.job_id for d in await operator.dead_letters()] == [failing.id]
                await operator.cancel("nothing-yet")
                assert await operator.purge("default") == 0
                assert {s.name for s in await operator.schedules()} == {"tick"}


async def test_the_results_user_dead_letters_a_job_the_server_delivers_no_more(
    server: NatsServerProcess,
) -> None:
    # A queue no worker of this recipe serves: the admin takes each delivery and
    # drops it, as a worker dying every time would, until the server gives up.
    url, streams = server.url, JobStreams(NS)
    with trio.fail_after(60):
        async with _runtime(url), _client(url, "client") as client:
            job = await client.options(queue="other").enqueue(jobfuncs.add, 1, 1)
            async with open_nats(url, **_connect("admin").kwargs()) as admin:
                await streams.provision_queue(admin, "other")
                consumer = await admin.pull_consumer(
                    streams.jobs_stream, streams.consumer_name("other")
                )
                delivered = 0
                while delivered < MAX_DELIVER:
                    for msg in await consumer.fetch(1, expires=1.0):
                        delivered = msg.num_delivered
                        await consumer.nak(msg)
                # A pull makes the server notice, and announce, the limit.
                assert await consumer.fetch(1, expires=1.0) == []
            with pytest.raises(JobFailed) as caught:
                await job.result(timeout=20)
            async with open_nats(url, **_connect("admin").kwargs()) as admin:

                async def removed() -> bool:
                    info = await admin.jsm("stream_info", streams.jobs_stream)
                    return bool(info.state.messages == 0)

                # ... and removed from the (work-queue) jobs stream.
                await eventually(removed)
            async with _client(url, "operator") as operator:
                dead = [(d.job_id, d.reason) for d in await operator.dead_letters()]
    assert caught.value.exc_type == "actorq.max_deliveries"
    assert dead == [(job.id, "max_deliveries")]


async def test_a_jobs_only_publisher_without_the_key_cannot_touch_a_record(
    server: NatsServerProcess, tmp_path: Path
) -> None:
    """The attack of issue 13: publish a job under a victim's id and an inbox of
    someone else. Signed jobs make it a dead letter that runs nothing."""
    url = server.url
    marker = tmp_path / "ran"
    with trio.fail_after(60):
        async with _runtime(url, signing_key=KEY), _client(url, "client", KEY) as client:
            victim = await client.enqueue(jobfuncs.add, 20, 22)
            assert await victim.result(timeout=10) == 42
            forged = JobEnvelope(
                id=victim.id, queue="default", function="x:y", codec="pickle",
                payload=get_codec("pickle").encode_call(jobfuncs.fail_until, (str(marker), 1), {}),
                enqueued_at=0.0, reply_to=f"{NS}.reply.someone",
            )  # fmt: skip

            async def publish() -> None:
                nc = await nats.connect(url, user="publisher", password=_password("publisher"))
                await nc.publish(f"{NS}.jobs.default.{victim.id}", encode(forged))
                await nc.flush()
                await nc.close()

            await trio.to_thread.run_sync(asyncio.run, publish())
            async with _client(url, "operator") as operator:

                async def dead_lettered() -> bool:
                    return any(d.reason == "bad_signature" for d in await operator.dead_letters())

                await eventually(dead_lettered)
            record = await client.get_record(victim.id)
            assert record is not None
            assert (record.status, client.unwrap(record)) == ("succeeded", 42)
    assert not marker.exists()
    with trio.fail_after(30):
        assert await _refused(url, "publisher", publish=f"$KV.{NS}_results.{victim.id}")
        assert await _refused(url, "publisher", publish=f"$JS.API.STREAM.MSG.GET.KV_{NS}_results")
        assert await _refused(url, "publisher", subscribe=f"{NS}.reply.>")


@pytest.mark.parametrize(
    ("role", "subject"),
    [
        ("client", "myapp.outcomes.default"),  # forge an outcome
        ("client", "$KV.myapp_results.victim"),  # overwrite a record
        ("client", "$JS.API.CONSUMER.MSG.NEXT.myapp_jobs.q-default"),  # take jobs
        ("worker", "myapp.jobs.default.x"),  # enqueue
        ("worker", "$KV.myapp_results.victim"),
        ("worker", "$KV.myapp_schedules.tick"),
        ("results", "$JS.API.CONSUMER.MSG.NEXT.myapp_jobs.q-default"),
        ("results", "$KV.myapp_schedules.tick"),
        ("scheduler", "$KV.myapp_results.victim"),
        ("scheduler", "$JS.API.STREAM.MSG.GET.KV_myapp_results"),  # read records
        ("worker", "$JS.API.STREAM.MSG.GET.KV_myapp_schedules"),
        ("scheduler", "myapp.outcomes.default"),
        ("scheduler", "$JS.API.CONSUMER.MSG.NEXT.myapp_jobs.q-default"),
        ("operator", "myapp.outcomes.default"),
        ("operator", "$JS.API.CONSUMER.MSG.NEXT.myapp_jobs.q-default"),
    ],
)
async def test_a_role_cannot_publish_what_belongs_to_another(
    server: NatsServerProcess, role: str, subject: str
) -> None:
    with trio.fail_after(20):
        assert await _refused(server.url, role, publish=subject)


async def test_roles_are_allowed_their_own_subjects_and_cannot_read_jobs(
    server: NatsServerProcess,
) -> None:
    url = server.url
    with trio.fail_after(30):
        assert await _delivered(url, "client", "myapp.jobs.default.x")
        assert await _delivered(url, "worker", "myapp.outcomes.default")
        assert await _delivered(url, "results", "$KV.myapp_results.x")
        assert await _delivered(url, "scheduler", "$KV.myapp_schedules.x")
        # Nobody but the admin can listen in on the jobs or outcomes as they pass.
        for role in ("client", "worker", "results", "scheduler", "operator"):
            assert await _refused(url, role, subscribe="myapp.jobs.>")
            assert await _refused(url, role, subscribe="myapp.outcomes.>")
