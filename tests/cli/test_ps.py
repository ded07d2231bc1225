"""`actorq ps` from heartbeats, against a real `actorq up` subprocess: the queue actors'
pids (confirmed with psutil), the result and scheduler actors, and a killed one replaced
by a new pid with restarts = 1 (from the published supervision tree) and shown lost."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from actorq.cli.ops import queue_stats
from actorq.cli.ps import read_reports
from actorq.process.heartbeat import LOST_AFTER, ProcReport, state_of
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime
from tests.helpers.up_harness import ROOT, ps_json, run_up, up_env, wait_gone

pytestmark = pytest.mark.timeout(180)


def _poll(fn: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def test_a_report_older_than_three_beats_shows_lost() -> None:
    report = ProcReport(pid=1, host="h", role="queue", at=100.0, started_at=50.0)
    assert state_of(report, now=100.0 + LOST_AFTER - 0.5) == "running"
    assert state_of(report, now=100.0 + LOST_AFTER + 0.5) == "lost"


def test_ps_lists_the_queue_actor_pids_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    with run_up(tmp_path, up_env(tmp_path / "nats")) as up:
        up.ready()
        workers = {up.pids["default-0"], up.pids["default-1"]}
        # Once `ready` is printed every child is listed at once, with its path: each
        # puts its first report before it is ready, `up` its tree before the summary.
        first = {r["pid"]: r for r in ps_json(up.url)}
        assert workers | {up.pids["results"], up.pids["scheduler"]} <= set(first), first
        for pid in workers:
            assert first[pid]["path"].startswith("actorq/queue-default/default-"), first[pid]

        def queue_rows() -> list[dict[str, Any]]:
            return [r for r in ps_json(up.url) if r["role"] == "queue"]

        rows = _poll(
            lambda: (rs := queue_rows()) and {r["pid"] for r in rs} >= workers and rs,
            30, "both workers to report",
        )  # fmt: skip
        for row in rows:
            assert row["state"] == "running"
            assert row["queue"] == "default"
            # psutil confirms: a live process of this `actorq up`.
            assert psutil.pid_exists(row["pid"])
            assert row["pid"] in up.descendants()
            assert row["rss_bytes"] > 0
            assert row["threads"] >= 1
            assert row["open_files"] > 0

        # The supervision tree of `up` is joined by pid: path and restarts.
        tree_rows = _poll(
            lambda: [r for r in queue_rows() if r["pid"] in workers and r["restarts"] is not None],
            30, "the supervision tree to be published",
        )  # fmt: skip
        for row in tree_rows:
            assert row["restarts"] == 0
            assert row["supervisor"] == "actorq/queue-default"
            assert row["path"].startswith("actorq/queue-default/default-")

        # The result and scheduler actors report too, without job counters.
        def service_rows() -> list[dict[str, Any]]:
            rs = [r for r in ps_json(up.url) if r["role"] in ("results", "scheduler")]
            return rs if {r["role"] for r in rs} == {"results", "scheduler"} else []

        others = _poll(service_rows, 30, "the result and scheduler actors to report")
        for role in ("results", "scheduler"):
            (row,) = [r for r in others if r["role"] == role]
            assert row["pid"] == up.pids[role]
            assert row["pid"] in up.descendants()
            assert row["state"] == "running"
            assert row["processed"] == 0
            assert row["active_jobs"] == []
            assert row["path"] == f"actorq/{role}"
            assert row["restarts"] == 0
        table = subprocess.run(
            [sys.executable, "-m", "actorq", "ps", "--url", up.url],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert f"pid {up.pids['default-0']}" in table.stdout
        assert "queue default" in table.stdout
        assert "restarts 0" in table.stdout
        assert "fds " in table.stdout
        assert "default-0" in table.stdout  # unnamed: the child id in the tree
        assert "results" in table.stdout
        assert "scheduler" in table.stdout

        # The queue's parked warm standby: listed apart, never as a running worker.
        def standby_line() -> str:
            out = subprocess.run(
                [sys.executable, "-m", "actorq", "ps", "--url", up.url],
                cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
            ).stdout  # fmt: skip
            return next((line for line in out.splitlines() if "standby pid" in line), "")

        line = _poll(standby_line, 30, "the parked standby in the tree")
        assert "a spare of actorq/queue-default, not serving" in line
        spare = int(line.split()[2])
        assert spare in up.descendants()
        assert spare not in {r["pid"] for r in ps_json(up.url)}

        victim = up.pids["default-0"]
        up.descendants()
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            rs = queue_rows()
            new = {r["pid"] for r in rs if r["state"] == "running"} - workers
            old = [r for r in rs if r["pid"] == victim]
            return bool(new) and all(r["state"] == "lost" for r in old)

        _poll(replaced, 60, "a new worker pid and the killed one gone or lost")

        def restarted() -> list[dict[str, Any]]:
            return [
                r for r in queue_rows()
                if r["pid"] not in workers and r["state"] == "running" and r["restarts"] == 1
            ]  # fmt: skip

        (new,) = _poll(restarted, 30, "the new worker shown with restarts = 1")
        assert new["path"] == "actorq/queue-default/default-0"
        assert psutil.pid_exists(new["pid"])
        survivor = [r for r in queue_rows() if r["pid"] == up.pids["default-1"]]
        assert survivor
        assert survivor[0]["restarts"] == 0
        up.descendants()
        up.close()
    assert wait_gone(up.seen) == set()


def test_top_renders_a_frame_under_a_pseudo_terminal_and_exits_0_on_ctrl_c(
    nats_url: str,
) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorq", "top", "--interval", "0.5", "--url", nats_url],
        cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"processes" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        assert b"queues" in seen
        assert b"processes" in seen
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)


async def test_heartbeats_carry_a_job_rate_that_queues_sums_per_queue(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={"default": 1}) as rt:
            # ~4 s of work at one job at a time: at least two beats see jobs finish.
            await rt.client.enqueue_many([(jobfuncs.trio_sleep, (0.1,), {})] * 40)
            # Both read in one poll: read apart, the last beat of a loaded run could
            # already say 0 jobs/s by the time `queues` was asked (failed once).
            while True:
                reports = await read_reports(rt.client)
                rate = sum(r.jobs_per_s for r in reports if r.role == "queue")
                (default,) = [s for s in await queue_stats(rt.client) if s.queue == "default"]
                if rate > 0 and default.jobs_per_s > 0:
                    break
                await trio.sleep(0.2)  # polling the bucket: bounded by fail_after
    assert 0 < rate < 50
    assert default.jobs_per_s > 0

