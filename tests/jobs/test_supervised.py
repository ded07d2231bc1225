"""Queue and result actors as supervised processes: kill -9 mid-job, restart, no orphans."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import psutil
import trio

from actorq.jobs.client import Client, open_client
from actorq.jobs.queue_actor import QueueActorSettings
from actorq.jobs.stats import read_reports
from actorq.runtime.specs import queue_supervisor_spec, result_actor_spec
from supervisors import (
    ChildExited,
    ChildSnapshot,
    StandbyParked,
    Supervisor,
    SupervisorEvent,
    open_supervisor,
)
from tests.helpers import jobfuncs, paths, upfuncs
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


async def test_a_parked_standby_replaces_a_killed_queue_actor_and_runs_the_next_job(
    nats_url: str, tmp_path: Path
) -> None:
    """``standby`` (the default of queue_supervisor_spec): a spare with the job modules
    imported is parked, not serving (no heartbeat, no jobs); after a ``kill -9`` it
    is the process that runs the next job; nothing outlives the tree."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    # A job module that notes which processes imported it.
    (tmp_path / "standby_mod.py").write_text(
        "import os, pathlib\n"
        f"pathlib.Path({str(tmp_path)!r}, f'imported.{{os.getpid()}}').touch()\n"
    )
    settings = QueueActorSettings(
        queue="default", url=[nats_url], namespace=namespace, concurrency=2,
        sys_path=[str(tmp_path), ROOT], imports=["standby_mod"],
    )  # fmt: skip
    children = [result_actor_spec([nats_url], namespace), queue_supervisor_spec(settings, 1)]
    seen: set[int] = set()
    with trio.fail_after(60):
        async with open_client(nats_url, namespace=namespace) as client:
            async with open_supervisor(children, max_restarts=5) as sup, sup.subscribe() as events:
                first = _find(sup.snapshot(), "default-0").pid
                assert first is not None
                spare = await _standby(sup, events)
                seen.update((first, spare))
                assert await (await client.enqueue(upfuncs.pid)).result(timeout=30) == first
                assert (tmp_path / f"imported.{spare}").exists()  # prepared while parked
                reporting = await _reporting(client, first)
                assert spare not in reporting  # `actorq ps` does not list it
                os.kill(first, signal.SIGKILL)
                async for event in events:
                    if isinstance(event, ChildExited) and event.pid == first:
                        break
                assert await (await client.enqueue(upfuncs.pid)).result(timeout=30) == spare
                node = _find(sup.snapshot(), "default-0")
                assert (node.pid, node.restarts) == (spare, 1)
                seen.update(_find(sup.snapshot(), "queue-default").standby_pids)
            # Leaving the scope stopped the actors and the spare (by pid).
            assert all(_gone(pid) for pid in seen)


async def _standby(sup: Supervisor, events: trio.MemoryReceiveChannel[SupervisorEvent]) -> int:
    parked = _find(sup.snapshot(), "queue-default").standby_pids
    if parked:
        return parked[0]
    async for event in events:
        if isinstance(event, StandbyParked):
            return event.pid
    raise AssertionError("the tree stopped")


async def _reporting(client: Client, pid: int) -> set[int]:
    """The pids with a heartbeat report, once ``pid`` has one (the caller bounds it)."""
    while True:
        pids = {r.pid for r in await read_reports(client)}
        if pid in pids:
            return pids
        await trio.sleep(0.05)  # heartbeats are in a KV bucket: read it again
