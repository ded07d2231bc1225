"""Two scheduler processes on one NATS: one leads; kill -9 it and the other takes over,
with no due time fired twice or lost."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import msgspec
import trio

from actorq import BrokerError
from actorq.jobs.scheduler_actor import SchedulerActor, SchedulerSettings, serve_scheduler_actor
from actorq.nats import Connection
from actorq.nats.kv import KeyValueStore
from tests.helpers import paths, schedfuncs
from tests.helpers.jobs_harness import Runtime, open_runtime
from tests.helpers.scheduler_harness import eventually

ROOT = str(paths.ROOT)
RUN = (
    "import sys; from actorq.runtime.children import scheduler; "
    "scheduler(lambda: None, sys.argv[1])"
)
LEASE_TTL = 1.5


async def _holder(kv: KeyValueStore) -> str | None:
    entry = await kv.get("scheduler")
    return None if entry is None else entry.value.decode()


async def _is_holder(kv: KeyValueStore, name: str) -> bool:
    return await _holder(kv) == name


async def _lease_bucket(conn: Connection, namespace: str) -> KeyValueStore:
    while True:
        try:
            return await conn.kv(f"{namespace}_leader")
        except BrokerError:
            await trio.sleep(0.1)


async def _settled(rt: Runtime) -> bool:
    """No fire, job or outcome is left anywhere in flight."""
    streams = rt.client.streams
    for durable in ("scheduler", streams.consumer_name("default")):
        info = await rt.client.conn.jsm("consumer_info", streams.jobs_stream, durable)
        if info.num_pending or info.num_ack_pending:
            return False
    outcomes = await rt.client.conn.jsm("stream_info", streams.outcomes_stream)
    return bool(outcomes.state.messages == 0)


def _runs(marks: Path) -> int:
    return len(list(marks.glob("*"))) if marks.exists() else 0


async def test_one_leader_fires_and_a_survivor_takes_over_after_kill_9(
    nats_url: str, tmp_path: Path
) -> None:
    marks = tmp_path / "runs"
    procs: dict[str, trio.Process] = {}
    with trio.fail_after(50):
        async with open_runtime(nats_url) as rt:
            try:
                for name in ("s1", "s2"):
                    settings = SchedulerSettings(
                        url=[nats_url], namespace=rt.namespace, lease_ttl=LEASE_TTL,
                        ack_wait=2.0, name=name,
                    )  # fmt: skip
                    procs[name] = await trio.lowlevel.open_process(
                        [sys.executable, "-c", RUN, msgspec.json.encode(settings).decode()],
                        cwd=ROOT,
                    )
                # The bucket exists once a scheduler has started.
                lease = await _lease_bucket(rt.client.conn, rt.namespace)
                await eventually(lambda: _holder(lease))
                leader = await _holder(lease)
                assert leader is not None
                await rt.client.schedule("hb", schedfuncs.mark, str(marks), every=1)
                await eventually(lambda: _runs(marks) >= 3)
                killed_at = time.time()
                os.kill(procs[leader].pid, signal.SIGKILL)
                await procs[leader].wait()
                survivor = "s2" if leader == "s1" else "s1"
                await eventually(lambda: _is_holder(lease, survivor))
                takeover = time.time() - killed_at
                # The survivor fires on its own for a while (the killed one's
                # half-handled fire, if any, comes back after the ack wait).
                target = _runs(marks) + 3
                await eventually(lambda: _runs(marks) >= target)
                await rt.client.delete_schedule("hb")
                last = time.time()
                # A fire handled just as the delete landed may still enqueue one job.
                await eventually(lambda: _settled(rt))
                keys = sorted(k for k in await rt.client.results.keys() if k.startswith("hb-"))
                for key in keys:
                    await rt.client.job(key).result(timeout=10)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    for proc in procs.values():
                        if proc.returncode is None:
                            proc.kill()
                        await proc.wait()
    dues = [int(k.rsplit("-", 1)[1]) for k in keys]
    # None lost: every second from the first due time to the end has its job ...
    assert dues == list(range(dues[0], dues[0] + len(dues))), dues
    assert dues[-1] >= int(last) - 1
    # ... and none ran twice: one run (one marker file) per due time.
    assert _runs(marks) == len(dues)
    assert takeover < LEASE_TTL * 4 / 3 + 1.5, takeover


async def test_of_two_schedulers_one_leads_and_a_graceful_stop_hands_over_at_once(
    nats_url: str,
) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt, trio.open_nursery() as nursery:
            actors = []
            scopes = []
            for name in ("a", "b"):
                scope = trio.CancelScope()

                async def run(
                    name: str = name,
                    scope: trio.CancelScope = scope,
                    task_status: trio.TaskStatus[SchedulerActor] = trio.TASK_STATUS_IGNORED,
                ) -> None:
                    with scope:
                        await serve_scheduler_actor(
                            nats_url, namespace=rt.namespace, lease_ttl=LEASE_TTL, name=name,
                            task_status=task_status,
                        )  # fmt: skip

                actors.append(await nursery.start(run))
                scopes.append(scope)
            leases = [a.lease for a in actors]
            assert [lease.leading for lease in leases].count(True) == 1
            first = next(i for i, lease in enumerate(leases) if lease.leading)
            other = 1 - first
            await rt.client.schedule("x", schedfuncs.now, every=1, max_runs=4)
            await eventually(lambda: actors[first].fired >= 2)
            assert actors[other].fired == 0
            stopped_at = time.time()
            scopes[first].cancel()  # graceful: the lease is given up, not left to expire
            await eventually(lambda: leases[other].leading)
            handover = time.time() - stopped_at
            await eventually(lambda: actors[first].fired + actors[other].fired >= 4)
            assert [lease.leading for lease in leases].count(True) == 1
            nursery.cancel_scope.cancel()
    assert handover < LEASE_TTL / 3 + 1.0, handover
    assert actors[other].fired >= 1
    assert actors[first].fired + actors[other].fired == 4
