"""Faults on the result side (issue 12): a failed store, a lost wake-up, bad outcomes.

Each test arms a fault point (actorq.process.faults) in the in-process runtime and asserts
what survives it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import trio
from nats.js import api

from actorq.constants import LEGACY_RESULTS_DURABLE, RESULTS_DURABLE
from actorq.exceptions import NotFound
from actorq.jobs.client import open_client
from actorq.jobs.result_actor import serve_result_actor
from actorq.jobs.streams import JobStreams
from actorq.process import faults
from actorq.wire.messages import JobOutcome, OutcomeBatch, encode
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    faults.disarm()
    yield
    faults.disarm()


async def test_a_store_that_times_out_once_loses_no_result(nats_url: str) -> None:
    # No "running" reports: every outcome is final, so the failed batch holds results
    # that later batches used to ack along with their own ("ack all up to").
    with trio.fail_after(60):
        async with open_runtime(nats_url, track_started=False) as rt:
            faults.arm("result.store=timeout:1")
            jobs = await rt.client.enqueue_many([(jobfuncs.add, (i, 1), {}) for i in range(40)])
            results = [await job.result(timeout=30) for job in jobs]
    assert results == [i + 1 for i in range(40)]
    assert faults.fired("result.store") == 1


async def test_a_store_that_keeps_failing_stops_only_its_own_message(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url, track_started=False) as rt:
            faults.arm("result.store=raise:*")
            first = await rt.client.enqueue(jobfuncs.add, 1, 1)
            # Tried a few times, then one message at a time, then given up on.
            async with rt.client.conn.subscribe(rt.client.streams.dead_subject(">")) as letters:
                async for _ in letters:
                    break
            faults.disarm()
            letter = (await rt.client.dead_letters())[0]
            later = await rt.client.enqueue(jobfuncs.add, 2, 2)
            assert await later.result(timeout=20) == 4
    assert letter.reason == "unstorable_outcome"
    assert "fault injected at result.store" in letter.detail
    assert first.id.encode() in letter.original


async def test_an_outcome_publish_that_fails_once_is_tried_again(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, track_started=False) as rt:
            faults.arm("queue.publish_outcome=raise:1")
            job = await rt.client.enqueue(jobfuncs.add, 20, 22)
            assert await job.result(timeout=20) == 42
            record = await job.record()
    assert faults.fired("queue.publish_outcome") == 1
    assert record is not None
    assert record.attempts == 1


async def test_result_returns_although_its_wake_up_message_was_lost(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            faults.arm("result.notify=drop:1")
            job = await rt.client.enqueue(jobfuncs.add, 2, 3)
            assert await job.result(timeout=20) == 5
    assert faults.fired("result.notify") == 1


async def test_an_outcome_nats_cannot_carry_is_dead_lettered_and_its_batch_stored(
    nats_url: str,
) -> None:
    def outcome(job_id: str, **fields: object) -> JobOutcome:
        return JobOutcome(
            job_id=job_id, queue="default", status="succeeded", started_at=1.0,
            finished_at=2.0, **fields,  # type: ignore[arg-type]
        )  # fmt: skip

    batch = OutcomeBatch(
        outcomes=[outcome("has space"), outcome("bad-reply", reply_to="a b"), outcome("fine")]
    )
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            streams = rt.client.streams
            async with rt.client.conn.subscribe(streams.dead_subject(">")) as letters:
                await rt.client.conn.js_publish(streams.outcome_subject("default"), encode(batch))
                reasons = []
                async for msg in letters:
                    reasons.append(msg.data)
                    if len(reasons) == 2:
                        break
            await rt.client.wait("fine", timeout=10)
            # The result actor carries on.
            job = await rt.client.enqueue(jobfuncs.add, 1, 2)
            assert await job.result(timeout=10) == 3
            dead = await rt.client.dead_letters()
    assert [d.reason for d in dead] == ["bad_outcome", "bad_outcome"]
    assert "has space" in dead[0].detail
    assert "'a b'" in dead[1].detail


async def test_the_old_ack_all_consumer_is_retired_without_losing_its_outcomes(
    nats_url: str,
) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    streams = JobStreams(namespace)
    pending = JobOutcome(
        job_id="from-before", queue="default", status="succeeded", started_at=1.0, finished_at=2.0
    )
    with trio.fail_after(30):
        async with open_client(nats_url, namespace=namespace) as client:
            legacy = api.ConsumerConfig(
                durable_name=LEGACY_RESULTS_DURABLE, ack_policy=api.AckPolicy.ALL,
                filter_subject=streams.ns.subject("outcomes.>"),
            )  # fmt: skip
            # As an older version left things: only the "ack all" consumer exists.
            await client.conn.jsm("delete_consumer", streams.outcomes_stream, RESULTS_DURABLE)
            await client.conn.jsm("add_consumer", streams.outcomes_stream, legacy)
            await client.conn.js_publish(streams.outcome_subject("default"), encode(pending))
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: serve_result_actor(
                        nats_url, namespace=namespace, task_status=task_status
                    )
                )
                record = await client.wait("from-before", timeout=10)
                with pytest.raises(NotFound):
                    await client.conn.jsm(
                        "consumer_info", streams.outcomes_stream, LEGACY_RESULTS_DURABLE
                    )
                nursery.cancel_scope.cancel()
    assert record.status == "succeeded"
