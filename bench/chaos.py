"""Chaos: jobs through ``actorq up`` while its processes are ``kill -9``ed; what survives.

    python bench/chaos.py [--n 10000] [--kills 20] [--json]

Starts ``actorq up`` (embedded nats-server, the result and scheduler actors, one queue
with 2 queue actor processes) from a config written to a temporary dir. Sends ``--n``
jobs one at a time through the sync helper (:class:`actorq.SyncClient`); 1 % of them
are poison, in turn: a result over the payload limit, a ``SystemExit``, a function the
workers cannot import. Meanwhile a random runtime process (a queue actor, the result
actor, the scheduler) is ``kill -9``ed every second, ``--kills`` times, and halfway
through the embedded nats-server is ``kill -9``ed once (``actorq up`` brings it back).
Then every job is waited for (bounded by ``--settle`` seconds), ``actorq up`` gets
SIGTERM, and the figures are printed:

| key | meaning | bar |
|---|---|---|
| ``lost`` | jobs with no record at all once settled | 0 |
| ``stuck`` | jobs whose record is not final after the settle bound | 0 |
| ``wrong_results`` | ordinary jobs not ``succeeded`` with their own value | 0 |
| ``duplicate_results`` | jobs whose record took a final status twice (two results) | 0 |
| ``duplicate_runs`` | ordinary jobs that *ran* twice (informational, see below) | — |
| ``poison_settled`` | poison jobs in their right final state (of ``poison``) | all |
| ``orphans`` | processes of the tree alive after ``actorq up`` exited | 0 |
| ``exit_code`` | of ``actorq up`` after SIGTERM | 0 |
| ``kills`` | runtime processes killed (by role in ``kills_by_role``) | ``--kills`` |
| ``nats_kills``, ``nats_back_s`` | nats-server kills; seconds until it accepted again | 1, < 2 |
| ``send_retries`` | sends the sync helper had to repeat (same job id) while NATS was away | — |
| ``wall_s`` | the whole run, start of ``up`` to its exit | — |

A duplicate *run* is counted from per-process logs the job appends its number to; a
duplicate *result* from the record's status history. Execution is at least once: a
worker killed after running a job and before its outcome is stored leaves the job to
be redelivered and run again, so ``duplicate_runs`` may be above 0; its record still
takes one final status and one result, so ``duplicate_results`` must be 0. The right
final states of the poison kinds: ``failed`` (oversize result), ``failed``
(``SystemExit``), ``dead`` (function the workers cannot import). The supervisor's restart
intensity is raised in the config (a kill a second would exceed the default 3 in 10 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
READY = "actorq ready"

import _chaos_jobs  # noqa: E402

from actorq import SyncClient  # noqa: E402
from actorq.exceptions import ActorqError, JobTimeout  # noqa: E402
from actorq.nats.local_credentials import ENV_CREDENTIALS_FILE, credentials_path  # noqa: E402
from actorq.wire.messages import JobRecord  # noqa: E402

#: The poison kinds, in turn, and the final status each must reach.
POISON = {"oversize": "failed", "exits": "failed", "unimportable": "dead"}
_TERMINAL = {"succeeded", "failed", "cancelled", "dead"}
_ROLES = {
    "children:queue_actor": "queue",
    "children:result_actor": "results",
    "children:scheduler": "scheduler",
}

_CONFIG = """\
namespace = "chaos"
sys_path = [{bench}]
imports = ["_chaos_jobs"]

[nats]
port = {port}
data_dir = {data}

[[queues]]
name = "default"
processes = 2
concurrency = {concurrency}

[supervisor]
strategy = "one_for_one"
max_restarts = 100
within = 10.0

[logging]
level = "WARNING"
"""

# A function the client can import and the workers cannot: cloudpickle sends it by
# reference, and the worker's import fails (dead letter "undecodable").
_CLIENT_ONLY = '''
def unimportable(i, marker_dir):
    return i
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


class Runtime:
    """``actorq up`` in a subprocess, and every pid it ever had below it."""

    def __init__(self, config: Path, stderr: Path) -> None:
        self._stderr = stderr.open("wb")
        self.stderr_path = stderr
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actorq", "up", str(config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.url = ""
        self.seen: set[int] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError(f"actorq up exited ({self.proc.wait()}):\n{self.stderr()}")
            if line.startswith(READY):
                self.url = next(w for w in line.split() if w.startswith("nats://")).rstrip(",")
            if line.startswith("SIGINT/SIGTERM"):
                self.children()
                return

    def children(self) -> list[psutil.Process]:
        """The live processes below ``up`` (remembered for the orphan count)."""
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        with self._lock:
            self.seen.update(p.pid for p in found)
        return found

    def by_role(self) -> dict[str, list[int]]:
        roles: dict[str, list[int]] = {}
        for proc in self.children():
            with contextlib.suppress(psutil.Error):
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if proc.name() == "nats-server":
                    roles.setdefault("nats-server", []).append(proc.pid)
                    continue
                cmd = " ".join(proc.cmdline())
                for needle, role in _ROLES.items():
                    if needle in cmd:
                        roles.setdefault(role, []).append(proc.pid)
        return roles

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 120.0) -> int | None:
        """SIGTERM, bounded wait; its exit code (``None``: had to be killed)."""
        self.children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def orphans(self, grace: float = 10.0) -> set[int]:
        """Pids of the tree still alive (not zombies) ``grace`` s after ``up`` exited."""
        deadline = time.monotonic() + grace
        alive = set(self.seen)
        while alive and time.monotonic() < deadline:
            alive = {p for p in alive if _alive(p)}
            time.sleep(0.1)
        return {p for p in alive if _alive(p)}

    def close(self) -> None:
        for pid in self.seen | {self.proc.pid}:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Killer(threading.Thread):
    """``kill -9`` a random runtime process every ``every`` s, ``kills`` times; the
    nats-server once, halfway."""

    def __init__(self, runtime: Runtime, kills: int, port: int, seed: int, every: float) -> None:
        super().__init__(daemon=True)
        self.runtime = runtime
        self.kills = kills
        self.port = port
        self.every = every
        self.random = random.Random(seed)
        self.by_role: Counter[str] = Counter()
        self.nats_kills = 0
        self.nats_back_s: float | None = None
        self.stop = threading.Event()

    def _kill_nats(self) -> None:
        pids = self.runtime.by_role().get("nats-server", [])
        if not pids:
            return
        os.kill(pids[0], signal.SIGKILL)
        killed = time.monotonic()
        self.nats_kills += 1
        while _alive(pids[0]) or not _accepts(self.port):
            if time.monotonic() - killed > 30 or self.stop.is_set():
                return
            time.sleep(0.02)
        self.nats_back_s = round(time.monotonic() - killed, 3)

    def run(self) -> None:
        done = 0
        while done < self.kills and not self.stop.wait(self.every):
            if done == self.kills // 2 and self.nats_kills == 0:
                self._kill_nats()
            roles = self.runtime.by_role()
            victims = [(r, p) for r in ("queue", "results", "scheduler") for p in roles.get(r, [])]
            if not victims:
                continue  # all being restarted right now
            role, pid = self.random.choice(victims)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                self.by_role[role] += 1
                done += 1


def _send(client: SyncClient, job_id: str, fn: Any, args: tuple[Any, ...]) -> int:
    """Enqueue under a fixed id, repeating (same id: never twice) while NATS is away;
    returns the number of repeats."""
    deadline = time.monotonic() + 120
    repeats = 0
    while True:
        try:
            client.options(job_id=job_id).enqueue(fn, *args)
            return repeats
        except ActorqError:
            if time.monotonic() > deadline:
                raise
            repeats += 1
            time.sleep(0.05)


def _settle(client: SyncClient, ids: list[str], bound: float) -> dict[str, JobRecord | None]:
    """Wait (push-woken, bounded in all by ``bound`` s) for every job's final record."""
    deadline = time.monotonic() + bound
    records: dict[str, JobRecord | None] = {}
    for job_id in ids:
        began = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            try:
                records[job_id] = client.wait(job_id, timeout=max(0.05, left))
                break
            except JobTimeout:
                break
            except ActorqError:
                if left <= 0:
                    break
                time.sleep(0.1)
        if job_id not in records:
            with contextlib.suppress(ActorqError):
                records[job_id] = client.get_record(job_id)
        waited = time.monotonic() - began
        if waited > 5:
            SLOW_WAITS.append((job_id, round(waited, 2)))
    return records


#: Settle waits over 5 s: (job id, seconds), for the report.
SLOW_WAITS: list[tuple[str, float]] = []


def _runs(marker_dir: Path) -> Counter[int]:
    runs: Counter[int] = Counter()
    for log in marker_dir.glob("runs-*.log"):
        runs.update(int(line) for line in log.read_text().split())
    return runs


def _final_entries(record: JobRecord) -> int:
    return sum(1 for change in record.history if change.status in _TERMINAL)


def run(
    n: int, kills: int, job_ms: float, concurrency: int, settle: float, seed: int
) -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="actorq-chaos-") as tmp_name:
        tmp = Path(tmp_name)
        port = _free_port()
        data = tmp / "nats"
        marker = tmp / "runs"
        marker.mkdir()
        config = tmp / "chaos.toml"
        config.write_text(
            _CONFIG.format(
                bench=json.dumps(str(BENCH)),
                port=port,
                data=json.dumps(str(data)),
                concurrency=concurrency,
            )
        )
        client_only = tmp / "client_only"
        client_only.mkdir()
        (client_only / "_chaos_client_only.py").write_text(_CLIENT_ONLY)
        sys.path.insert(0, str(client_only))
        import _chaos_client_only  # type: ignore[import-not-found]

        os.environ[ENV_CREDENTIALS_FILE] = str(credentials_path(data))
        runtime = Runtime(config, tmp / "up.stderr")
        try:
            runtime.ready()
            kinds: dict[str, str] = {}
            poison_fns = {
                "oversize": _chaos_jobs.oversize,
                "exits": _chaos_jobs.exits,
                "unimportable": _chaos_client_only.unimportable,
            }
            killer = Killer(runtime, kills, port, seed, every=1.0)
            send_retries = 0
            with SyncClient(runtime.url, namespace="chaos") as client:
                killer.start()
                send_started = time.monotonic()
                for i in range(n):
                    job_id = f"chaos-{i}"
                    if i % 100 == 50:
                        kind = list(POISON)[(i // 100) % len(POISON)]
                        args: tuple[Any, ...] = (i, str(marker))
                        fn = poison_fns[kind]
                    else:
                        kind, fn, args = "ok", _chaos_jobs.work, (i, str(marker), job_ms)
                    kinds[job_id] = kind
                    send_retries += _send(client, job_id, fn, args)
                send_s = time.monotonic() - send_started
                killer.join(kills * 1.0 + 120)
                killer.stop.set()
                settle_started = time.monotonic()
                records = _settle(client, list(kinds), settle)
                settle_s = time.monotonic() - settle_started
                values = {
                    job_id: _value(client, record)
                    for job_id, record in records.items()
                    if record is not None and record.status == "succeeded"
                }
            exit_code = runtime.stop()
            orphans = runtime.orphans()
            runs = _runs(marker)
        finally:
            runtime.close()
            sys.path.remove(str(client_only))
    figures: dict[str, Any] = {
        "n": n,
        "lost": 0,
        "stuck": 0,
        "wrong_results": 0,
        "duplicate_results": 0,
        "duplicate_runs": 0,
        "poison": 0,
        "poison_settled": 0,
    }
    for job_id, kind in kinds.items():
        record = records.get(job_id)
        i = int(job_id.rsplit("-", 1)[1])
        if kind == "ok" and runs[i] > 1:
            figures["duplicate_runs"] += 1
        if record is None:
            figures["lost"] += 1
            continue
        if not record.done:
            figures["stuck"] += 1
            continue
        if _final_entries(record) > 1:
            figures["duplicate_results"] += 1
        if kind == "ok":
            right = record.status == "succeeded" and values[job_id] == _chaos_jobs.expected(i)
            figures["wrong_results"] += not right
        else:
            figures["poison"] += 1
            figures["poison_settled"] += record.status == POISON[kind]
    figures.update(
        orphans=len(orphans),
        exit_code=exit_code,
        kills=sum(killer.by_role.values()),
        kills_by_role=dict(killer.by_role),
        nats_kills=killer.nats_kills,
        nats_back_s=killer.nats_back_s,
        send_retries=send_retries,
        send_s=round(send_s, 2),
        settle_s=round(settle_s, 2),
        slow_waits=SLOW_WAITS[:10],
        wall_s=round(time.monotonic() - started, 2),
    )
    return figures


def _value(client: SyncClient, record: JobRecord) -> Any:
    try:
        return client.unwrap(record)
    except Exception as exc:
        return exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="jobs (default 10000)")
    parser.add_argument("--kills", type=int, default=20, help="runtime kills, 1 a second")
    parser.add_argument("--job-ms", type=float, default=20.0, help="each job's own time")
    parser.add_argument("--concurrency", type=int, default=10, help="per queue actor")
    parser.add_argument("--settle", type=float, default=300.0, help="bound on the wait")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = run(args.n, args.kills, args.job_ms, args.concurrency, args.settle, args.seed)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"  {key:<18} {value}")


if __name__ == "__main__":
    main()
