"""Poison jobs (issue 12): nothing one job does or carries stops its queue actor.

Each poison job ends in the dead-letter stream with its reason, the jobs running
beside it complete, and the queue actor process is the same one throughout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import msgspec
import pytest
import trio

from actorq.constants import RESULTS_DURABLE
from actorq.exceptions import ConfigError, JobFailed
from actorq.jobs.client import Client
from actorq.jobs.options import MAX_RETRIES, EnqueueOptions
from actorq.jobs.streams import MAX_DELIVER, JobStreams
from actorq.process import faults
from actorq.wire.messages import decode_dead_letter, encode
from tests.helpers import jobfuncs, paths
from tests.helpers.jobs_harness import open_runtime
from tests.helpers.scheduler_harness import eventually

ROOT = str(paths.ROOT)
RUN = (
    "import sys; from actorq.runtime.children import queue_actor; "
    "queue_actor(lambda: None, sys.argv[1])"
)
OVER = 2 * 1024 * 1024  # twice the server's default max_payload
#: The queue actor's [results] max_bytes in the poison test: OVER is above it.
MAX_BYTES = 3 * 512 * 1024


async def test_poison_jobs_are_dead_lettered_while_their_queue_actor_runs_on(
    nats_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "queue-actor.log"
    once = EnqueueOptions(max_retries=0)
    with trio.fail_after(120):
        async with open_runtime(nats_url, queues={}) as rt:
            client, streams = rt.client, rt.client.streams
            settings = rt.queue_settings("default", 4, sys_path=[ROOT], max_bytes=MAX_BYTES)
            # The first dead letter the child tries to publish fails (it is retried).
            env = {**os.environ, faults.ENV_VAR: "queue.dead_letter=raise:1"}
            with log_path.open("wb") as log_file:
                proc = await trio.lowlevel.open_process(
                    [sys.executable, "-c", RUN, msgspec.json.encode(settings).decode()],
                    cwd=ROOT, env=env, stderr=log_file,
                )  # fmt: skip
            try:
                async with client.conn.subscribe(streams.dead_subject(">")) as letters:
                    siblings = [await client.enqueue(jobfuncs.add, i, i) for i in range(4)]
                    poison = {
                        "oversize": await client.enqueue(jobfuncs.big_result, OVER),
                        "sys_exit": await client.enqueue_with(once, jobfuncs.sys_exit),
                        "interrupt": await client.enqueue_with(once, jobfuncs.keyboard_interrupt),
                        "trio_exit": await client.enqueue_with(once, jobfuncs.trio_sys_exit),
                        "huge_error": await client.enqueue_with(once, jobfuncs.huge_error, (OVER,)),
                    }
                    siblings += [await client.enqueue(jobfuncs.add, i, i) for i in range(4, 8)]
                    # A safe-codec call naming module ".x" (importlib raises TypeError).
                    relative = msgspec.structs.replace(
                        client.build_envelope(EnqueueOptions(), jobfuncs.noop, (), {}),
                        codec="safe", payload=msgspec.msgpack.encode([".x:f", [], {}]),
                        signature=None,
                    )  # fmt: skip
                    # An id with a space: it cannot become a subject token or a key.
                    spaced = msgspec.structs.replace(
                        client.build_envelope(EnqueueOptions(), jobfuncs.noop, (), {}),
                        id="has space",
                    )
                    for env_, token in ((relative, relative.id), (spaced, "spaced")):
                        await client.conn.js_publish(
                            streams.job_subject("default", token), encode(env_)
                        )
                    reasons: dict[str, str] = {}
                    async for msg in letters:
                        letter = decode_dead_letter(msg.data)
                        reasons[letter.job_id or "?"] = letter.reason
                        if len(reasons) == 7:
                            break
                assert [await job.result(timeout=30) for job in siblings] == [
                    2 * i for i in range(8)
                ]
                failures = {}
                for name, job in poison.items():
                    with pytest.raises(JobFailed) as caught:
                        await job.result(timeout=30)
                    failures[name] = caught.value
                relative_record = await client.wait(relative.id, timeout=30)
                # Still the same process: nothing above crashed it.
                assert proc.returncode is None
                listed = await trio.run_process(
                    [sys.executable, "-m", "actorq", "jobs", "dead", "--json", "--url", nats_url,
                     "--namespace", rt.namespace],
                    cwd=ROOT, capture_stdout=True,
                )  # fmt: skip
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
    assert proc.returncode == 0
    ids = {name: job.id for name, job in poison.items()}
    assert reasons[ids["oversize"]] == "oversize"
    for name in ("sys_exit", "interrupt", "trio_exit", "huge_error"):
        assert reasons[ids[name]] == "max_retries", name
    assert reasons[relative.id] == "undecodable"
    assert [r for j, r in reasons.items() if j.startswith("seq-")] == ["bad_envelope"]
    oversize = failures["oversize"]
    assert oversize.exc_type == "actorq.oversize"
    expected = rf"the job's encoded result is (\d+) bytes, over the limit of {MAX_BYTES} bytes"
    size = re.match(expected, oversize.exc_message)
    assert size is not None, oversize.exc_message
    assert int(size[1]) > OVER
    assert failures["sys_exit"].exc_type == "SystemExit"
    assert failures["interrupt"].exc_type == "KeyboardInterrupt"
    assert failures["trio_exit"].exc_type == "SystemExit"
    assert failures["huge_error"].exc_type == "ValueError"
    assert len(failures["huge_error"].exc_message) < 20_000
    assert relative_record.status == "dead"
    assert relative_record.error is not None
    assert "TypeError" in relative_record.error.message
    assert "could not dead-letter" in log_path.read_text()
    listed_reasons = sorted(d["reason"] for d in json.loads(listed.stdout))
    assert listed_reasons == sorted(reasons.values())


async def test_a_job_on_its_last_delivery_is_dead_lettered_max_deliveries(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url, queues={}) as rt:
            client, streams = rt.client, rt.client.streams
            await streams.provision_queue(client.conn, "default")
            job = await client.enqueue(jobfuncs.add, 1, 1)
            # A worker that takes the job and dies, again and again (nak: at once).
            await _deliver_and_drop(client, streams, MAX_DELIVER - 1)
            await rt.start_queue_actor("default", 2)
            with pytest.raises(JobFailed) as caught:
                await job.result(timeout=30)
            record = await job.record()
            dead = await client.dead_letters()
    assert caught.value.exc_type == "actorq.max_deliveries"
    assert record is not None
    assert record.status == "dead"
    assert [(d.job_id, d.reason) for d in dead] == [(job.id, "max_deliveries")]


async def _deliver_and_drop(client: Client, streams: JobStreams, times: int) -> None:
    """Take the default queue's job ``times`` times and hand it back (nak) each time."""
    consumer = await client.conn.pull_consumer(
        streams.jobs_stream, streams.consumer_name("default")
    )
    delivered = 0
    while delivered < times:
        for msg in await consumer.fetch(1, expires=2.0):
            delivered = msg.num_delivered
            await consumer.nak(msg)


async def test_a_job_whose_worker_dies_on_its_last_delivery_is_dead_lettered_max_deliveries(
    nats_url: str, tmp_path: Path
) -> None:
    # The server delivers it no more after that: only its advisory tells, and the
    # result actor dead-letters it from there (actorq.jobs.undelivered).
    with trio.fail_after(90):
        async with open_runtime(nats_url, queues={}) as rt:
            client, streams = rt.client, rt.client.streams
            await streams.provision_queue(client.conn, "default", ack_wait=1.0)
            job = await client.enqueue(jobfuncs.add, 1, 1)
            await _deliver_and_drop(client, streams, MAX_DELIVER - 1)
            # The last delivery goes to a worker process that dies dead-lettering it.
            settings = rt.queue_settings("default", 2, ack_wait=1.0, sys_path=[ROOT])
            env = {**os.environ, faults.ENV_VAR: "queue.dead_letter=exit:*"}
            with (tmp_path / "queue-actor.log").open("wb") as log_file:
                proc = await trio.lowlevel.open_process(
                    [sys.executable, "-c", RUN, msgspec.json.encode(settings).decode()],
                    cwd=ROOT, env=env, stderr=log_file,
                )  # fmt: skip
            try:
                await proc.wait()
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
            assert proc.returncode == 70
            # Its replacement's pulls make the server give the job up.
            await rt.start_queue_actor("default", 2, ack_wait=1.0)
            with pytest.raises(JobFailed) as caught:
                await job.result(timeout=30)
            record = await job.record()
            dead = await client.dead_letters()
            info = await client.conn.jsm("stream_info", streams.jobs_stream)
            later = await client.enqueue(jobfuncs.add, 2, 2)
            assert await later.result(timeout=20) == 4
    assert caught.value.exc_type == "actorq.max_deliveries"
    assert record is not None
    assert record.status == "dead"
    assert [(d.job_id, d.reason) for d in dead] == [(job.id, "max_deliveries")]
    assert job.id.encode() in dead[0].original
    assert info.state.messages == 0, "the job's message is still in the jobs stream"


async def test_stale_and_unreadable_advisories_change_nothing(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url) as rt:
            client, streams = rt.client, rt.client.streams
            subject = streams.undelivered_filter.replace("*", "q-default")
            stale = {"stream": streams.jobs_stream, "consumer": "q-default", "stream_seq": 10**6}
            for data in (json.dumps(stale).encode(), b"not json"):
                await client.conn.js_publish(subject, data)

            async def handled() -> bool:
                info = await client.conn.jsm(
                    "consumer_info", streams.undelivered_stream, RESULTS_DURABLE
                )
                return bool(info.num_pending + info.num_ack_pending == 0)

            await eventually(handled)
            job = await client.enqueue(jobfuncs.add, 2, 2)
            assert await job.result(timeout=20) == 4
            assert await client.dead_letters() == []


async def test_more_retries_than_deliveries_are_refused_at_enqueue(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            with pytest.raises(ConfigError, match=f"at most {MAX_RETRIES} times"):
                await rt.client.options(max_retries=MAX_RETRIES + 1).enqueue(jobfuncs.add, 1, 1)
            job = await rt.client.options(max_retries=MAX_RETRIES).enqueue(jobfuncs.add, 1, 1)
            assert await job.result(timeout=10) == 2
    assert MAX_RETRIES + 1 < MAX_DELIVER
