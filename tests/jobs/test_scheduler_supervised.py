"""The scheduler actor as a supervised process: it leads, fires, and is restarted after kill -9."""

from __future__ import annotations

import os
import signal
import uuid

import trio

from actorq.jobs.client import open_client
from actorq.jobs.queue_actor import QueueActorSettings
from actorq.runtime.specs import queue_supervisor_spec, result_actor_spec, scheduler_actor_spec
from supervisors import ChildSnapshot, open_supervisor
from tests.helpers import paths, schedfuncs

ROOT = str(paths.ROOT)


def _find(node: ChildSnapshot, child_id: str) -> ChildSnapshot:
    if node.id == child_id:
        return node
    for child in node.children:
        if child.id == child_id:
            return child
    raise KeyError(child_id)


async def test_a_supervised_scheduler_fires_and_is_restarted_after_kill_9(nats_url: str) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    queue = QueueActorSettings(
        queue="default", url=[nats_url], namespace=namespace, concurrency=2, sys_path=[ROOT]
    )
    children = [
        result_actor_spec([nats_url], namespace),
        queue_supervisor_spec(queue, 1),
        scheduler_actor_spec([nats_url], namespace, lease_ttl=1.5),
    ]
    with trio.fail_after(45):
        async with (
            open_client(nats_url, namespace=namespace) as client,
            open_supervisor(children, max_restarts=5) as sup,
        ):
            pid = _find(sup.snapshot(), "scheduler").pid
            assert pid is not None
            first = await client.schedule("one", schedfuncs.now, every=1, max_runs=1)
            due = int(first.next_runs[0].timestamp())
            await client.job(f"one-{due}").result(timeout=10)
            os.kill(pid, signal.SIGKILL)
            # The restarted process takes the lease once the dead one's expires.
            second = await client.schedule("two", schedfuncs.now, every=1, max_runs=1)
            due = int(second.next_runs[0].timestamp())
            ran_at = await client.job(f"two-{due}").result(timeout=15)
            after = _find(sup.snapshot(), "scheduler")
    assert after.restarts == 1
    assert after.pid != pid
    assert ran_at >= due
