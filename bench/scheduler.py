"""The scheduler's speed bars (issue 6): memory, lag and CPU per fired job vs schedules stored.

Usage::

    python bench/scheduler.py                 # 1,000 vs 100,000 stored schedules
    python bench/scheduler.py --n 20000 --json

For each size S (``--small`` and ``--n``), on a fresh namespace of one embedded
nats-server: one scheduler actor *process* (``actorq.runtime.children.scheduler`` in a fresh
interpreter) is started and takes the lease; then S one-shot schedules
(``every=3600, start_at=<due>, max_runs=1``) are declared through the public client
API (``client.schedule``, ``--tasks`` at a time): S - F of them due 15 to 25 minutes
ahead (pending timers in the server all along), and F = ``--fires``
due over the ``--window`` seconds just ahead, in whole seconds. The bench reads the
jobs the scheduler enqueues from the queue's consumer until all F arrived.

Figures:

* ``scheduler_rss_mb``: peak RSS of the scheduler process (sampled every 50 ms)
  while S schedules are stored and F fire, for S = ``--n``; bar < 150 MB.
* ``lag_p99_s``: p99 over the F jobs of (the envelope's ``enqueued_at``, stamped by
  the scheduler as it publishes the job) - (its due time, carried in the job id
  ``<name>-<due>``), for S = ``--n``; bar < 1 s.
* ``cpu_per_job_ratio``: the scheduler process's CPU seconds (user + system) from
  just before the first due time until the F-th job arrived, divided by F, for
  S = ``--n`` over the same for S = ``--small``; bar: within 2x (0.5 .. 2).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import psutil
import trio

from actorq.jobs.client import Client, open_client
from actorq.jobs.scheduler_actor import SchedulerSettings
from actorq.nats import NatsServerProcess
from actorq.wire.messages import decode_envelope

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import _jobs  # noqa: E402

QUEUE = "bq"
_RUNNER = (
    "import sys, time\n"
    "from actorq.runtime.children import scheduler\n"
    "scheduler(lambda: print('READY', time.time(), flush=True), sys.argv[1])\n"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class SchedulerProcess:
    """The scheduler actor in a fresh interpreter; ready once it printed READY."""

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings
        self.proc: trio.Process | None = None
        self.peak_rss = 0

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
                    raise RuntimeError("scheduler process exited before it was ready")
                buf += chunk

    @property
    def ps(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    async def sample_rss(self) -> None:
        ps = self.ps
        while True:
            self.peak_rss = max(self.peak_rss, ps.memory_info().rss)
            await trio.sleep(0.05)

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


async def declare(client: Client, names_dues: list[tuple[str, float]], tasks: int) -> None:
    """Declare one-shot schedules, ``tasks`` at a time."""
    it = iter(names_dues)

    async def worker() -> None:
        for name, due in it:
            await client.schedule(
                name, _jobs.noop, every=3600, start_at=due, max_runs=1, queue=QUEUE
            )

    async with trio.open_nursery() as nursery:
        for _ in range(min(tasks, len(names_dues))):
            nursery.start_soon(worker)


async def run_size(url: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    namespace = f"bsched{uuid.uuid4().hex[:8]}"
    fires = min(args.fires, size)
    out: dict[str, Any] = {"stored": size, "fired": fires}
    async with open_client(url, namespace=namespace) as client:
        streams = client.streams
        await streams.provision_queue(client.conn, QUEUE)
        consumer = await client.conn.pull_consumer(
            streams.jobs_stream, streams.consumer_name(QUEUE)
        )
        sched = SchedulerProcess(
            SchedulerSettings(url=[url], namespace=namespace, lease_ttl=5.0, name="bench")
        )
        await sched.start()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sched.sample_rss)
                # The ones that stay pending: due 15 to 25 minutes ahead.
                far_start = time.time() + 900
                far = [
                    (f"far{i}", math.ceil(far_start + i * 600 / size)) for i in range(size - fires)
                ]
                t0 = time.perf_counter()
                await declare(client, far, args.tasks)
                # The ones measured: due over the window just ahead.
                first_due = math.ceil(time.time()) + 3
                near = [
                    (f"near{i}", first_due + (i * args.window) // fires) for i in range(fires)
                ]
                await declare(client, near, args.tasks)
                out["declare_per_s"] = round(size / (time.perf_counter() - t0))
                await trio.sleep(max(0.0, first_due - 0.5 - time.time()))
                cpu0 = sched.cpu()
                lags: list[float] = []
                while len(lags) < fires:
                    msgs = await consumer.fetch(256, expires=1.0)
                    for msg in msgs:
                        env = decode_envelope(msg.data)
                        due = float(env.id.rsplit("-", 1)[1])
                        lags.append(env.enqueued_at - due)
                    await consumer.ack_many(msgs)
                cpu = sched.cpu() - cpu0
                nursery.cancel_scope.cancel()
        finally:
            await sched.stop()
        out["rss_mb"] = round(sched.peak_rss / 1e6, 1)
        out["lag_p50_s"] = round(pct(lags, 0.5), 3)
        out["lag_p99_s"] = round(pct(lags, 0.99), 3)
        out["lag_max_s"] = round(max(lags), 3)
        out["cpu_s"] = round(cpu, 3)
        out["cpu_per_job_ms"] = round(cpu / fires * 1000, 4)
        for name in (streams.jobs_stream, streams.outcomes_stream, streams.dead_stream):
            await client.conn.jsm("delete_stream", name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000, help="schedules stored (large case)")
    parser.add_argument("--small", type=int, default=1_000, help="schedules stored (small case)")
    parser.add_argument("--fires", type=int, default=1_000, help="schedules that fire, measured")
    parser.add_argument("--window", type=int, default=10, help="seconds the fires spread over")
    parser.add_argument("--tasks", type=int, default=256, help="concurrent declarations")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    with NatsServerProcess() as server:
        small = trio.run(run_size, server.url, args.small, args)
        large = trio.run(run_size, server.url, args.n, args)
    ratio = large["cpu_per_job_ms"] / small["cpu_per_job_ms"] if small["cpu_per_job_ms"] else None
    res: dict[str, Any] = {
        "n": args.n,
        "small": args.small,
        "fires": args.fires,
        "window_s": args.window,
        "scheduler_rss_mb": large["rss_mb"],
        "lag_p99_s": large["lag_p99_s"],
        "cpu_per_job_ratio": None if ratio is None else round(ratio, 3),
        "small_case": small,
        "large_case": large,
    }
    bars = {
        "scheduler_rss_mb": res["scheduler_rss_mb"] < 150,
        "lag_p99_s": res["lag_p99_s"] < 1.0,
        "cpu_per_job_ratio": ratio is not None and 0.5 <= ratio <= 2.0,
    }
    res["bars_met"] = bars
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"scheduler: {args.fires} fires over {args.window}s, {args.small:,} vs {args.n:,} stored")
    for label, case in (("small", small), ("large", large)):
        print(
            f"  {label:5s} stored {case['stored']:>8,}  declare {case['declare_per_s']:>6,}/s  "
            f"RSS {case['rss_mb']:>6} MB  lag p50 {case['lag_p50_s']} s  p99 {case['lag_p99_s']} s"
            f"  max {case['lag_max_s']} s  CPU/job {case['cpu_per_job_ms']} ms"
        )
    print(f"  cpu_per_job_ratio {res['cpu_per_job_ratio']}")
    print("  bars: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in bars.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
