"""What ``bench/chaos.py`` shares between its single-node and its cluster runs: ``actorq up``
in a subprocess with every pid it ever had, sending under fixed ids, settling, and the
tally of what survived (see ``chaos.py``'s docstring for the keys)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from actorq import SyncClient
from actorq.exceptions import ActorqError, JobTimeout
from actorq.wire.messages import JobRecord

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
READY = "actorq ready"
TERMINAL = {"succeeded", "failed", "cancelled", "dead"}
#: The poison kinds, in turn, and the final status each must reach.
POISON = {"oversize": "failed", "exits": "failed", "unimportable": "dead"}
_CONFIG = """\
namespace = "{namespace}"
sys_path = [{bench}]
imports = ["_chaos_jobs"]

{nats}
[[queues]]
name = "default"
processes = 2
concurrency = {concurrency}

[results]
# Below the oversize poison's 2 MiB: a bigger result would travel through the object store.
max_bytes = 1048576

[supervisor]
# A kill a second would exceed the default intensity (3 restarts in 10 s).
strategy = "one_for_one"
max_restarts = 100
within = 10.0

[logging]
level = "WARNING"
"""


def config_text(namespace: str, nats: str, concurrency: int) -> str:
    """The chaos runtime's config: one queue, 2 queue actor processes; ``nats`` is
    the ``[nats]`` section (and any other section the run needs)."""
    return _CONFIG.format(
        namespace=namespace,
        bench=json.dumps(str(BENCH)),
        nats=nats,
        concurrency=concurrency,
    )


ROLES = {
    "children:queue_actor": "queue",
    "children:result_actor": "results",
    "children:scheduler": "scheduler",
}


# A function the client can import and the workers cannot: cloudpickle sends it by
# reference, and the worker's import fails (dead letter "undecodable").
_CLIENT_ONLY = """
def unimportable(i, marker_dir):
    return i
"""


def client_only_function(tmp: Path) -> Any:
    """A job function this process can import and the workers cannot (a module in
    ``tmp`` put on this process's path only): its jobs are dead-lettered undecodable."""
    folder = tmp / "client_only"
    folder.mkdir()
    (folder / "_chaos_client_only.py").write_text(_CLIENT_ONLY)
    sys.path.insert(0, str(folder))
    import _chaos_client_only  # type: ignore[import-not-found]

    return _chaos_client_only.unimportable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


class Runtime:
    """``actorq up`` in a subprocess, and every pid it ever had below it."""

    def __init__(self, config: Path, stderr: Path, env: dict[str, str] | None = None) -> None:
        self._stderr = stderr.open("wb")
        self.stderr_path = stderr
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actorq", "up", str(config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
            env=None if env is None else {**os.environ, **env},
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
        """Live pids by role; a parked warm standby (same command line as its queue's
        actors, no NATS connection until activated) is ``standby``, not ``queue``."""
        roles: dict[str, list[int]] = {}
        for proc in self.children():
            with contextlib.suppress(psutil.Error):
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if proc.name() == "nats-server":
                    roles.setdefault("nats-server", []).append(proc.pid)
                    continue
                cmd = " ".join(proc.cmdline())
                for needle, role in ROLES.items():
                    if needle in cmd:
                        if role == "queue" and not proc.net_connections(kind="tcp"):
                            role = "standby"
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
        living = set(self.seen)
        while living and time.monotonic() < deadline:
            living = {p for p in living if alive(p)}
            time.sleep(0.1)
        return {p for p in living if alive(p)}

    def close(self) -> None:
        for pid in self.seen | {self.proc.pid}:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def send(client: SyncClient, job_id: str, fn: Any, args: tuple[Any, ...]) -> int:
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


def settle(client: SyncClient, ids: list[str], bound: float) -> dict[str, JobRecord | None]:
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


def runs(marker_dir: Path) -> Counter[int]:
    runs: Counter[int] = Counter()
    for log in marker_dir.glob("runs-*.log"):
        runs.update(int(line) for line in log.read_text().split())
    return runs


def final_entries(record: JobRecord) -> int:
    return sum(1 for change in record.history if change.status in TERMINAL)


def value(client: SyncClient, record: JobRecord) -> Any:
    try:
        return client.unwrap(record)
    except Exception as exc:
        return exc


def tally(
    kinds: Mapping[str, str],
    records: Mapping[str, JobRecord | None],
    values: Mapping[str, Any],
    ran: Counter[int],
    expected: Any,
) -> dict[str, Any]:
    """The survival figures of jobs ``chaos-<i>`` of ``kinds`` (``ok`` or a poison kind)."""
    figures: dict[str, Any] = {
        "n": len(kinds),
        "lost": 0,
        "stuck": 0,
        "wrong_results": 0,
        "duplicate_results": 0,
        "duplicate_runs": 0,
        "poison": 0,
        "poison_settled": 0,
        "poison_unsettled": [],
    }
    for job_id, kind in kinds.items():
        record = records.get(job_id)
        i = int(job_id.rsplit("-", 1)[1])
        if kind == "ok" and ran[i] > 1:
            figures["duplicate_runs"] += 1
        if record is None:
            figures["lost"] += 1
            continue
        if not record.done:
            figures["stuck"] += 1
            continue
        if final_entries(record) > 1:
            figures["duplicate_results"] += 1
        if kind == "ok":
            right = record.status == "succeeded" and values[job_id] == expected(i)
            figures["wrong_results"] += not right
        else:
            figures["poison"] += 1
            figures["poison_settled"] += record.status == POISON[kind]
            if record.status != POISON[kind]:
                error = record.error.type if record.error else None
                figures["poison_unsettled"].append([job_id, kind, record.status, error])
    return figures
