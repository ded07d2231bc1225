"""`kill -9` of each runtime process of `actorq up` at each step of a job's life (issue 12).

One `actorq up` serves the step cases. Every process it starts is armed (through the
environment) with an ``exit`` fault at each step (actorq.process.faults), which fires
only when the test creates the step's trigger file, in whichever process gets there
first, and ends that process at once (``os._exit``, as ``kill -9``). Its supervisor starts
it again, which does not die again: the trigger was used up. Each case asserts that
every job sent has its result, exactly one final one, that the process really died
(a new pid in its place) and that nothing was dead-lettered. The last test kills
`actorq up` itself mid-work: no process outlives it, and a new one on the same data
dir finishes every job, each with one result.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from actorq import SyncClient
from actorq.cli.main import RET_OK
from actorq.constants import RESULTS_DURABLE
from actorq.nats import open_nats
from actorq.runtime.children import QUEUE_TARGET, RESULTS_TARGET, SCHEDULER_TARGET
from actorq.wire.messages import TERMINAL_STATUSES
from tests.helpers import jobfuncs, schedfuncs
from tests.helpers.up_harness import ROOT, Up, gone, local_auth, run_up, up_env, wait_gone

pytestmark = pytest.mark.timeout(180)

#: The short leases make a killed process's work come back within seconds.
CONFIG = """
sys_path = ["{root}"]

[[queues]]
name = "default"
processes = 1
concurrency = 4
ack_wait = 2.0
shutdown_timeout = 5.0
# Every outcome is final: a kill of the result actor always holds back a job's result.
track_started = false

[scheduler]
lease_ttl = 2.0

[supervisor]
max_restarts = 20
within = 10.0
"""
POINTS = (
    "queue.before_run",
    "queue.before_ack",
    "result.store",
    "result.before_ack",
    "scheduler.after_fire",
)
ROLES = {"queue": QUEUE_TARGET, "results": RESULTS_TARGET, "scheduler": SCHEDULER_TARGET}


def _wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return value


def _role_pid(up: Up, role: str) -> int | None:
    """The pid of the live process of ``role`` under ``up`` (``None``: none now).

    A queue's parked warm standby (``[[queues]] standby``) has the same command line
    but no NATS connection until it is activated: it is not the queue's process."""
    for pid in up.descendants():
        try:
            proc = psutil.Process(pid)
            live = proc.status() != psutil.STATUS_ZOMBIE
            if live and ROLES[role] in proc.cmdline() and proc.net_connections(kind="tcp"):
                return pid
        except psutil.NoSuchProcess:
            continue
    return None


def _settled(url: str) -> bool:
    """Whether the queue's and the result actor's consumers have nothing in flight."""

    async def pending() -> int:
        async with open_nats(url, **local_auth()) as conn:
            total = 0
            for stream, durable in (
                ("actorq_jobs", "q-default"),
                ("actorq_outcomes", RESULTS_DURABLE),
            ):
                info = await conn.jsm("consumer_info", stream, durable)
                total += info.num_pending + info.num_ack_pending
            return total

    return trio.run(pending) == 0


def _config(tmp: Path) -> Path:
    path = tmp / "kill9.toml"
    path.write_text(CONFIG.format(root=ROOT))
    return path


def _faults(triggers: Path) -> str:
    return ",".join(f"{point}=exit:*@{triggers / point}" for point in POINTS)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, Path]]:
    tmp = tmp_path_factory.mktemp("kill9")
    triggers = tmp / "triggers"
    triggers.mkdir()
    env = up_env(tmp / "nats", ACTORQ_FAULTS=_faults(triggers))
    with run_up(tmp, env, config=_config(tmp)) as up:
        up.ready()
        yield up, triggers
        up.signal(signal.SIGTERM)
        assert up.wait() == RET_OK, up.stderr()[-3000:]
        assert wait_gone(up.seen) == set(), f"left running: {up.seen}"


def _one_final_result(client: SyncClient, job_id: str, value: Any) -> None:
    """The job succeeded with ``value``, and its history holds one final outcome."""
    assert client.job(job_id).result(timeout=60) == value
    record = client.get_record(job_id)
    assert record is not None
    assert record.status == "succeeded"
    finals = [h.status for h in record.history if h.status in TERMINAL_STATUSES]
    assert finals == ["succeeded"], record.history


@pytest.mark.parametrize(
    ("role", "steps"),
    [
        ("queue", ["queue.before_run"]),
        ("queue", ["while_running"]),
        ("queue", ["queue.before_ack"]),
        # One case for both steps of the result actor: each costs the outcomes' lease
        # (15 s) before the killed batch comes back, and the two leases overlap.
        ("results", ["result.store", "result.before_ack"]),
    ],
    ids=["queue-before-run", "queue-while-running", "queue-before-ack", "results"],
)
def test_a_process_killed_at_a_step_of_a_job_loses_and_repeats_no_result(
    runtime: tuple[Up, Path], tmp_path: Path, role: str, steps: list[str]
) -> None:
    up, triggers = runtime
    first = pid = _wait_for(lambda: _role_pid(up, role), 30, f"a {role} process")
    expected: dict[str, Any] = {}
    with SyncClient(up.url) as client:
        for n, step in enumerate(steps):
            if step == "while_running":
                # The job's own process dies under it the first time it runs.
                job = client.enqueue(jobfuncs.killed_first_time, str(tmp_path / "calls"), 7)
                expected[job.id] = 7
            else:
                (triggers / step).touch()
            for i in range(6):
                job = client.enqueue(jobfuncs.slow_add, i, 100 * n, 0.2)
                expected[job.id] = i + 100 * n
            # The process of this step died, and its successor serves the next step.
            _wait_for(lambda p=pid: gone(p), 30, f"the {role} process to die at {step}")
            assert not (triggers / step).exists()
            pid = _wait_for(lambda: _role_pid(up, role), 30, f"a new {role} process")
        for job_id, value in expected.items():
            _one_final_result(client, job_id, value)
        _wait_for(lambda: _settled(up.url), 60, "every job and outcome message acked")
        # Redelivered outcomes were stored again: still one final status per job.
        for job_id, value in expected.items():
            _one_final_result(client, job_id, value)
        assert client.dead_letters() == []
    assert pid != first


def test_a_scheduler_killed_between_firing_and_recording_fires_each_due_time_once(
    runtime: tuple[Up, Path], tmp_path: Path
) -> None:
    up, triggers = runtime
    before = _wait_for(lambda: _role_pid(up, "scheduler"), 30, "a scheduler process")
    marks = tmp_path / "runs"
    with SyncClient(up.url) as client:
        (triggers / "scheduler.after_fire").touch()
        start = math.ceil(time.time()) + 2
        client.schedule(
            "k9", schedfuncs.mark, str(marks), "k9", every=2, start_at=start, max_runs=3
        )
        # A delayed job (a server timer: no scheduler involved) is released meanwhile.
        later = client.enqueue_in(1.0, jobfuncs.add, 40, 2)
        ids = [f"k9-{start + 2 * i}" for i in range(3)]
        for job_id in ids:
            assert client.job(job_id).result(timeout=60).startswith("k9-")
            record = client.get_record(job_id)
            assert record is not None
            assert record.attempts == 1
        _one_final_result(client, later.id, 42)
        assert not (triggers / "scheduler.after_fire").exists(), "the fault never fired"
        assert client.dead_letters() == []
        # The schedule recorded its 3 runs and is over; each due time ran once (the
        # first one's job was published twice: the copy was dropped by its Nats-Msg-Id).
        (info,) = _wait_for(
            lambda: [s for s in client.schedules() if s.name == "k9" and s.runs == 3], 30,
            "the schedule to record its 3 runs",
        )  # fmt: skip
        assert info.next_runs == []
        assert len(list(marks.iterdir())) == 3
        assert client.get_record(f"k9-{start + 6}") is None
    assert gone(before)
    assert _wait_for(lambda: _role_pid(up, "scheduler"), 30, "a new scheduler") != before


def test_a_killed_up_leaves_no_process_and_a_new_one_finishes_every_job(tmp_path: Path) -> None:
    env = up_env(tmp_path / "nats")
    config = _config(tmp_path)
    with run_up(tmp_path, env, config=config) as up:
        up.ready()
        with SyncClient(up.url) as client:
            jobs = [client.enqueue(jobfuncs.slow_add, i, 1, 0.5) for i in range(12)]
            # Mid-work: the first jobs are done, others run, the rest wait.
            jobs[0].result(timeout=30)
        children = up.descendants()
        assert len(children) >= 4, children  # nats-server, results, scheduler, a queue actor
        os.kill(up.proc.pid, signal.SIGKILL)
        up.wait(10)
        alive = wait_gone(children, 10)
        assert alive == set(), f"orphans of the killed actorq up: {alive}"
    with run_up(tmp_path, env, config=config, name="up-again") as again:
        again.ready()
        with SyncClient(again.url) as client:
            for i, job in enumerate(jobs):
                _one_final_result(client, job.id, i + 1)
        again.signal(signal.SIGTERM)
        assert again.wait() == RET_OK, again.stderr()[-3000:]
        assert wait_gone(again.seen) == set()
