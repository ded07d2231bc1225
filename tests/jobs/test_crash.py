"""A queue actor process killed with SIGKILL mid-job: the job comes back and yields one result."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import msgspec
import psutil
import trio

from tests.helpers import jobfuncs, paths
from tests.helpers.jobs_harness import open_runtime, wait_for_status

ROOT = str(paths.ROOT)
RUN = (
    "import sys; from actorq.runtime.children import queue_actor; "
    "queue_actor(lambda: None, sys.argv[1])"
)


async def test_a_killed_workers_job_is_redelivered_and_yields_one_result(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    with trio.fail_after(45):
        async with open_runtime(nats_url, queues={}) as rt:
            settings = rt.queue_settings("default", 2, ack_wait=1.5, sys_path=[ROOT])
            proc = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-c",
                    RUN,
                    msgspec.json.encode(settings).decode(),
                ],
                cwd=ROOT,
            )
            try:
                job = await rt.client.enqueue(jobfuncs.slow_first_time, str(marker), 60)
                await wait_for_status(rt.client, job.id, "running")
                os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
                # A fresh worker picks the job up once the dead one's lease runs out.
                await rt.start_queue_actor("default", 2, ack_wait=1.5)
                assert await job.result(timeout=30) == 2
                record = await job.record()
            finally:
                # Shielded: the process must be reaped even when the test failed.
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
    assert record is not None
    assert record.attempts == 2
    assert [h.status for h in record.history].count("succeeded") == 1
    calls = sorted(marker.iterdir())
    assert len(calls) == 2
    assert calls[0].name.endswith(f"-{proc.pid}")
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == "zombie"
