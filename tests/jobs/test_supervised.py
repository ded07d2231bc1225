"""Queue and result actors as supervised processes: kill -9 mid-job, restart, no orphans."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import psutil
import trio

from actorq.jobs.client import open_client
from actorq.jobs.queue_actor import QueueActorSettings
from actorq.runtime.specs import queue_supervisor_spec, result_actor_spec
from supervisors import ChildSnapshot, open_supervisor
from tests.helpers import jobfuncs, paths
from tests.helpers.jobs_harness import wait_for_status

ROOT = str(paths.ROOT)


def _find(node: ChildSnapshot, child_id: str) -> ChildSnapshot:
    if node.id == child_id:
        return node
    for child in node.children:
        try:
            return _find(child, child_id)
        except KeyError:
            pass
    raise KeyError(child_id)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_a_supervised_queue_actor_killed_mid_job_is_restarted_and_the_job_done_once(
    nats_url: str, tmp_path: Path
) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    marker = tmp_path / "calls"
    settings = QueueActorSettings(
        queue="default", url=[nats_url], namespace=namespace, concurrency=2,
        ack_wait=1.5, sys_path=[ROOT],
    )  # fmt: skip
    children = [result_actor_spec([nats_url], namespace), queue_supervisor_spec(settings, 2)]
    with trio.fail_after(60):
        async with open_client(nats_url, namespace=namespace) as client:
            async with open_supervisor(children, max_restarts=5) as sup:
                before = sup.snapshot()
                pids = {c: _find(before, c).pid for c in ("results", "default-0", "default-1")}
                job = await client.enqueue(jobfuncs.slow_first_time, str(marker), 60)
                await wait_for_status(client, job.id, "running")
                record = await job.record()
                assert record is not None
                victim = int(record.worker.rsplit(":", 1)[1])
                victim_id = next(c for c, pid in pids.items() if pid == victim)
                os.kill(victim, signal.SIGKILL)
                assert await job.result(timeout=30) == 2
                final = await job.record()
                after = _find(sup.snapshot(), victim_id)
            # Leaving the scope stopped every actor process.
            for pid in [*pids.values(), after.pid]:
                assert pid is not None
                assert _gone(pid)
    assert after.restarts == 1
    assert after.pid != victim
    assert final is not None
    assert final.attempts == 2
    assert [h.status for h in final.history].count("succeeded") == 1
    assert len(list(marker.iterdir())) == 2
