"""Delayed jobs: the server holds them until due, then they run like any other job."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
import trio

from actorq import ConfigError
from actorq.jobs.streams import JobStreams
from actorq.nats import Connection
from actorq.nats.provisioning import StreamSpec, ensure_stream
from tests.helpers import schedfuncs
from tests.helpers.jobs_harness import open_runtime


async def test_a_delayed_job_runs_no_earlier_than_due_and_within_a_second(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            due = time.time() + 1.5
            job = await rt.client.enqueue_at(dt.datetime.fromtimestamp(due, dt.UTC), schedfuncs.now)
            assert await job.status() == "scheduled"
            ran_at = await job.result(timeout=10)
    assert due <= ran_at <= due + 1.0


async def test_enqueue_in_takes_options_and_a_timedelta(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url, queues={"later": 2}) as rt:
            start = time.time()
            job = await rt.client.options(queue="later", job_id="report-1").enqueue_in(
                dt.timedelta(seconds=1), schedfuncs.concat, "a", "b"
            )
            again = await rt.client.options(queue="later", job_id="report-1").enqueue_in(
                1, schedfuncs.concat, "a", "b"
            )
            assert again.deduplicated
            assert await job.result(timeout=10) == "ab"
            record = await job.record()
    assert record is not None
    assert record.queue == "later"
    assert record.started_at is not None
    assert record.started_at >= start + 1.0


async def test_a_time_in_the_past_runs_now(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            job = await rt.client.enqueue_at(past, schedfuncs.concat, "x")
            assert await job.result(timeout=10) == "x"


async def test_a_naive_datetime_is_refused_with_a_clear_error(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url, queues={}) as rt:
            with pytest.raises(ConfigError, match="has no time zone"):
                await rt.client.enqueue_at(dt.datetime(2030, 1, 1, 9), schedfuncs.now)


async def test_a_cancelled_delayed_job_never_runs(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.enqueue_in(1, schedfuncs.now)
            await job.cancel()
            assert await job.status() == "cancelled"
            with pytest.raises(Exception, match="cancelled"):
                await job.result(timeout=10)


async def test_an_older_jobs_stream_gains_the_timer_subjects_in_place(nc: Connection) -> None:
    streams = JobStreams(f"t{uuid.uuid4().hex[:10]}")
    n = streams.ns
    with trio.fail_after(20):
        await ensure_stream(
            nc,
            StreamSpec(
                name=streams.jobs_stream, subjects=[n.subject("jobs.>")],
                retention="workqueue", allow_msg_schedules=True,
            ),
        )  # fmt: skip
        await nc.js_publish(streams.job_subject("default", "kept"), b"x")
        await streams.provision(nc)
        await streams.provision(nc)  # idempotent
        info = await nc.jsm("stream_info", streams.jobs_stream)
    assert sorted(info.config.subjects) == [n.subject("jobs.>"), n.subject("sched.>")]
    assert info.state.messages == 1
