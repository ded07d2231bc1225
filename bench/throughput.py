"""The job queue's speed bars (issue 5): actorq vs a raw nats-py pipeline, same server.

Usage::

    python bench/throughput.py                  # N = 10000, backlog 100000
    python bench/throughput.py --n 2000 --backlog 20000 --json

Reference (plain nats-py, plain asyncio, one process): N messages, each the size of
an actorq job envelope, published to a work-queue stream with ``--window`` publishes
in flight (a pool of asyncio workers sharing one iterator, exactly what
``js_publish_many`` runs); then a durable pull consumer fetches ``--batch`` at a time,
puts a small result into a KV bucket per message (the batch's puts pipelined), then
acks each message.

actorq, on the same server: the async client enqueues N no-op jobs (``_jobs.noop``);
then one queue actor *process* (``actorq.runtime.children.queue_actor`` in a fresh interpreter,
``--concurrency`` slots) runs them, and the result actor, a Trio task in this bench
process, stores their records.

Figures (each rate the best of ``--rounds`` rounds, reference and actorq alternating):

* enqueue, three modes, each vs the same mode of the reference: pipelined
  (``enqueue_many`` vs the worker pool), concurrent per-call (``--tasks`` Trio tasks
  calling ``enqueue`` vs as many asyncio tasks calling ``js.publish``) and sequential
  per-call (one ``enqueue`` at a time vs one ``js.publish`` at a time);
  ``enqueue_ratio`` is the pipelined one.
* sync helper: ``actorq.SyncClient`` per-call enqueue vs the async client's sequential
  per-call enqueue (``null`` if there is no ``SyncClient``).
* processing: a backlog of N jobs, timed from the moment the enqueue is complete *and*
  the queue actor process is ready (connected, consumer bound) to the moment the last
  record is stored (jobs consumer has nothing pending or unacked, and the outcomes
  stream, which the result actor acks only after its KV writes, is empty). The
  reference is timed the same way: from its publish being complete to its last KV put.
* processing signed: the same with every envelope signed by the client and checked by
  the queue actor (``signing_key_hex``), in the same run, the two in alternating order
  across rounds; ``processing_signed_ratio`` is signed over unsigned (bar: >= 0.95).
  ``processing_signed_cpu_ratio`` compares the queue actor's CPU time per job instead
  (unsigned over signed, least of the rounds), which a busy machine disturbs less.
* processing async: the same backlog of ``async def`` no-op jobs (``_jobs.noop_async``,
  a Trio task each, no thread), in the same rounds; ``processing_async_ratio`` is its
  rate over the reference's.
* round trip: 500 sequential ``await (await client.enqueue(noop)).result()`` (after 20
  to warm up), against the same raw nats-py round trip measured just before in the same
  run (:func:`ref_rtt`: publish to a work-queue stream, a worker fetches one message,
  puts a KV entry and acks, the caller is woken by a KV watch); ``rtt_p50_ratio`` and
  ``rtt_p99_ratio`` are actorq over raw (bars: <= 2 and <= 3).
* ``client_link``: whether the client's single publishes took its Trio-owned link
  (``actorq.nats.link_js``) rather than the asyncio bridge.
* idle first job: ``--idle-periods`` times (default 100), 1-3 s of quiet (random), then
  one plain ``def`` job that returns when it started (``_jobs.stamp``);
  ``idle_first_job_p99_ms`` is the p99 from the client's ``enqueue`` call to the job
  starting in the queue actor process (both clocks are this machine's ``time.time()``);
  ``idle_pickup_p99_ms`` from the ``enqueue``'s return (the job is stored) instead:
  the worker's share.
* backlog: ``--backlog`` jobs enqueued first, then a fresh queue actor process drains
  them; its RSS is sampled with psutil every 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import psutil
import trio
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, RetentionPolicy, StreamConfig

import actorq
from actorq.jobs.client import Client, EnqueueOptions, open_client
from actorq.jobs.queue_actor import QueueActorSettings
from actorq.jobs.result_actor import serve_result_actor
from actorq.jobs.streams import JobStreams
from actorq.nats import NatsServerProcess
from actorq.wire.codec import get_codec
from actorq.wire.messages import encode

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import _jobs  # noqa: E402

RESULT_VALUE = b"r" * 64
SIGNING_KEY = bytes(range(32))
RTT_JOBS = 500
ENQ_QUEUE = "enq"  # enqueue-rate jobs go here: no consumer, purged after each mode

_RUNNER = (  # one line per statement; py-spy and ps show it whole
    "import sys, time\n"
    "from actorq.runtime.children import queue_actor\n"
    "queue_actor(lambda: print('READY', time.time(), flush=True), sys.argv[1])\n"
)


def envelope_size() -> int:
    """Bytes of one encoded no-op job envelope (the reference publishes this many)."""
    client = Client(None, None, get_codec("pickle"))  # type: ignore[arg-type]
    return len(encode(client.build_envelope(EnqueueOptions(), _jobs.noop, (), {})))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- reference: plain nats-py, plain asyncio ----------------------------------------------


async def ref_run(
    url: str, n: int, window: int, tasks: int, batch: int, n_seq: int, size: int, tag: str
) -> dict[str, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    out: dict[str, float] = {}
    payload = b"x" * size
    name = f"REF{tag}"
    bucket = f"REF{tag}_results"
    try:
        await js.add_stream(
            StreamConfig(name=name, subjects=[f"{name}.>"], retention=RetentionPolicy.WORK_QUEUE)
        )
        kv = await js.create_key_value(KeyValueConfig(bucket=bucket))
        ids = [uuid.uuid4().hex for _ in range(n)]

        # Rates of the enqueue modes, on a subject no consumer reads, purged after each.
        other = f"{name}.other"
        it = iter(ids)

        async def pool_worker() -> None:
            for job_id in it:
                await js.publish(f"{other}.{job_id}", payload)

        t0 = time.perf_counter()
        await asyncio.gather(*(pool_worker() for _ in range(min(window, n))))
        out["enqueue_pipelined"] = n / (time.perf_counter() - t0)
        await js.purge_stream(name)

        per_task = max(1, n // tasks)

        async def task_worker() -> None:
            for _ in range(per_task):
                await js.publish(f"{other}.{uuid.uuid4().hex}", payload)

        t0 = time.perf_counter()
        await asyncio.gather(*(task_worker() for _ in range(tasks)))
        out["enqueue_concurrent"] = per_task * tasks / (time.perf_counter() - t0)
        await js.purge_stream(name)

        t0 = time.perf_counter()
        for _ in range(n_seq):
            await js.publish(f"{other}.{uuid.uuid4().hex}", payload)
        out["enqueue_sequential"] = n_seq / (time.perf_counter() - t0)
        await js.purge_stream(name)

        # The processing workload: publish N (pipelined), then fetch, put, ack.
        work = f"{name}.work"
        it = iter(ids)
        await asyncio.gather(*(pool_worker_for(js, it, work, payload) for _ in range(window)))
        await js.add_consumer(
            name,
            ConsumerConfig(
                durable_name="c", ack_policy=AckPolicy.EXPLICIT, filter_subject=f"{work}.*"
            ),
        )
        psub = await js.pull_subscribe_bind("c", name)
        got = 0
        t0 = time.perf_counter()
        while got < n:
            msgs = await psub.fetch(batch, timeout=5)
            await asyncio.gather(*(kv.put(m.subject.rsplit(".", 1)[1], RESULT_VALUE) for m in msgs))
            for m in msgs:
                await m.ack()
            got += len(msgs)
        await nc.flush()
        out["processing"] = n / (time.perf_counter() - t0)
        await js.delete_stream(name)
        await js.delete_key_value(bucket)
    finally:
        await nc.close()
    return out


async def ref_rtt(url: str, n: int, size: int, tag: str) -> list[float]:
    """Round trips (ms) of one job at a time, raw nats-py: the caller publishes to a
    work-queue stream and awaits the ack; a worker task (same process, as the bench's
    result actor) fetches one message at a time, puts a result into a KV bucket and acks;
    the caller is woken by a watch on that bucket (one watch for the whole run,
    opened before the first job: a watch per job would be a consumer per job)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    payload = b"x" * size
    name = f"RTT{tag}"
    bucket = f"RTT{tag}_results"
    waiters: dict[str, asyncio.Future[bytes]] = {}
    rtts: list[float] = []
    try:
        await js.add_stream(
            StreamConfig(name=name, subjects=[f"{name}.>"], retention=RetentionPolicy.WORK_QUEUE)
        )
        kv = await js.create_key_value(KeyValueConfig(bucket=bucket))
        await js.add_consumer(
            name, ConsumerConfig(durable_name="w", ack_policy=AckPolicy.EXPLICIT)
        )
        psub = await js.pull_subscribe_bind("w", name)
        watcher = await kv.watchall()

        async def watch() -> None:
            async for entry in watcher:
                if entry is None or entry.value is None:
                    continue
                fut = waiters.pop(entry.key, None)
                if fut is not None and not fut.done():
                    fut.set_result(entry.value)

        async def worker() -> None:
            while True:
                try:
                    msgs = await psub.fetch(1, timeout=5)
                except nats.errors.TimeoutError:
                    continue
                for m in msgs:
                    await kv.put(m.subject.rsplit(".", 1)[1], RESULT_VALUE)
                    await m.ack()

        tasks = [asyncio.create_task(watch()), asyncio.create_task(worker())]
        loop = asyncio.get_running_loop()
        for i in range(n + 20):  # the first 20 warm up
            job_id = uuid.uuid4().hex
            fut = waiters[job_id] = loop.create_future()
            t0 = time.perf_counter()
            await js.publish(f"{name}.work.{job_id}", payload)
            await asyncio.wait_for(fut, 10)
            if i >= 20:
                rtts.append((time.perf_counter() - t0) * 1000)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await watcher.stop()
        await js.delete_stream(name)
        await js.delete_key_value(bucket)
    finally:
        await nc.close()
    return rtts


async def pool_worker_for(js: Any, it: Any, subject: str, payload: bytes) -> None:
    for job_id in it:
        await js.publish(f"{subject}.{job_id}", payload)


# -- actorq -------------------------------------------------------------------------------


class QueueActorProcess:
    """One queue actor in a fresh interpreter; knows when it is ready; killed by PID."""

    def __init__(self, settings: QueueActorSettings) -> None:
        self.settings = settings
        self.proc: trio.Process | None = None
        self.ready_at = 0.0

    async def start(self) -> None:
        # No parent-death signal is armed here, so open_process's worker-thread fork is
        # fine; the bench kills every process it starts by PID in `finally`.
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-c", _RUNNER, msgspec.json.encode(self.settings).decode()],
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        buf = b""
        with trio.fail_after(30):
            while b"\n" not in buf:
                chunk = await self.proc.stdout.receive_some()
                if not chunk:
                    raise RuntimeError("queue actor process exited before it was ready")
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode()
        word, stamp = line.split()
        assert word == "READY", line
        self.ready_at = float(stamp)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with trio.CancelScope(shield=True):
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await proc.wait()
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()


class CpuMeter:
    """CPU seconds each process spends from now on, as a share of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {k: psutil.Process(p) for k, p in pids.items()}
        self.start = {k: self._cpu(p) for k, p in self.procs.items()}

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    def shares(self, span: float) -> dict[str, float]:
        return {k: round((self._cpu(p) - self.start[k]) / span, 2) for k, p in self.procs.items()}


class Drained:
    """Polls whether every job of a queue has its record stored."""

    def __init__(self, client: Client, queue: str) -> None:
        self.conn = client.conn
        self.streams: JobStreams = client.streams
        self.queue = queue

    async def __call__(self) -> bool:
        s = self.streams
        info = await self.conn.jsm("consumer_info", s.jobs_stream, s.consumer_name(self.queue))
        if info.num_pending or info.num_ack_pending:
            return False
        outcomes = await self.conn.jsm("stream_info", s.outcomes_stream)
        return bool(outcomes.state.messages == 0)


async def enqueue_chunks(client: Client, queue: str, fn: Callable[..., Any], n: int) -> None:
    opts = EnqueueOptions(queue=queue)
    for start in range(0, n, 10_000):
        await client.enqueue_many([(fn, (), {})] * min(10_000, n - start), opts)


async def actorq_run(
    url: str,
    args: argparse.Namespace,
    fn: Callable[..., Any],
    tag: str,
    last_round: bool,
    round_index: int = 0,
) -> dict[str, Any]:
    n, tasks, n_seq = args.n, args.tasks, args.n_seq
    namespace = f"bench{uuid.uuid4().hex[:8]}{tag}"
    out: dict[str, Any] = {}
    procs: list[QueueActorProcess] = []

    def settings(queue: str) -> QueueActorSettings:
        return QueueActorSettings(
            queue=queue,
            url=[url],
            namespace=namespace,
            concurrency=args.concurrency,
            track_started=not args.no_track_started,
            imports=["_jobs"],
            sys_path=[str(BENCH_DIR)],
            shutdown_timeout=5.0,
        )

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve_result_actor(
                url, namespace=namespace, task_status=task_status
            ))  # fmt: skip
            async with open_client(url, namespace=namespace) as client:
                # Which path single publishes take: the Trio-owned link or the bridge.
                out["client_link"] = getattr(client.conn, "link_js", None) is not None
                # -- enqueue rates (no consumer on ENQ_QUEUE)
                opts = EnqueueOptions(queue=ENQ_QUEUE)
                calls = [(fn, (), {})] * n
                t0 = time.perf_counter()
                await client.enqueue_many(calls, opts)
                out["enqueue_pipelined"] = n / (time.perf_counter() - t0)
                await client.purge(ENQ_QUEUE)

                per_task = max(1, n // tasks)

                async def task_worker() -> None:
                    for _ in range(per_task):
                        await client.enqueue_with(opts, fn)

                t0 = time.perf_counter()
                async with trio.open_nursery() as callers:
                    for _ in range(tasks):
                        callers.start_soon(task_worker)
                out["enqueue_concurrent"] = per_task * tasks / (time.perf_counter() - t0)
                await client.purge(ENQ_QUEUE)

                t0 = time.perf_counter()
                for _ in range(n_seq):
                    await client.enqueue_with(opts, fn)
                out["enqueue_sequential"] = n_seq / (time.perf_counter() - t0)
                await client.purge(ENQ_QUEUE)

                # -- processing: a backlog of N, then one queue actor process; the
                # same with every envelope signed and checked, in the order ABBA
                # (BAAB every other round), so a drift of the machine's load during
                # the round weighs on both alike. Best of each.
                async with open_client(
                    url, namespace=namespace, signing_key=SIGNING_KEY
                ) as signer:
                    plain_run = ("", client, "work", fn)
                    signed_run = ("_signed", signer, "signed", fn)
                    async_run = ("_async", client, "async", _jobs.noop_async)
                    a, b, c = (plain_run, signed_run, async_run)
                    if round_index % 2:
                        a, b, c = c, b, a
                    qa = None
                    work_queue = ""
                    for i, (suffix, sender, queue, job) in enumerate((a, b, c, c, b, a)):
                        qs = settings(f"{queue}{i}")
                        if suffix == "_signed":
                            qs = msgspec.structs.replace(qs, signing_key_hex=SIGNING_KEY.hex())
                        rate, share, runner = await processing_run(sender, qs, job, n, args, procs)
                        cpu_us = share.pop("queue_actor_us_per_job")
                        if rate > out.get(f"processing{suffix}", 0.0):
                            out[f"processing{suffix}"] = rate
                            if not suffix:
                                out["processing_cpu_share"] = share
                        key = f"processing{suffix}_cpu_us"
                        out[key] = min(cpu_us, out.get(key, cpu_us))
                        if suffix or qa is not None:
                            await runner.stop()
                        else:
                            qa, work_queue = runner, qs.queue  # it serves the round trips
                    assert qa is not None

                if last_round:
                    # -- round trip, same process
                    rtts: list[float] = []
                    wopts = EnqueueOptions(queue=work_queue)
                    for i in range(RTT_JOBS + 20):  # the first 20 warm up, as the raw run's
                        t0 = time.perf_counter()
                        job = await client.enqueue_with(wopts, fn)
                        await job.result(timeout=10)
                        if i >= 20:
                            rtts.append((time.perf_counter() - t0) * 1000)
                    out["rtt_p50_ms"] = round(statistics.median(rtts), 3)
                    out["rtt_p99_ms"] = round(pct(rtts, 0.99), 3)
                    out["rtt_mean_ms"] = round(statistics.fmean(rtts), 3)
                    if args.idle_periods > 0:
                        out.update(await idle_run(client, wopts, args.idle_periods))
                await qa.stop()

                if last_round and args.backlog > 0:
                    out.update(await backlog_run(client, settings("backlog"), fn, args, procs))
            nursery.cancel_scope.cancel()
    finally:
        for p in procs:
            await p.stop()
    return out


async def processing_run(
    client: Client,
    settings: QueueActorSettings,
    fn: Callable[..., Any],
    n: int,
    args: argparse.Namespace,
    procs: list[QueueActorProcess],
) -> tuple[float, Any, QueueActorProcess]:
    """Jobs/s of a queue actor process draining a backlog of ``n``, CPU shares, and the
    process (still running)."""
    await enqueue_chunks(client, settings.queue, fn, n)
    enqueued_at = time.time()
    qa = QueueActorProcess(settings)
    procs.append(qa)
    await qa.start()
    drained = Drained(client, settings.queue)
    cpu = CpuMeter({"queue_actor": qa.pid, "bench": os.getpid(), "nats": args.nats_pid})
    # Polled every 20 ms (<= 1% of a multi-second drain): polling faster
    # steals CPU from the result actor, which shares this process.
    while not await drained():  # noqa: ASYNC110 (polling the server)
        await trio.sleep(0.02)
    done_at = time.time()
    span = done_at - max(enqueued_at, qa.ready_at)
    shares: dict[str, float] = cpu.shares(span)
    # CPU seconds the queue actor spent per job: steadier than a rate on a busy machine.
    qa_cpu = cpu._cpu(cpu.procs["queue_actor"]) - cpu.start["queue_actor"]
    shares["queue_actor_us_per_job"] = round(qa_cpu / n * 1e6, 1)
    return n / span, shares, qa


async def idle_run(client: Client, opts: EnqueueOptions, periods: int) -> dict[str, Any]:
    """The first job after 1-3 s of quiet, ``periods`` times: from the ``enqueue`` call to
    the job starting (the job returns ``time.time()`` when it starts), and to its result."""
    starts: list[float] = []
    pickups: list[float] = []
    rtts: list[float] = []
    rng = random.Random(14)
    for _ in range(periods):
        await trio.sleep(rng.uniform(1.0, 3.0))
        t0 = time.time()
        job = await client.enqueue_with(opts, _jobs.stamp)
        t1 = time.time()
        started = await job.result(timeout=10)
        rtts.append((time.time() - t0) * 1000)
        starts.append((started - t0) * 1000)
        pickups.append((started - t1) * 1000)
    return {
        "idle_periods": periods,
        "idle_first_job_p50_ms": round(statistics.median(starts), 3),
        "idle_first_job_p99_ms": round(pct(starts, 0.99), 3),
        "idle_first_job_max_ms": round(max(starts), 3),
        # The worker's share: from the enqueue's return (the job is stored) to its start.
        "idle_pickup_p50_ms": round(statistics.median(pickups), 3),
        "idle_pickup_p99_ms": round(pct(pickups, 0.99), 3),
        "idle_rtt_p50_ms": round(statistics.median(rtts), 3),
        "idle_rtt_p99_ms": round(pct(rtts, 0.99), 3),
    }


async def backlog_run(
    client: Client,
    settings: QueueActorSettings,
    fn: Callable[..., Any],
    args: argparse.Namespace,
    procs: list[QueueActorProcess],
) -> dict[str, Any]:
    await enqueue_chunks(client, settings.queue, fn, args.backlog)
    qa = QueueActorProcess(settings)
    procs.append(qa)
    await qa.start()
    ps = psutil.Process(qa.pid)
    ready_rss = peak = ps.memory_info().rss
    drained = Drained(client, settings.queue)
    with trio.fail_after(args.backlog / 500 + 60):
        while not await drained():
            peak = max(peak, ps.memory_info().rss)
            await trio.sleep(0.05)
    peak = max(peak, ps.memory_info().rss)
    done_at = time.time()
    await qa.stop()
    return {
        "backlog": args.backlog,
        "backlog_ready_rss_mb": round(ready_rss / 1e6, 1),
        "backlog_peak_rss_mb": round(peak / 1e6, 1),
        "backlog_processing_per_s": round(args.backlog / (done_at - qa.ready_at)),
    }


# -- the sync helper -----------------------------------------------------------------------


def sync_run(url: str, n_seq: int, fn: Callable[..., Any]) -> float | None:
    """Per-call enqueue rate of ``actorq.SyncClient``, or ``None`` when it does not exist."""
    sync_client = getattr(actorq, "SyncClient", None)
    if sync_client is None:
        return None
    namespace = f"bench{uuid.uuid4().hex[:8]}sync"
    client = sync_client(url, namespace=namespace)
    try:
        client.enqueue_with(EnqueueOptions(queue=ENQ_QUEUE), fn)  # connect, provision
        t0 = time.perf_counter()
        for _ in range(n_seq):
            client.enqueue_with(EnqueueOptions(queue=ENQ_QUEUE), fn)
        return n_seq / (time.perf_counter() - t0)
    finally:
        client.close()


# -- main -----------------------------------------------------------------------------------


def best(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    if a is None:
        return b
    rates = (
        "enqueue_pipelined", "enqueue_concurrent", "enqueue_sequential", "processing",
        "processing_signed", "processing_async",
    )  # fmt: skip
    cpu = ("processing_cpu_us", "processing_signed_cpu_us", "processing_async_cpu_us")
    return {
        **a, **b,
        **{k: max(a[k], b[k]) for k in rates if k in a and k in b},
        **{k: min(a[k], b[k]) for k in cpu if k in a and k in b},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=10_000, help="jobs per mode")
    parser.add_argument("--backlog", type=int, default=100_000, help="jobs for the RSS test")
    parser.add_argument("--window", type=int, default=1024,
                        help="reference publishes in flight (as js_publish_many)")  # fmt: skip
    parser.add_argument("--tasks", type=int, default=256, help="concurrent per-call callers")
    parser.add_argument("--n-seq", type=int, default=2000, help="sequential per-call enqueues")
    parser.add_argument("--batch", type=int, default=256, help="reference fetch batch")
    parser.add_argument("--concurrency", type=int, default=256, help="queue actor slots")
    parser.add_argument("--job", choices=["sync", "trio"], default="sync",
                        help="sync no-op (worker thread) or async no-op (Trio task)")  # fmt: skip
    parser.add_argument("--no-track-started", action="store_true",
                        help="queue actor sends no 'running' outcome per job")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="best of this many rounds")
    parser.add_argument("--idle-periods", type=int, default=100,
                        help="quiet periods of 1-3 s for idle_first_job (0: skip)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.n_seq = min(args.n_seq, args.n)
    fn = _jobs.noop if args.job == "sync" else _jobs.noop_async

    size = envelope_size()
    ref: dict[str, Any] | None = None
    act: dict[str, Any] | None = None
    ref_rtts: list[float] = []
    sync_rate: float | None = None
    with NatsServerProcess() as server:
        args.nats_pid = server.pid
        for r in range(args.rounds):
            params = (server.url, args.n, args.window, args.tasks, args.batch, args.n_seq)
            ref = best(ref, asyncio.run(ref_run(*params, size, f"{r}")))
            last = r == args.rounds - 1
            if last:
                ref_rtts = asyncio.run(ref_rtt(server.url, RTT_JOBS, size, f"{r}"))
            act = best(act, trio.run(actorq_run, server.url, args, fn, f"r{r}", last, r))
        for _ in range(args.rounds):
            rate = sync_run(server.url, args.n_seq, fn)
            if rate is not None:
                sync_rate = max(rate, sync_rate or 0.0)
    assert ref is not None
    assert act is not None

    res: dict[str, Any] = {
        "n": args.n,
        "job": args.job,
        "concurrency": args.concurrency,
        "track_started": not args.no_track_started,
        "window": args.window,
        "tasks": args.tasks,
        "n_seq": args.n_seq,
        "envelope_bytes": size,
        "result_actor": "trio task in the bench process",
        "client_link": act.get("client_link", False),
    }
    for mode in ("enqueue_pipelined", "enqueue_concurrent", "enqueue_sequential", "processing"):
        res[f"{mode}_ref_per_s"] = round(ref[mode])
        res[f"{mode}_actorq_per_s"] = round(act[mode])
        res[f"{mode}_ratio"] = round(act[mode] / ref[mode], 3)
    res["enqueue_ratio"] = res["enqueue_pipelined_ratio"]
    if sync_rate is None:
        res["sync_enqueue_per_s"] = None
        res["sync_enqueue_ratio"] = None
        res["sync_note"] = "actorq.SyncClient does not exist (yet): not measured"
    else:
        res["sync_enqueue_per_s"] = round(sync_rate)
        res["sync_enqueue_ratio"] = round(sync_rate / act["enqueue_sequential"], 3)
    res["processing_async_actorq_per_s"] = round(act["processing_async"])
    res["processing_async_ratio"] = round(act["processing_async"] / ref["processing"], 3)
    res["processing_async_cpu_us_per_job"] = act["processing_async_cpu_us"]
    res["processing_signed_per_s"] = round(act["processing_signed"])
    res["processing_signed_ratio"] = round(act["processing_signed"] / act["processing"], 3)
    # The same comparison by the queue actor's CPU time per job (least of the rounds):
    # unsigned over signed, so 1.0 means signing costs nothing.
    res["processing_cpu_us_per_job"] = act["processing_cpu_us"]
    res["processing_signed_cpu_us_per_job"] = act["processing_signed_cpu_us"]
    res["processing_signed_cpu_ratio"] = round(
        act["processing_cpu_us"] / act["processing_signed_cpu_us"], 3
    )
    res["processing_cpu_share"] = act.get("processing_cpu_share")
    for key in ("rtt_p50_ms", "rtt_p99_ms", "rtt_mean_ms", "idle_periods",
                "idle_first_job_p50_ms", "idle_first_job_p99_ms", "idle_first_job_max_ms",
                "idle_pickup_p50_ms", "idle_pickup_p99_ms",
                "idle_rtt_p50_ms", "idle_rtt_p99_ms"):  # fmt: skip
        res[key] = act.get(key)
    res["rtt_raw_p50_ms"] = round(statistics.median(ref_rtts), 3)
    res["rtt_raw_p99_ms"] = round(pct(ref_rtts, 0.99), 3)
    res["rtt_raw_mean_ms"] = round(statistics.fmean(ref_rtts), 3)
    res["rtt_p50_ratio"] = round(res["rtt_p50_ms"] / res["rtt_raw_p50_ms"], 3)
    res["rtt_p99_ratio"] = round(res["rtt_p99_ms"] / res["rtt_raw_p99_ms"], 3)
    for key in ("backlog", "backlog_ready_rss_mb", "backlog_peak_rss_mb",
                "backlog_processing_per_s"):  # fmt: skip
        res[key] = act.get(key)

    bars = {
        "enqueue_ratio": res["enqueue_ratio"] >= 0.7,
        "enqueue_sequential_ratio": res["enqueue_sequential_ratio"] >= 0.9,
        "enqueue_concurrent_ratio": res["enqueue_concurrent_ratio"] >= 0.9,
        "sync_enqueue_ratio": None if sync_rate is None else res["sync_enqueue_ratio"] >= 0.9,
        "processing_ratio": res["processing_ratio"] >= 0.8,
        "processing_async_ratio": res["processing_async_ratio"] >= 0.8,
        "processing_signed_ratio": res["processing_signed_ratio"] >= 0.95,
        "rtt_p50_ms": res["rtt_p50_ms"] is not None and res["rtt_p50_ms"] < 3,
        "rtt_p99_ms": res["rtt_p99_ms"] is not None and res["rtt_p99_ms"] < 15,
        "rtt_p50_ratio": res["rtt_p50_ratio"] <= 2,
        "rtt_p99_ratio": res["rtt_p99_ratio"] <= 3,
        "backlog_peak_rss_mb": res["backlog_peak_rss_mb"] is not None
        and res["backlog_peak_rss_mb"] < 150,
        "idle_first_job_p99_ms": None if res["idle_first_job_p99_ms"] is None
        else res["idle_first_job_p99_ms"] <= 5,
    }
    res["bars_met"] = bars

    if args.json:
        print(json.dumps(res))
        return 0
    print(
        f"job queue vs raw nats-py, N={args.n}, {args.job} no-op, concurrency "
        f"{args.concurrency}, best of {args.rounds}; result actor: {res['result_actor']}"
    )
    for mode in ("enqueue_pipelined", "enqueue_concurrent", "enqueue_sequential", "processing"):
        print(
            f"  {mode:20s} ref {res[f'{mode}_ref_per_s']:>8,}/s   "
            f"actorq {res[f'{mode}_actorq_per_s']:>8,}/s   ratio {res[f'{mode}_ratio']:.2f}"
        )
    print(
        f"  processing async def {res['processing_async_actorq_per_s']:>8,}/s vs the same "
        f"reference   ratio {res['processing_async_ratio']:.2f}"
    )
    print(
        f"  processing signed    {res['processing_signed_per_s']:>8,}/s vs unsigned, same "
        f"run   ratio {res['processing_signed_ratio']:.2f}"
    )
    print(
        f"  queue actor CPU/job  unsigned {res['processing_cpu_us_per_job']} us, signed "
        f"{res['processing_signed_cpu_us_per_job']} us   ratio "
        f"{res['processing_signed_cpu_ratio']:.2f}"
    )
    print(f"  processing CPU (share of one core): {res['processing_cpu_share']}")
    if sync_rate is None:
        print(f"  sync enqueue         {res['sync_note']}")
    else:
        print(
            f"  sync enqueue         {res['sync_enqueue_per_s']:>8,}/s vs async sequential   "
            f"ratio {res['sync_enqueue_ratio']:.2f}"
        )
    print(
        f"  round trip           p50 {res['rtt_p50_ms']} ms (raw {res['rtt_raw_p50_ms']}, "
        f"ratio {res['rtt_p50_ratio']:.2f})   p99 {res['rtt_p99_ms']} ms (raw "
        f"{res['rtt_raw_p99_ms']}, ratio {res['rtt_p99_ratio']:.2f})"
    )
    if res["idle_periods"]:
        print(
            f"  first job after 1-3 s quiet ({res['idle_periods']} times): enqueue -> start "
            f"p50 {res['idle_first_job_p50_ms']} ms, p99 {res['idle_first_job_p99_ms']} ms "
            f"(enqueue returned -> start p99 {res['idle_pickup_p99_ms']} ms); "
            f"round trip p99 {res['idle_rtt_p99_ms']} ms"
        )
    print(
        f"  backlog {res['backlog']}: peak RSS {res['backlog_peak_rss_mb']} MB "
        f"(ready {res['backlog_ready_rss_mb']} MB), {res['backlog_processing_per_s']}/s"
    )
    print("  bars: " + ", ".join(f"{k} {'ok' if v else ('n/a' if v is None else 'MISSED')}"
                                 for k, v in bars.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
