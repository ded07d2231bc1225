"""The embedded nats-server is a supervised child of `actorq up`: `kill -9` of it is
repaired within 2 s on the same port and data dir; jobs sent before and after complete,
heartbeats go on; a server that cannot come back ends `up` non-zero with the reason."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from actorq import SyncClient
from actorq.cli.main import RET_GAVE_UP, RET_OK
from actorq.nats.embedded_server import find_nats_server
from tests.helpers import jobfuncs
from tests.helpers.up_harness import Up, gone, ps_json, run_up, up_env, wait_gone
from tests.runtime.test_up import _introspect_runtime

pytestmark = pytest.mark.timeout(240)


def _wait_for(predicate: Any, timeout: float, what: str, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)
    return value


def _server_pid(up: Up) -> int | None:
    """The pid of the live nats-server child of ``up`` (``None``: none right now)."""
    for pid in up.descendants():
        try:
            proc = psutil.Process(pid)
            if proc.name() == "nats-server" and proc.status() != psutil.STATUS_ZOMBIE:
                return pid
        except psutil.NoSuchProcess:
            continue
    return None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


def test_a_killed_embedded_server_is_back_within_2s_and_jobs_and_heartbeats_carry_on(
    tmp_path: Path,
) -> None:
    data = tmp_path / "nats"
    env = up_env(data)
    port = int(env["ACTORQ_NATS_PORT"])
    with run_up(tmp_path, env) as up:
        up.ready()
        first = up.pids["nats-server"]
        assert _server_pid(up) == first
        with SyncClient(up.url) as client:
            before = [client.enqueue(jobfuncs.add, i, 1) for i in range(20)]
            assert [job.result(timeout=30) for job in before] == [i + 1 for i in range(20)]
            queued = [client.enqueue(jobfuncs.add, i, 100) for i in range(20)]

            os.kill(first, signal.SIGKILL)
            killed_at = time.monotonic()
            _wait_for(lambda: gone(first), 10, "the server to die")
            second = _wait_for(lambda: _server_pid(up), 10, "a new nats-server")
            _wait_for(lambda: _accepts(port), 10, "the new server to accept on the same port")
            back_in = time.monotonic() - killed_at
            assert back_in < 2.0, f"the server took {back_in:.2f}s to come back"
            assert second != first
            restarted_at = time.time()

            # The same client carries on: jobs sent before the kill and after it.
            after = [client.enqueue(jobfuncs.add, i, 1000) for i in range(20)]
            assert [job.result(timeout=60) for job in queued] == [i + 100 for i in range(20)]
            assert [job.result(timeout=60) for job in after] == [i + 1000 for i in range(20)]
            # A job sent before is still known by id (the data dir was kept).
            assert client.job(before[0].id).result(timeout=30) == 1

        # Heartbeats resume: every runtime process reports again after the restart.
        def fresh() -> list[dict[str, Any]]:
            rows = [r for r in ps_json(up.url) if r["at"] > restarted_at]
            roles = {r["role"] for r in rows}
            return rows if {"queue", "results", "scheduler"} <= roles else []

        rows = _wait_for(fresh, 60, "heartbeats after the restart", every=0.5)
        assert {r["pid"] for r in rows if r["role"] == "queue"} == {
            up.pids["default-0"],
            up.pids["default-1"],
        }, "a queue actor was restarted: it should have reconnected instead"
        # The actors' own Trio links reconnected too: they answer the actor protocol.
        infos = trio.run(_introspect_runtime, up.url)
        assert infos["_results"].pid == up.pids["results"]
        assert infos["_scheduler"].pid == up.pids["scheduler"]
        assert infos["_queue-default"].pid in {up.pids["default-0"], up.pids["default-1"]}
        assert up.proc.poll() is None
        up.signal(signal.SIGTERM)
        assert up.wait() == RET_OK, up.stderr()
        up.seen.add(second)
        assert wait_gone(up.seen) == set(), f"left running: {up.seen}"
    assert "starting it again" in up.stderr()


def _removable_server(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the nats-server binary, and the env of an `up` that runs it: once the
    copy is removed, no restart of the server can succeed."""
    binary = tmp_path / "bin" / "nats-server"
    binary.parent.mkdir()
    shutil.copy2(find_nats_server(), binary)
    return binary, up_env(tmp_path / "nats", ACTORQ_NATS_SERVER=str(binary))


def test_up_exits_non_zero_with_the_reason_when_its_server_cannot_come_back(
    tmp_path: Path,
) -> None:
    # The binary goes away while the server runs: no restart can succeed.
    binary, env = _removable_server(tmp_path)
    with run_up(tmp_path, env) as up:
        up.ready()
        first = up.pids["nats-server"]
        binary.unlink()
        os.kill(first, signal.SIGKILL)
        code = up.wait(60)
        assert code == RET_GAVE_UP, up.stderr()
        err = up.stderr()
        assert "supervisor 'nats' gave up" in err, err[-3000:]
        assert "not an executable file" in err, err[-3000:]
        assert wait_gone(up.seen) == set()


#: A queue actor's log lines on a stop: its SIGTERM and its exit (actorq.runtime.children).
_STOP_LINE = re.compile(
    r"^(\S+ \S+) \w+\s+actorq\.queue\[(\d+)\] queue actor \S+(: SIGTERM| exits)"
)


def _queue_stop_times(err: str) -> dict[int, float]:
    """Seconds from each queue actor's SIGTERM to its exit, by pid, from its log lines."""
    seen: dict[int, dict[str, float]] = {}
    for line in err.splitlines():
        if match := _STOP_LINE.match(line):
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            seen.setdefault(int(match.group(2)), {})[match.group(3).strip(": ")] = at
    return {pid: t["exits"] - t["SIGTERM"] for pid, t in seen.items() if len(t) == 2}


def test_up_whose_server_is_gone_stops_its_queue_actors_within_seconds(tmp_path: Path) -> None:
    # Nothing a stopping queue actor would ask the server (a watch's consumer delete,
    # its heartbeat's delete) can be answered: it must not wait out request timeouts.
    # Before: ~5.6 s per queue actor, stopped one after another, ~18 s in all.
    binary, env = _removable_server(tmp_path)
    with run_up(tmp_path, env) as up:
        up.ready()
        queues = {up.pids["default-0"], up.pids["default-1"]}
        binary.unlink()
        os.kill(up.pids["nats-server"], signal.SIGKILL)
        killed_at = time.monotonic()
        code = up.wait(60)
        stopped_in = time.monotonic() - killed_at
        assert code == RET_GAVE_UP, up.stderr()
        err = up.stderr()
        times = _queue_stop_times(err)
        assert set(times) == queues, f"no SIGTERM/exit lines for every queue actor:\n{err}"
        # Generous bounds for a loaded machine: an actor's own stop is ~1 s (a fetch in
        # flight ends within 1.5 s); `up` gives the server up ~2.5 s after the kill.
        assert max(times.values()) < 4.0, f"queue actors took {times} s to stop"
        assert stopped_in < 8.0, f"up exited {stopped_in:.1f}s after its server died"
        assert wait_gone(up.seen) == set()
