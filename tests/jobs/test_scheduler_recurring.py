"""Recurring schedules: intervals, cron, pause/resume/delete, re-declaring, misfires."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from actorq import ActorqError, ConfigError, EnqueueOptions
from actorq.exceptions import NotFound
from actorq.wire.messages import decode_schedule_entry
from tests.helpers import schedfuncs
from tests.helpers.jobs_harness import Runtime
from tests.helpers.scheduler_harness import eventually, open_scheduled_runtime


def _files(path: Path) -> int:
    return len(list(path.iterdir()))


async def _live_timers(rt: Runtime, name: str) -> int:
    """Pending timers of the schedule's current version (a stale one would be dropped)."""
    streams = rt.client.streams
    entry = await rt.client.schedules_kv.get(name)
    version = decode_schedule_entry(entry.value).version if entry is not None else None
    info = await rt.client.conn.jsm(
        "stream_info", streams.jobs_stream, subjects_filter=streams.timers_filter(name)
    )
    # Timer subjects end in "<version>-<due>".
    current = f"{version}-"
    subjects = info.state.subjects or {}
    return sum(
        n for subject, n in subjects.items() if subject.rsplit(".", 1)[1].startswith(current)
    )


async def _records(rt: Runtime, name: str) -> dict[int, str]:
    """Due time -> status of every job the schedule ``name`` enqueued."""
    out = {}
    for key in await rt.client.results.keys():
        if key.startswith(f"{name}-"):
            record = await rt.client.get_record(key)
            assert record is not None
            out[int(key.rsplit("-", 1)[1])] = record.status
    return out


async def _wait_runs(rt: Runtime, name: str, count: int) -> dict[int, str]:
    async def succeeded() -> dict[int, str]:
        return {d: s for d, s in (await _records(rt, name)).items() if s == "succeeded"}

    async def enough() -> bool:
        return len(await succeeded()) >= count

    await eventually(enough, 0.1)
    return await succeeded()


async def test_an_interval_schedule_fires_every_second_up_to_max_runs(
    nats_url: str, tmp_path: Path
) -> None:
    with trio.fail_after(20):
        async with open_scheduled_runtime(nats_url) as (rt, scheduler):
            info = await rt.client.schedule(
                "tick", schedfuncs.mark, str(tmp_path), every=1, max_runs=3
            )
            assert len(info.next_runs) == 3
            done = await _wait_runs(rt, "tick", 3)
            listed = await rt.client.schedules()
            assert await _live_timers(rt, "tick") == 0  # so no fourth run will come
    dues = sorted(done)
    assert dues == [dues[0], dues[0] + 1, dues[0] + 2]
    assert _files(tmp_path) == 3
    assert listed[0].runs == 3
    assert listed[0].next_runs == []
    assert scheduler.fired == 3


async def test_a_cron_schedule_with_seconds_fires_on_the_expected_seconds(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_scheduled_runtime(nats_url) as (rt, _):
            info = await rt.client.schedule(
                "even", schedfuncs.now, cron="* * * * * */2", tz="Europe/Paris", max_runs=2
            )
            expected = [int(d.timestamp()) for d in info.next_runs[:2]]
            done = await _wait_runs(rt, "even", 2)
            ran = [await rt.client.job(f"even-{d}").result(timeout=5) for d in sorted(done)]
    assert sorted(done) == expected
    assert all(d % 2 == 0 for d in expected)
    assert all(d <= r <= d + 1.5 for d, r in zip(expected, ran, strict=True)), (expected, ran)


async def test_redeclaring_a_schedule_updates_it_and_never_duplicates_it(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_scheduled_runtime(nats_url) as (rt, scheduler):
            for _ in range(3):
                await rt.client.schedule("dup", schedfuncs.now, every=1, max_runs=2)
            info = (await rt.client.schedules())[0]
            updated = await rt.client.schedule("dup", schedfuncs.now, every=2, max_runs=2)
            assert len(await rt.client.schedules()) == 1
            done = await _wait_runs(rt, "dup", 2)
    assert info.every == 1
    assert updated.every == 2
    first, second = sorted(done)
    assert second - first == 2
    assert scheduler.fired == 2


async def test_pause_resume_and_delete(nats_url: str) -> None:
    with trio.fail_after(25):
        async with open_scheduled_runtime(nats_url) as (rt, scheduler):
            await rt.client.schedule("p", schedfuncs.now, every=1)
            await _wait_runs(rt, "p", 1)
            paused = await rt.client.pause_schedule("p")
            assert paused.paused
            assert paused.next_runs == []
            assert await _live_timers(rt, "p") == 0  # so nothing fires while paused
            count = len(await _records(rt, "p"))
            asked = time.time()
            resumed = await rt.client.resume_schedule("p")
            assert resumed.next_runs[0].timestamp() > asked
            await _wait_runs(rt, "p", count + 1)
            await rt.client.delete_schedule("p")
            assert await rt.client.schedules() == []
            assert await _live_timers(rt, "p") == 0
            with pytest.raises(NotFound):
                await rt.client.pause_schedule("p")
    assert scheduler.stale >= 0


async def test_bad_plans_are_refused_with_clear_errors(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_scheduled_runtime(nats_url, queues={}) as (rt, _):
            with pytest.raises(ConfigError, match="exactly one of"):
                await rt.client.schedule("x", schedfuncs.now)
            with pytest.raises(ConfigError, match="invalid cron"):
                await rt.client.schedule("x", schedfuncs.now, cron="every day")
            with pytest.raises(ConfigError, match="unknown time zone"):
                await rt.client.schedule("x", schedfuncs.now, cron="* * * * *", tz="Mars/Base")
            with pytest.raises(ConfigError, match="whole number"):
                await rt.client.schedule("x", schedfuncs.now, every=0.5)


async def test_enqueue_options_set_the_queue_and_retries_of_a_schedules_jobs(
    nats_url: str,
) -> None:
    with trio.fail_after(20):
        async with open_scheduled_runtime(nats_url, queues={"ops": 2}) as (rt, _):
            opts = EnqueueOptions(queue="ops", max_retries=0)
            info = await rt.client.schedule("o", schedfuncs.now, every=1, max_runs=1, options=opts)
            assert info.queue == "ops"
            (due,) = await _wait_runs(rt, "o", 1)
            record = await rt.client.get_record(f"o-{due}")
            assert record is not None
            assert record.queue == "ops"
            with pytest.raises(ActorqError, match="own job ids"):
                await rt.client.schedule(
                    "o2", schedfuncs.now, every=1, options=EnqueueOptions(job_id="x")
                )
