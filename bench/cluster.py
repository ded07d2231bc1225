"""Processing on a 3-node NATS cluster: R3 streams against R1 streams, same run.

Usage::

    python bench/cluster.py                  # N = 5000 jobs per mode
    python bench/cluster.py --n 2000 --json

A local cluster (``actorq.nats.cluster.LocalCluster``, three nats-server processes on
loopback) serves two namespaces, one provisioned with ``replicas=3`` and one with 1.
For each, a result actor and a queue actor run as Trio tasks in this process; N no-op
jobs are enqueued (pipelined), then timed from the enqueue being complete to the last
record stored. Modes alternate over ``--rounds`` rounds; each figure is the best.

Keys: ``processing_r1_per_s``, ``processing_r3_per_s``, ``processing_r3_ratio``
(R3 over R1; no bar: replication costs a round of consensus per write, the figure is
for the docs), ``n``, ``rounds``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actorq.jobs.client import open_client
from actorq.jobs.queue_actor import QueueActorSettings, serve_queue_actor
from actorq.jobs.result_actor import serve_result_actor
from actorq.jobs.streams import JobStreams
from actorq.nats.cluster import LocalCluster, wait_for_jetstream
from actorq.nats.connection import open_nats
from bench._jobs import noop


async def _drained(urls: list[str], streams: JobStreams, queue: str) -> None:
    """Wait until no job is pending or unacked and no outcome is left to store."""
    async with open_nats(urls) as conn:
        while True:
            durable = streams.consumer_name(queue)
            jobs = await conn.jsm("consumer_info", streams.jobs_stream, durable)
            outcomes = await conn.jsm("stream_info", streams.outcomes_stream)
            idle = jobs.num_pending == 0 and jobs.num_ack_pending == 0
            if idle and outcomes.state.messages == 0:
                return
            await trio.sleep(0.02)


async def run_mode(urls: list[str], replicas: int, n: int) -> float:
    """Jobs per second through queue actor and result actor on ``replicas`` copies."""
    namespace = f"bc{replicas}{uuid.uuid4().hex[:6]}"
    streams = JobStreams(namespace)
    async with open_nats(urls) as conn:
        await streams.provision(conn, replicas=replicas)
        await streams.provision_queue(conn, "default", max_ack_pending=4096)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_result_actor(
            urls, namespace=namespace, task_status=task_status))  # fmt: skip
        async with open_client(urls, namespace=namespace) as client:
            await client.enqueue_many([(noop, (), {})] * n)
            settings = QueueActorSettings(
                queue="default", url=urls, namespace=namespace, concurrency=256,
                imports=["bench._jobs"],
            )  # fmt: skip
            await nursery.start(lambda task_status: serve_queue_actor(
                settings, stop=stop, task_status=task_status))  # fmt: skip
            started = time.perf_counter()
            with trio.fail_after(600):
                await _drained(urls, streams, "default")
            took = time.perf_counter() - started
        stop.set()
        nursery.cancel_scope.cancel()
    return n / took


async def bench(urls: list[str], n: int, rounds: int) -> dict[str, float]:
    await wait_for_jetstream(urls)
    best = {1: 0.0, 3: 0.0}
    for r in range(rounds):
        for replicas in ((1, 3) if r % 2 == 0 else (3, 1)):
            best[replicas] = max(best[replicas], await run_mode(urls, replicas, n))
    return {
        "processing_r1_per_s": round(best[1]),
        "processing_r3_per_s": round(best[3]),
        "processing_r3_ratio": round(best[3] / best[1], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5000, help="jobs per mode and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, modes alternating")
    parser.add_argument("--json", action="store_true", help="one JSON object with every figure")
    args = parser.parse_args(argv)
    with LocalCluster(3) as cluster:
        figures = trio.run(bench, cluster.urls, args.n, args.rounds)
    result = {**figures, "n": args.n, "rounds": args.rounds}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"processing on a 3-node cluster, {args.n} no-op jobs, best of {args.rounds}:")
        print(f"  R1 {result['processing_r1_per_s']:>8} jobs/s")
        print(
            f"  R3 {result['processing_r3_per_s']:>8} jobs/s   "
            f"ratio {result['processing_r3_ratio']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
