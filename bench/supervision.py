"""Benchmark supervision: restart latency and idle cost, of bare process children and
of real queue actors.

    python bench/supervision.py [--n 50] [--queue-n 20] [--kills 10] [--idle-seconds 10]
                                [--json]

Figures of the supervisors package (a child importing nothing heavy):

- ``restart_p50_ms`` / ``restart_p99_ms``: a crashed process child, from SIGKILL to the
  replacement reporting ready, over ``--n`` crashes (bar: p50 < 250 ms on 2 cores);
- ``python_start_ms``: a bare ``python -c pass`` start in the same run (the reference);
- ``idle_cpu_percent``: CPU of the supervising process with 100 task children and 8
  process children over ``--idle-seconds`` (bar: < 1 %); ``idle_cpu_standby_percent``:
  the same 8 children with ``standby=True``, the parked spare's CPU included.

Figures of real queue actors, on a real nats-server (started here), with the specs
``actorq up`` builds (:func:`actorq.runtime.up.build_children`: the result actor and
one queue supervisor, children through ``actorq.runtime.child``, importing trio,
nats-py, msgspec, cloudpickle and the job module):

- ``queue_actor_restart_p50_ms`` / ``_p99_ms`` (goal p50 <= 100, moonshot 50): the
  queue's only worker process is ``kill -9``ed; as soon as the supervisor has reaped
  it (the process is gone) one no-op job is enqueued; the figure is the time from
  the SIGKILL to that job's result being back at the client: the replacement
  started, connected, fetched and ran the job, and its outcome went through the
  result actor. Default config (``standby = true``: a warm spare takes over); over
  ``--queue-n`` kills, each once the spare is parked again; ``..._waited_ack_wait``
  counts the kills whose job still went to the dead process (nats-server, short of
  CPU, had not yet processed its closed socket; the job waits for ``ack_wait``).
  ``queue_actor_ready_p50_ms``
  is SIGKILL to the replacement's ready. ``queue_actor_restart_cold_p50_ms``: the
  same with ``standby = false`` (a fresh interpreter). ``..._ratio``: p50 over
  ``python_start_ms``;
- ``post_crash_job_delay_p50_ms`` / ``_p99_ms`` (goal p99 <= 1000): two worker
  processes; one is ``kill -9``ed; from its reap on, for one second, a job is
  enqueued every 20 ms; each job's delay is its enqueue to its result. Over
  ``--kills`` kills. ``jobs_at_kill_waited_ack_wait`` counts the jobs enqueued *at*
  each kill, before the reap (the process is being torn down, its socket still
  open, and the server may still hand it the job, which then waits for its lease,
  ``ack_wait``): out of ``jobs_at_kill``.

The crash loops use ``Backoff(reset_after=0)`` so that every crash counts as a first
crash and is restarted at once: the figure is the cost of the machinery. With the
default backoff, consecutive crashes of one child deliberately wait 0.1 s, 0.2 s, ...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psutil
import trio

from actorq.config.schema import loads_config
from actorq.jobs.client import Client, open_client
from actorq.nats import NatsServerProcess
from actorq.nats.options import ConnectOptions
from actorq.runtime.up import Secrets, build_children
from supervisors import (
    Backoff,
    ChildExited,
    ChildRestarted,
    ChildSpec,
    ProcessSpec,
    StandbyParked,
    Supervisor,
    SupervisorEvent,
    SupervisorSpec,
    TaskSpec,
    open_supervisor,
)

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import _jobs  # noqa: E402

Events = trio.MemoryReceiveChannel[SupervisorEvent]

# The process child: a module written to a temporary directory, importing nothing heavy.
_CHILD = """
import threading


def main(ready):
    ready()
    threading.Event().wait()
"""


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def python_start_ms(runs: int = 20) -> float:
    """Median wall time of ``python -c pass``."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def restart_latencies_ms(n: int, child_dir: str) -> list[float]:
    """Kill the only child ``n`` times; time each death-to-ready."""
    spec = ProcessSpec(id="crasher", target="bench_child:main", env={"PYTHONPATH": child_dir})
    latencies = []
    async with open_supervisor(
        [spec], max_restarts=n + 1, within=3600, backoff=Backoff(reset_after=0.0)
    ) as sup:
        with sup.subscribe() as events:
            for _ in range(n):
                pid = sup.snapshot().find("crasher").pid
                assert pid is not None
                began = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                with trio.fail_after(30):
                    async for event in events:
                        if isinstance(event, ChildRestarted):
                            break
                latencies.append((time.perf_counter() - began) * 1000)
    return latencies


async def _idle_task(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    await trio.sleep_forever()


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


async def idle_cpu_percent(seconds: float, child_dir: str, standby: bool = False) -> float:
    """CPU used by this process (and the parked spare, with ``standby``) while a tree
    of 100 tasks + 8 processes sits idle."""
    children: list[ChildSpec] = [TaskSpec(id=f"task{i}", target=_idle_task) for i in range(100)]
    children += [
        ProcessSpec(
            id=f"proc{i}", target="bench_child:main", env={"PYTHONPATH": child_dir},
            standby=standby,
        )
        for i in range(8)
    ]  # fmt: skip
    watched = [psutil.Process()]
    async with open_supervisor(children) as sup, sup.subscribe() as events:
        if standby:
            watched += [psutil.Process(await _parked(sup, events))]
        await trio.sleep(0.5)  # let start-up work settle before measuring
        before = _cpu_seconds(watched)
        began = time.perf_counter()
        await trio.sleep(seconds)
        used = _cpu_seconds(watched) - before
        elapsed = time.perf_counter() - began
        restarts = sum(node.restarts for node in sup.snapshot().walk())
        if restarts:
            raise RuntimeError(f"{restarts} children restarted while idle; the tree is not idle")
    return 100 * used / elapsed


async def measure(n: int, idle_seconds: float, child_dir: str) -> tuple[list[float], float, float]:
    """The in-process measurements, one after the other."""
    latencies = await restart_latencies_ms(n, child_dir)
    idle = await idle_cpu_percent(idle_seconds, child_dir)
    idle_standby = await idle_cpu_percent(idle_seconds, child_dir, standby=True)
    return latencies, idle, idle_standby


# ---- real queue actors --------------------------------------------------------------


def up_children(url: str, namespace: str, processes: int, standby: bool) -> list[ChildSpec]:
    """The result actor and one queue's supervisor, as ``actorq up`` builds them; the
    queue's backoff restarts every crash at once, and no intensity limit is reached."""
    config = loads_config(
        f"""
namespace = "{namespace}"
imports = ["_jobs"]
sys_path = ["{BENCH_DIR}"]
[nats]
url = "{url}"
[scheduler]
enabled = false
[logging]
level = "WARNING"
[[queues]]
name = "default"
processes = {processes}
concurrency = 4
standby = {"true" if standby else "false"}
"""
    )
    children = build_children(config, [url], Secrets(connect=ConnectOptions()))
    return [
        msgspec.structs.replace(
            c, backoff=Backoff(reset_after=0.0), max_restarts=10**6, within=3600.0
        )
        if isinstance(c, SupervisorSpec)
        else c
        for c in children
    ]


async def _until(events: Events, wanted: Callable[[SupervisorEvent], bool]) -> SupervisorEvent:
    async for event in events:
        if wanted(event):
            return event
    raise RuntimeError("the supervision tree stopped")


async def _parked(sup: Supervisor, events: Events) -> int:
    """The pid of a parked warm standby anywhere in ``sup``'s tree, once there is one."""
    for node in sup.snapshot().walk():
        if node.standby_pids:
            return node.standby_pids[0]
    event = await _until(events, lambda e: isinstance(e, StandbyParked))
    assert isinstance(event, StandbyParked)
    return event.pid


async def _kill_and_reap(sup: Supervisor, events: Events, child: str) -> tuple[float, float]:
    """SIGKILL queue process ``child``; returns (perf_counter, time.time()) at the kill,
    once the supervisor has reaped it."""
    pid = sup.snapshot().find(f"queue-default/{child}").pid
    assert pid is not None
    began, wall = time.perf_counter(), time.time()
    os.kill(pid, signal.SIGKILL)
    await _until(events, lambda e: isinstance(e, ChildExited) and e.pid == pid)
    return began, wall


async def queue_restarts_ms(url: str, n: int, standby: bool) -> tuple[list[float], list[float]]:
    """Kill the only queue actor ``n`` times: SIGKILL to a new job's result, and to ready."""
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    children = up_children(url, namespace, 1, standby)
    totals, readies = [], []
    async with (
        open_client(url, namespace=namespace) as client,
        open_supervisor(children, max_restarts=10**6, within=3600.0) as sup,
    ):
        await (await client.enqueue(_jobs.noop)).result(timeout=60)
        with sup.subscribe() as events:
            for _ in range(n):
                if standby:
                    await _parked(sup, events)
                await trio.sleep(0.2)  # a crash comes at a quiet moment, not mid-start
                began, wall = await _kill_and_reap(sup, events, "default-0")
                job = await client.enqueue(_jobs.noop)
                await job.result(timeout=60)
                totals.append((time.perf_counter() - began) * 1000)
                restarted = await _until(events, lambda e: isinstance(e, ChildRestarted))
                readies.append((restarted.at - wall) * 1000)
                if totals[-1] > 1000:  # say why: which process had it, how many tries
                    record = await job.record()
                    assert record is not None
                    print(
                        f"slow restart ({'warm' if standby else 'cold'}): {totals[-1]:.0f} ms, "
                        f"job attempts {record.attempts}, ran on {record.worker}, "
                        f"replacement pid {restarted.pid}, ready after {readies[-1]:.0f} ms",
                        file=sys.stderr,
                    )
    return totals, readies


async def _timed_job(client: Client, out: list[float]) -> None:
    began = time.perf_counter()
    job = await client.enqueue(_jobs.noop)
    await job.result(timeout=60)
    out.append((time.perf_counter() - began) * 1000)


async def post_crash_delays_ms(url: str, kills: int) -> tuple[list[float], list[float]]:
    """Jobs sent in the second after a worker's death (from its reap), and at the kill."""
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    children = up_children(url, namespace, 2, standby=True)
    after_reap: list[float] = []
    at_kill: list[float] = []
    async with (
        open_client(url, namespace=namespace) as client,
        open_supervisor(children, max_restarts=10**6, within=3600.0) as sup,
        trio.open_nursery() as late,
    ):
        await (await client.enqueue(_jobs.noop)).result(timeout=60)
        with sup.subscribe() as events:
            for i in range(kills):
                await _parked(sup, events)
                await trio.sleep(0.3)
                pid = sup.snapshot().find(f"queue-default/default-{i % 2}").pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                # Sent while the process is being torn down: not awaited here (it may
                # wait a whole ack_wait), collected at the end.
                late.start_soon(_timed_job, client, at_kill)
                await _until(events, lambda e, pid=pid: isinstance(e, ChildExited) and e.pid == pid)
                reaped = time.perf_counter()
                async with trio.open_nursery() as jobs:
                    while time.perf_counter() - reaped < 1.0:
                        jobs.start_soon(_timed_job, client, after_reap)
                        await trio.sleep(0.02)
    return after_reap, at_kill


async def measure_queue(url: str, n: int, kills: int) -> dict[str, Any]:
    """The queue actor figures (see the module docstring)."""
    warm, readies = await queue_restarts_ms(url, n, standby=True)
    cold, cold_readies = await queue_restarts_ms(url, max(3, n // 2), standby=False)
    after_reap, at_kill = await post_crash_delays_ms(url, kills)
    return {
        "queue_actor_restart_p50_ms": round(percentile(warm, 50), 1),
        "queue_actor_restart_p99_ms": round(percentile(warm, 99), 1),
        "queue_actor_ready_p50_ms": round(percentile(readies, 50), 1),
        # Kills whose job, sent after the reap, still went to the dead process (see
        # docs/nats.md: nats-server had not processed its closed socket yet).
        "queue_actor_restarts_waited_ack_wait": sum(1 for t in warm if t > 1000),
        "queue_actor_restart_cold_p50_ms": round(percentile(cold, 50), 1),
        "queue_actor_ready_cold_p50_ms": round(percentile(cold_readies, 50), 1),
        "post_crash_job_delay_p50_ms": round(percentile(after_reap, 50), 1),
        "post_crash_job_delay_p99_ms": round(percentile(after_reap, 99), 1),
        "post_crash_jobs": len(after_reap),
        "jobs_at_kill": len(at_kill),
        "jobs_at_kill_waited_ack_wait": sum(1 for d in at_kill if d > 1000),
    }


def main() -> int:
    """Run the benchmark and print the figures (or one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="number of crashes (default 50)")
    parser.add_argument("--queue-n", type=int, default=20, help="queue actor kills (20)")
    parser.add_argument("--kills", type=int, default=10, help="post-crash kills (10)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle window (10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()

    start_ms = python_start_ms()
    with tempfile.TemporaryDirectory() as child_dir:
        with open(os.path.join(child_dir, "bench_child.py"), "w") as f:
            f.write(_CHILD)
        latencies, idle, idle_standby = trio.run(
            measure, options.n, options.idle_seconds, child_dir
        )
    logging.getLogger("actorq").setLevel(logging.WARNING)
    with NatsServerProcess() as server:
        queue = trio.run(measure_queue, server.url, options.queue_n, options.kills)

    result: dict[str, Any] = {
        "restart_p50_ms": round(percentile(latencies, 50), 2),
        "restart_p99_ms": round(percentile(latencies, 99), 2),
        "python_start_ms": round(start_ms, 2),
        "idle_cpu_percent": round(idle, 3),
        "idle_cpu_standby_percent": round(idle_standby, 3),
        **queue,
        "queue_actor_restart_ratio": round(queue["queue_actor_restart_p50_ms"] / start_ms, 2),
        "queue_actor_restart_cold_ratio": round(
            queue["queue_actor_restart_cold_p50_ms"] / start_ms, 2
        ),
    }
    if options.json:
        print(json.dumps(result))
        return 0
    p50 = result["restart_p50_ms"]
    print(f"restart latency over {options.n} crashes (SIGKILL -> replacement ready):")
    print(f"  p50 {p50:.1f} ms   p99 {result['restart_p99_ms']:.1f} ms   (bar: p50 < 250 ms)")
    print(f"bare `python -c pass` start, same run: {start_ms:.1f} ms")
    print(f"  restart p50 / bare start = {p50 / start_ms:.2f}x")
    print(f"idle CPU, 100 task + 8 process children, {options.idle_seconds:g} s:")
    print(f"  {idle:.3f} %   (bar: < 1 %); with standby=True and its spare: {idle_standby:.3f} %")
    r = result
    print(
        "a real queue actor kill -9ed, until a job sent after its reap has its result "
        f"({options.queue_n} kills):"
    )
    print(
        f"  warm standby: p50 {r['queue_actor_restart_p50_ms']:.1f} ms  p99 "
        f"{r['queue_actor_restart_p99_ms']:.1f} ms  (goal p50 <= 100), "
        f"{r['queue_actor_restarts_waited_ack_wait']} waited for ack_wait; "
        f"= {r['queue_actor_restart_ratio']:.2f}x a bare python start; "
        f"ready after {r['queue_actor_ready_p50_ms']:.1f} ms"
    )
    print(
        f"  cold (standby = false): p50 {r['queue_actor_restart_cold_p50_ms']:.1f} ms "
        f"= {r['queue_actor_restart_cold_ratio']:.2f}x; ready after "
        f"{r['queue_actor_ready_cold_p50_ms']:.1f} ms"
    )
    print(f"jobs sent in the second after a worker of two died ({options.kills} kills):")
    print(
        f"  delay p50 {r['post_crash_job_delay_p50_ms']:.1f} ms  p99 "
        f"{r['post_crash_job_delay_p99_ms']:.1f} ms over {r['post_crash_jobs']} jobs "
        "(goal p99 <= 1000)"
    )
    print(
        f"  sent at the kill, before the reap: {r['jobs_at_kill_waited_ack_wait']} of "
        f"{r['jobs_at_kill']} waited for ack_wait"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
