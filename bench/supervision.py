"""Benchmark the supervisors package: restart latency and idle cost.

    python bench/supervision.py [--n 50] [--idle-seconds 10] [--json]

Figures:

- restart latency of a crashed process child, from SIGKILL to the replacement reporting
  ready, p50 and p99 over ``--n`` crashes (bar: p50 < 250 ms on 2 cores);
- a bare ``python -c pass`` start in the same run, and the ratio of the two;
- idle CPU of the supervising process with 100 task children and 8 process children,
  measured with psutil over ``--idle-seconds`` (bar: < 1 %).

The crash loop uses ``Backoff(reset_after=0)`` so that every crash counts as a first
crash and is restarted at once: the figure is the cost of the machinery. With the
default backoff, consecutive crashes of one child deliberately wait 0.1 s, 0.2 s, ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
import trio

from supervisors import (
    Backoff,
    ChildRestarted,
    ProcessSpec,
    TaskSpec,
    open_supervisor,
)

# The process child: a module written to a temporary directory, importing nothing heavy.
_CHILD = '''
import threading


def main(ready):
    ready()
    threading.Event().wait()
'''


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


async def idle_cpu_percent(seconds: float, child_dir: str) -> float:
    """CPU used by this process while a tree of 100 tasks + 8 processes sits idle."""
    children = [TaskSpec(id=f"task{i}", target=_idle_task) for i in range(100)]
    children += [
        ProcessSpec(id=f"proc{i}", target="bench_child:main", env={"PYTHONPATH": child_dir})
        for i in range(8)
    ]
    me = psutil.Process()
    async with open_supervisor(children) as sup:
        await trio.sleep(0.5)  # let start-up work settle before measuring
        before = me.cpu_times()
        began = time.perf_counter()
        await trio.sleep(seconds)
        after = me.cpu_times()
        elapsed = time.perf_counter() - began
        restarts = sum(node.restarts for node in sup.snapshot().walk())
        if restarts:
            raise RuntimeError(f"{restarts} children restarted while idle; the tree is not idle")
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / elapsed


async def measure(n: int, idle_seconds: float, child_dir: str) -> tuple[list[float], float]:
    """Both in-process measurements, one after the other."""
    latencies = await restart_latencies_ms(n, child_dir)
    idle = await idle_cpu_percent(idle_seconds, child_dir)
    return latencies, idle


def main() -> int:
    """Run the benchmark and print the figures (or one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="number of crashes (default 50)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle window (10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()

    start_ms = python_start_ms()
    with tempfile.TemporaryDirectory() as child_dir:
        with open(os.path.join(child_dir, "bench_child.py"), "w") as f:
            f.write(_CHILD)
        latencies, idle = trio.run(measure, options.n, options.idle_seconds, child_dir)

    result = {
        "restart_p50_ms": round(percentile(latencies, 50), 2),
        "restart_p99_ms": round(percentile(latencies, 99), 2),
        "python_start_ms": round(start_ms, 2),
        "idle_cpu_percent": round(idle, 3),
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
    print(f"  {idle:.3f} %   (bar: < 1 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
