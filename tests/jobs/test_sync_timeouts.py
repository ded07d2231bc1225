"""A timed-out sync job (issue 12, item 10): its thread cannot be stopped, so its
retry never runs beside it. The job's message keeps its slot and its lease until the
thread returns; a thread that outlives the recycling actor's ``shutdown_timeout``
ends with its process, and the job comes back only after its lease ran out."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import msgspec
import trio

from actorq.jobs.client import EnqueueOptions
from actorq.wire.messages import RetryBackoff
from tests.helpers import jobfuncs, paths
from tests.helpers.jobs_harness import open_runtime, wait_for_status

ROOT = str(paths.ROOT)
RUN = (
    "import sys; from actorq.runtime.children import queue_actor; "
    "queue_actor(lambda: None, sys.argv[1])"
)
#: One retry, right away: without the rule it would start while the thread sleeps.
RETRY_AT_ONCE = EnqueueOptions(
    timeout=0.5, max_retries=1, backoff=RetryBackoff(kind="fixed", base=0.1, jitter=False)
)


def _times(marker: Path, kind: str, n: int) -> float:
    (found,) = marker.glob(f"{kind}-{n}-*")
    return float(found.name.rsplit("-", 1)[1])


async def test_the_retry_of_a_timed_out_sync_job_starts_only_after_its_thread_ended(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    with trio.fail_after(60):
        async with open_runtime(nats_url, queues={}) as rt:
            # A 1 s lease: the stuck job's lease must be renewed to last its 3 s.
            first = await rt.start_queue_actor("default", 1, ack_wait=1.0)
            job = await rt.client.enqueue_with(
                RETRY_AT_ONCE, jobfuncs.sync_stuck_first_time, (str(marker), 3.0)
            )
            await wait_for_status(rt.client, job.id, "running")
            # Another actor is ready to take the retry the moment it is released.
            await rt.start_queue_actor("default", 2, ack_wait=1.0)
            assert await job.result(timeout=30) == [2, True]  # same process, here
            record = await job.record()
    assert record is not None
    assert record.attempts == 2
    assert [s.status for s in record.history].count("retrying") == 1
    assert _times(marker, "start", 2) >= _times(marker, "end", 1)
    assert first.stuck_threads == 1
    assert first.exit_reason == "recycle"


async def test_a_thread_stuck_past_the_grace_ends_with_its_process_before_the_retry(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    log_path = tmp_path / "queue-actor.log"
    with trio.fail_after(90):
        async with open_runtime(nats_url, queues={}) as rt:
            settings = rt.queue_settings(
                "default", 2, sys_path=[ROOT], ack_wait=2.0, shutdown_timeout=3.0
            )
            with log_path.open("wb") as log_file:
                proc = await trio.lowlevel.open_process(
                    [sys.executable, "-c", RUN, msgspec.json.encode(settings).decode()],
                    cwd=ROOT, env=dict(os.environ), stderr=log_file,
                )  # fmt: skip
            try:
                job = await rt.client.enqueue_with(
                    RETRY_AT_ONCE, jobfuncs.sync_stuck_first_time, (str(marker), 600.0)
                )
                # A sibling keeps the recycling child busy for 2 s of its 3 s grace.
                sibling = await rt.client.enqueue(jobfuncs.sync_sleep, 2.0)
                await wait_for_status(rt.client, job.id, "running")
                await wait_for_status(rt.client, sibling.id, "running")
                await rt.start_queue_actor("default", 2, ack_wait=2.0)
                # The child recycles: its sibling finishes, the stuck thread outlives
                # the grace, and the process exits without handing the job back.
                await proc.wait()
                result = await job.result(timeout=30)
                assert await sibling.result(timeout=10) == "slept"
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGKILL)
                    await proc.wait()
    # The retry ran here, and the first attempt's process was gone by then.
    assert result == [2, False]
    assert not list(marker.glob("end-1-*")), "the first attempt never returned"
    assert json.dumps(result)
