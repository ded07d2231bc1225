"""The job lifecycle end to end, actors as Trio tasks against a real nats-server."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import trio

from actorq import JobFailed, RetryBackoff
from actorq.exceptions import JobCancelled, NotFound
from actorq.wire.messages import decode_dead_letter
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime, wait_for_status


async def test_a_sync_function_returns_its_result(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.enqueue(jobfuncs.add, 2, 3)
            assert await job.result(timeout=10) == 5
            assert await job.status() == "succeeded"


async def test_trio_and_asyncio_coroutines_run(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            a = await rt.client.enqueue(jobfuncs.trio_mul, 6, 7)
            b = await rt.client.enqueue(jobfuncs.asyncio_echo, "hi")
            assert await a.result(timeout=10) == 42
            assert await b.result(timeout=10) == "asyncio:hi"


async def test_an_exception_comes_back_with_the_remote_traceback(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.options(max_retries=0).enqueue(jobfuncs.boom, "kaput")
            with pytest.raises(JobFailed) as info:
                await job.result(timeout=10)
    assert info.value.exc_type == "ValueError"
    assert info.value.exc_message == "kaput"
    assert "in boom" in info.value.traceback


async def test_a_failing_job_is_retried_with_backoff_then_succeeds(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    backoff = RetryBackoff(kind="fixed", base=0.3, jitter=False)
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.options(max_retries=3, backoff=backoff).enqueue(
                jobfuncs.fail_until, str(marker), 3
            )
            assert await job.result(timeout=20) == 3
            record = await job.record()
    assert record is not None
    assert record.attempts == 3
    assert [h.status for h in record.history].count("retrying") == 2
    times = sorted(float(p.name.split("-", 1)[1]) for p in marker.iterdir())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.25 <= g < 3.0 for g in gaps), gaps


async def test_exhausted_retries_fail_and_dead_letter_the_job(nats_url: str) -> None:
    backoff = RetryBackoff(kind="fixed", base=0.05, jitter=False)
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.options(max_retries=1, backoff=backoff).enqueue(
                jobfuncs.boom, "always"
            )
            with pytest.raises(JobFailed, match="always"):
                await job.result(timeout=20)
            record = await job.record()
            assert record is not None
            assert record.attempts == 2
            letters = await rt.client.dead_letters()
            assert [(d.job_id, d.reason) for d in letters] == [(job.id, "max_retries")]
            assert "ValueError: always" in letters[0].detail


async def test_a_job_past_its_timeout_fails_with_a_timeout_error(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.options(timeout=0.2, max_retries=0).enqueue(
                jobfuncs.trio_sleep, 30
            )
            with pytest.raises(JobFailed) as info:
                await job.result(timeout=10)
    assert info.value.exc_type == "TimeoutError"


async def test_a_running_async_job_is_cancelled_promptly(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.enqueue(jobfuncs.trio_sleep, 60)
            await wait_for_status(rt.client, job.id, "running")
            t0 = trio.current_time()
            await job.cancel()
            with pytest.raises(JobCancelled):
                await job.result(timeout=10)
            assert trio.current_time() - t0 < 3
            assert await job.status() == "cancelled"


async def test_a_cancel_made_while_no_worker_is_online_holds(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            job = await rt.client.enqueue(jobfuncs.add, 1, 1)
            assert await job.status() == "queued"
            await job.cancel()
            assert await job.status() == "cancelled"
            await rt.start_queue_actor("default")
            with pytest.raises(JobCancelled):
                await job.result(timeout=10)
            record = await job.record()
            assert record is not None
            assert record.status == "cancelled"
            assert record.attempts == 1


async def test_a_reused_job_id_is_deduplicated_not_run_twice(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            first = await rt.client.options(job_id="order-42").enqueue(
                jobfuncs.fail_until, str(marker), 1
            )
            assert await first.result(timeout=10) == 1
            again = await rt.client.options(job_id="order-42").enqueue(
                jobfuncs.fail_until, str(marker), 1
            )
            assert again.deduplicated
            assert again.id == first.id
            assert await again.result(timeout=10) == 1
    assert len(list(marker.iterdir())) == 1


async def test_a_poison_pill_goes_to_the_dead_letter_stream(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            subject = rt.client.streams.job_subject("default", "poison")
            await rt.client.conn.js_publish(subject, b"\xc1 not msgpack")
            letters: list = []
            while not letters:
                letters = await rt.client.dead_letters()
                await trio.sleep(0.05)
    assert letters[0].reason == "undecodable"
    assert letters[0].original == b"\xc1 not msgpack"
    assert letters[0].queue == "default"


async def test_a_job_signed_with_another_key_is_refused_before_unpickling(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    with trio.fail_after(30):
        async with open_runtime(
            nats_url, signing_key=b"k" * 32, client_signing_key=b"wrong-key" * 4
        ) as rt:
            async with rt.client.conn.subscribe(f"{rt.namespace}.dead.>") as dead:
                job = await rt.client.enqueue(jobfuncs.fail_until, str(marker), 1)
                letter = decode_dead_letter((await dead.receive()).data)
            # Not authentic, so its id may be anyone's: no record is written for it.
            assert await rt.client.get_record(job.id) is None
    assert letter.reason == "bad_signature"
    assert job.id in letter.detail
    assert not marker.exists()


async def test_a_dead_lettered_job_can_be_requeued(nats_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "calls"
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.options(max_retries=0).enqueue(
                jobfuncs.fail_until, str(marker), 2
            )
            with pytest.raises(JobFailed):
                await job.result(timeout=10)
            again = await rt.client.requeue(job.id)
            assert again.id == job.id
            assert await again.result(timeout=10) == 2
            assert await rt.client.dead_letters() == []


async def test_purge_removes_waiting_jobs_and_counts_them(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            await rt.client.enqueue_many([(jobfuncs.noop, (), {})] * 25)
            assert await rt.client.purge("default") == 25
            assert await rt.client.purge("default") == 0


async def test_a_backlog_is_never_fetched_beyond_free_slots(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url, queues={}) as rt:
            jobs = await rt.client.enqueue_many([(jobfuncs.trio_sleep, (0.05,), {})] * 60)
            actor = await rt.start_queue_actor("default", concurrency=3)
            # What the actor holds: every fetched message takes a slot until its ack,
            # so a fetch of more than the free slots shows as more than 3 held.
            held = 0
            take = actor.slots.take

            def counting_take(n: int) -> None:
                nonlocal held
                take(n)
                held = max(held, actor.slots.used)

            actor.slots.take = counting_take  # type: ignore[method-assign]
            consumer = actor._consumer
            peak = 0
            while True:
                info = await consumer.info()
                peak = max(peak, info.num_ack_pending)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
                await trio.sleep(0.01)
            assert await jobs[-1].result(timeout=10) == "slept"
    assert 1 <= held <= 3
    # The server's count also holds acks sent and not yet processed (a loaded machine
    # showed 6): never more than the slots and one ack in flight for each.
    assert 1 <= peak <= 6


async def test_the_result_ttl_expires_the_record(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.options(result_ttl=1).enqueue(jobfuncs.add, 1, 2)
            assert await job.result(timeout=10) == 3
            # Expiry of a per-message TTL publishes no event: poll, bounded above.
            while await job.record() is not None:  # noqa: ASYNC110
                await trio.sleep(0.1)
            with pytest.raises(NotFound):
                await job.status()


async def test_a_worker_recycles_itself_after_n_jobs_without_losing_the_rest(
    nats_url: str,
) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            jobs = await rt.client.enqueue_many([(jobfuncs.add, (i, i), {}) for i in range(5)])
            old = await rt.start_queue_actor("default", 1, recycle_after_jobs=2)
            assert await jobs[1].result(timeout=10) == 2
            await old.stop_fetching.wait()
            assert old.exit_reason == "recycle"
            # Its successor (what a supervisor starts) runs what is left.
            await rt.start_queue_actor("default", 1)
            assert [await j.result(timeout=10) for j in jobs] == [0, 2, 4, 6, 8]


async def test_a_graceful_stop_lets_the_running_job_finish_and_report(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            stop = trio.Event()
            actor = await rt.start_queue_actor("default", 2, stop=stop, shutdown_timeout=10)
            job = await rt.client.enqueue(jobfuncs.trio_sleep, 0.5)
            await wait_for_status(rt.client, job.id, "running")
            stop.set()
            assert await job.result(timeout=10) == "slept"
            await actor.stop_fetching.wait()
            assert actor.exit_reason == "stopped"


async def test_a_job_outliving_the_shutdown_timeout_goes_straight_to_another_worker(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            stop = trio.Event()
            await rt.start_queue_actor("default", 2, stop=stop, shutdown_timeout=0.2)
            job = await rt.client.enqueue(jobfuncs.trio_slow_first_time, str(marker), 60)
            await wait_for_status(rt.client, job.id, "running")
            stop.set()
            t0 = trio.current_time()
            await rt.start_queue_actor("default", 2)
            # Nak'ed at once, not left to its 15 s lease.
            assert await job.result(timeout=10) == 2
            assert trio.current_time() - t0 < 5


async def test_a_job_longer_than_its_lease_is_kept_alive_and_runs_once(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            # Two workers with a 1 s lease: a job running 3 s is renewed, not redelivered.
            await rt.start_queue_actor("default", 2, ack_wait=1.0)
            await rt.start_queue_actor("default", 2, ack_wait=1.0)
            job = await rt.client.enqueue(jobfuncs.touch_and_wait, str(marker), 3.0)
            assert await job.result(timeout=20) > 0
            record = await job.record()
    assert record is not None
    assert record.attempts == 1
    assert len(list(marker.iterdir())) == 1


async def test_a_sync_job_past_its_timeout_fails_and_recycles_its_worker(
    nats_url: str,
) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            actor = await rt.start_queue_actor("default", 2)
            job = await rt.client.options(timeout=0.3, max_retries=0).enqueue(
                jobfuncs.sync_sleep, 2.0
            )
            with pytest.raises(JobFailed) as info:
                await job.result(timeout=10)
            await actor.stop_fetching.wait()
    assert info.value.exc_type == "TimeoutError"
    assert actor.stuck_threads == 1
    assert actor.exit_reason == "recycle"


async def test_a_worker_above_its_rss_limit_recycles(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            jobs = await rt.client.enqueue_many([(jobfuncs.noop, (), {})] * 16)
            actor = await rt.start_queue_actor("default", 4, recycle_above_rss_mb=1)
            for j in jobs:
                await j.result(timeout=10)
            await actor.stop_fetching.wait()
    assert actor.exit_reason == "recycle"
