"""Benchmark ``actorq up examples/config.toml``: wall time from start to the ready summary.

    python bench/up.py [--n 5] [--json]

Each run starts ``python -m actorq up examples/config.toml`` from the repository root
with a fresh data dir and a free port, times spawn to the summary's first line (the
whole tree ready: embedded nats-server, result and scheduler actors, two queue actor
processes), then stops it with SIGTERM and waits for it to exit. Prints the median as
``up_ready_s`` (bar: < 3 s on 2 cores), and the slowest run.

``measure_up_ready(n)`` is importable, for ``bench/actors.py``'s combined report.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = "actorq ready"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put(None)


def up_ready_once(timeout: float = 60.0) -> float:
    """Seconds from spawning ``actorq up`` to its ready line; stops it afterwards."""
    with tempfile.TemporaryDirectory(prefix="actorq-bench-up-") as data:
        env = {
            **os.environ,
            "ACTORQ_NATS_PORT": str(_free_port()),
            "ACTORQ_NATS_DATA_DIR": data,
            "ACTORQ_LOGGING_LEVEL": "WARNING",
        }
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "actorq", "up", "examples/config.toml"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        # Read in a thread so the wait is bounded without signals: this function may
        # run outside the main thread (bench/actors.py calls it).
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc, lines), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + timeout
            while (line := lines.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
                if line.startswith(READY):
                    return time.monotonic() - start
            raise RuntimeError(f"actorq up exited with {proc.wait()} before it was ready")
        except queue.Empty:
            raise RuntimeError(f"actorq up was not ready within {timeout}s") from None
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(90)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            reader.join(10)  # EOF once up and its children are gone
            if proc.stdout is not None:
                proc.stdout.close()


def measure_up_ready(n: int = 5) -> float:
    """Median over ``n`` runs of :func:`up_ready_once`, in seconds."""
    return statistics.median(up_ready_once() for _ in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="runs (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    runs = [up_ready_once() for _ in range(args.n)]
    figures = {
        "up_ready_s": round(statistics.median(runs), 3),
        "up_ready_max_s": round(max(runs), 3),
        "runs": args.n,
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"actorq up examples/config.toml, start -> ready summary, {args.n} runs")
    print(f"  up_ready_s     {figures['up_ready_s']:.3f}  (median; bar < 3 s)")
    print(f"  up_ready_max_s {figures['up_ready_max_s']:.3f}")


if __name__ == "__main__":
    main()
