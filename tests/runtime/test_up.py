"""`actorq up examples/config.toml` in a subprocess, with its embedded nats-server:
jobs run, SIGTERM is graceful, killed workers come back, queued jobs survive a restart,
a crash loop ends the tree with the cause, and no process is ever left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import trio

import actorq
import actorq.nats
from actorq import SyncClient
from actorq.cli.main import RET_CONFIG, RET_CONNECT, RET_GAVE_UP, RET_OK, RET_SERVER, RET_START
from actorq.nats import NatsServerProcess
from actorq.nats.embedded_server import free_port
from actorq.wire.messages import ActorInfo
from tests.helpers import jobfuncs, upactors, upfuncs
from tests.helpers.up_harness import ROOT, gone, local_auth, run_up, up_env, wait_gone

pytestmark = pytest.mark.timeout(180)


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_up_runs_jobs_sent_with_the_sync_helper_and_the_example_script(tmp_path: Path) -> None:
    env = up_env(tmp_path / "nats", ACTORQ_LOGGING_FORMAT="json", ACTORQ_QUEUES_0_TIMEOUT="2")
    with run_up(tmp_path, env) as up:
        up.ready()
        assert {"results", "default-0", "default-1", "nats-server"} <= set(up.pids)
        with SyncClient(up.url) as client:
            jobs = [client.enqueue(jobfuncs.add, i, 1) for i in range(20)]
            assert [job.result(timeout=30) for job in jobs] == [i + 1 for i in range(20)]
            # The queue's `timeout` bounds a job that sets none.
            slow = client.options(max_retries=0).enqueue(jobfuncs.trio_sleep, 60)
            with pytest.raises(actorq.JobError, match="timeout"):
                slow.result(timeout=30)
        # The README's flow: the example script sends `tasks.add` by name.
        script = subprocess.run(
            [sys.executable, "examples/sync_send.py", "2", "3"],
            cwd=ROOT,
            env={**os.environ, "ACTORQ_NATS_URL": up.url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert script.returncode == 0, script.stderr
        assert "result: 5" in script.stdout
        # The runtime's own processes answer the actor protocol, as user actors do.
        infos = trio.run(_introspect_runtime, up.url)
        assert infos["_queue-default"].role == "queue"
        assert infos["_queue-default"].pid in {up.pids["default-0"], up.pids["default-1"]}
        assert infos["_queue-default"].stats["capacity"] == 10  # examples/config.toml
        assert infos["_results"].pid == up.pids["results"]
        assert int(infos["_results"].stats["outcomes"] or 0) >= 1
        assert infos["_scheduler"].pid == up.pids["scheduler"]
        assert infos["_scheduler"].stats["leading"] is True
        up.signal(signal.SIGTERM)
        assert up.wait() == RET_OK, up.stderr()
        assert wait_gone(up.seen) == set()
    # [logging] format = json reaches every process of the tree: one object a line.
    records = [json.loads(line) for line in up.stderr().splitlines() if line.strip()]
    assert {"ts", "level", "logger", "pid", "msg"} <= set(records[0])
    assert {r["pid"] for r in records} >= {up.proc.pid, up.pids["default-0"]}


def test_sigterm_lets_a_running_job_finish_then_exits_0_leaving_no_process(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "job"
    with run_up(tmp_path, up_env(tmp_path / "nats")) as up:
        up.ready()
        with SyncClient(up.url) as client:
            client.enqueue(upfuncs.nap, str(marker), 3.0)
            _wait_for((marker / "started").exists, 30, "the job to start")
        up.signal(signal.SIGTERM)
        assert up.wait() == RET_OK, up.stderr()
        assert (marker / "done").exists(), "the running job was cut short"
        assert up.rest_of_stdout() == ["actorq stopped"]
        assert wait_gone(up.seen) == set(), f"left running: {up.seen}"
    # Every child stopped on its SIGTERM: none had to be killed (the result actor and
    # the scheduler once waited 5 s each for a PONG their closed actor link could not
    # bring, then were killed).
    assert "ignored SIGTERM" not in up.stderr()
    assert "killing it" not in up.stderr()


def test_a_killed_queue_actor_is_replaced_and_jobs_continue(tmp_path: Path) -> None:
    with run_up(tmp_path, up_env(tmp_path / "nats")) as up:
        up.ready()
        victim = up.pids["default-0"]
        before = up.descendants()
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: gone(victim), 10, "the victim to die")
        # A replacement appears: a new child process of the tree.
        _wait_for(lambda: up.descendants() - before - {victim}, 30, "a replacement")
        with SyncClient(up.url) as client:
            jobs = [client.enqueue(upfuncs.pid) for _ in range(20)]
            pids = {job.result(timeout=30) for job in jobs}
        assert victim not in pids
        assert up.proc.poll() is None
        up.signal(signal.SIGTERM)
        assert up.wait() == RET_OK, up.stderr()
        assert wait_gone(up.seen) == set()


def test_the_embedded_server_keeps_queued_jobs_across_a_restart_of_up(tmp_path: Path) -> None:
    data = tmp_path / "nats"
    env = up_env(data)
    with run_up(tmp_path, env, name="first") as up:
        up.ready()
        with SyncClient(up.url) as client:
            # No worker serves "later" in this run: the jobs wait in the stream.
            job_ids = [client.send("later", jobfuncs.add, i, i).id for i in range(5)]
        up.signal(signal.SIGTERM)
        assert up.wait() == RET_OK, up.stderr()
    # Same data dir and port; this time the queue is served.
    with run_up(tmp_path, {**env, "ACTORQ_QUEUES_0_NAME": "later"}, name="second") as up:
        up.ready()
        with SyncClient(up.url) as client:
            results = [client.job(job_id, "later").result(timeout=30) for job_id in job_ids]
        assert results == [2 * i for i in range(5)]
        up.signal(signal.SIGTERM)
        assert up.wait() == RET_OK, up.stderr()
        assert wait_gone(up.seen) == set()


def test_a_crash_looping_worker_ends_up_with_the_cause_and_no_orphans(tmp_path: Path) -> None:
    crash = tmp_path / "crash-now"
    env = up_env(
        tmp_path / "nats",
        ACTORQ_IMPORTS="tasks,tests.helpers.upfuncs",
        ACTORQ_QUEUES_0_PROCESSES="1",
        ACTORQ_SUPERVISOR_MAX_RESTARTS="1",
        ACTORQ_SUPERVISOR_WITHIN="120",
        **{upfuncs.CRASH_MARKER_ENV: str(crash)},
    )
    with run_up(tmp_path, env) as up:
        up.ready()
        # From now on every (re)start of the worker fails on import.
        crash.touch()
        up.descendants()
        os.kill(up.pids["default-0"], signal.SIGKILL)
        code = up.wait(120)
        err = up.stderr()
        assert code == RET_GAVE_UP, err
        assert "gave up" in err
        assert "queue-default" in err
        assert wait_gone(up.seen) == set(), f"orphans: {up.seen}"
    # One line per event, in actorq's words: each escalation once (not the library's
    # record beside ours), a supervisor with no "(pid None)", no advice to run a
    # child alone (its crash is logged), no module path in a nested failure.
    assert err.count("gives up") == 2, err  # queue-default's supervisor, then the tree's
    assert "pid None" not in err
    assert "run it on its own" not in err
    assert "supervisors.exceptions." not in err


def test_a_worker_that_cannot_start_is_named_by_its_path_with_its_crash_logged_once(
    tmp_path: Path,
) -> None:
    crash = tmp_path / "crash-now"
    crash.touch()  # the worker's import fails from its first start
    env = up_env(
        tmp_path / "nats",
        ACTORQ_IMPORTS="tasks,tests.helpers.upfuncs",
        ACTORQ_QUEUES_0_PROCESSES="1",
        **{upfuncs.CRASH_MARKER_ENV: str(crash)},
    )
    with run_up(tmp_path, env) as up:
        code = up.wait(90)
        err = up.stderr()
        assert code == RET_START, err
        assert wait_gone(up.seen) == set(), f"orphans: {up.seen}"
    last = err.strip().splitlines()[-1]
    assert last == (
        "error: child queue-default/default-0 stopped before reporting ready (exit code 1); "
        "its error, if it logged one, is in the log above"
    ), err
    assert err.count(" crashed: ") == 1, err  # one record, with its traceback
    assert "killing it" not in err  # the others stopped on their SIGTERM


def test_up_refuses_a_bad_config_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[queues]]\nname = "a"\nprocesses = "many"\n')
    with run_up(tmp_path, up_env(tmp_path / "nats"), config=bad) as up:
        assert up.wait(60) == RET_CONFIG
        assert f"{bad}:3: queues[0].processes" in up.stderr()
        assert not (tmp_path / "nats").exists()


async def _introspect_runtime(url: str) -> dict[str, ActorInfo]:
    infos: dict[str, ActorInfo] = {}
    with trio.fail_after(30):
        async with actorq.nats.open_nats(url, **local_auth()) as nc:
            for name in ("_queue-default", "_results", "_scheduler"):
                ref = actorq.ref(name, conn=nc)
                assert (await ref.ping(timeout=10)).name == name
                infos[name] = await ref.introspect(timeout=10)
    return infos


def _config_with_actor(tmp_path: Path) -> Path:
    config = tmp_path / "with-actor.toml"
    config.write_text(
        (ROOT / "examples" / "config.toml").read_text()
        + '\n[[actors]]\nname = "echo"\nclass = "tests.helpers.upactors:Echo"\n'
        + "kwargs = { step = 2 }\n"
    )
    return config


async def _ask_echo(url: str, n: int) -> list[int]:
    async with actorq.nats.open_nats(url, **local_auth()) as nc:
        reply: list[int] = await actorq.ref("echo", conn=nc).ask(upactors.Ping(n), timeout=20)
        return reply


def test_a_user_actor_from_the_config_answers_then_crash_loops_to_a_clean_exit(
    tmp_path: Path,
) -> None:
    crash = tmp_path / "crash-now"
    env = up_env(
        tmp_path / "nats",
        ACTORQ_SUPERVISOR_MAX_RESTARTS="1",
        ACTORQ_SUPERVISOR_WITHIN="120",
        **{upactors.CRASH_MARKER_ENV: str(crash)},
    )
    with run_up(tmp_path, env, config=_config_with_actor(tmp_path)) as up:
        up.ready()
        actor_pid = up.pids["echo"]
        assert trio.run(_ask_echo, up.url, 40) == [42, actor_pid]
        # User actor processes report heartbeats too (role "actor").
        deadline = time.monotonic() + 15
        while not any(
            p["role"] == "actor" and p["pid"] == actor_pid for p in _ps_json(up.url)
        ):
            assert time.monotonic() < deadline, "no heartbeat from the user actor"
            time.sleep(0.2)
        crash.touch()
        up.descendants()
        os.kill(actor_pid, signal.SIGKILL)
        code = up.wait(120)
        err = up.stderr()
        assert code == RET_GAVE_UP, err
        assert "gave up" in err
        assert "'echo'" in err
        assert "failing on start on purpose" in err
        assert wait_gone(up.seen) == set(), f"orphans: {up.seen}"


def test_up_connects_with_a_token_and_workers_verify_the_signing_key(tmp_path: Path) -> None:
    key, old_key = bytes(range(32)), bytes(range(32, 64))
    with NatsServerProcess(data_dir=tmp_path / "ext", extra_args=["--auth", "s3cret"]) as nats:
        env = {
            "ACTORQ_NATS_URL": nats.url,
            "ACTORQ_NATS_TOKEN": "s3cret",
            "ACTORQ_SECURITY_SIGNING_KEY_ENV": "ACTORQ_SIGNING_KEY",
            "ACTORQ_SIGNING_KEY": key.hex(),
            # Mid-rotation: jobs signed with the old key are still accepted.
            "ACTORQ_SECURITY_PREVIOUS_SIGNING_KEYS_ENV": "ACTORQ_PREVIOUS_SIGNING_KEYS",
            "ACTORQ_PREVIOUS_SIGNING_KEYS": old_key.hex(),
            "ACTORQ_SECURITY_CODECS": "pickle",
        }
        with run_up(tmp_path, env) as up:
            up.ready()
            assert "nats-server" not in up.pids  # external: nothing embedded
            # The secrets stay out of every process's command line.
            for pid in up.descendants() | {up.proc.pid}:
                argv = " ".join(psutil.Process(pid).cmdline())
                assert "s3cret" not in argv
                assert key.hex() not in argv
            with SyncClient(nats.url, token="s3cret", signing_key=key) as client:
                assert client.enqueue(jobfuncs.add, 2, 2).result(timeout=30) == 4
            old_signer = actorq.Signer(old_key, previous=[key])  # a client not yet rolled
            with SyncClient(nats.url, token="s3cret", signing_key=old_signer) as client:
                assert client.enqueue(jobfuncs.add, 3, 3).result(timeout=30) == 6
            # Jobs of a client without the key are dead-lettered unrun, no record.
            with SyncClient(nats.url, token="s3cret", local_credentials=False) as unsigned:
                job = unsigned.enqueue(jobfuncs.add, 1, 1)
                with pytest.raises(actorq.JobTimeout):
                    job.result(timeout=2)
                assert unsigned.get_record(job.id) is None
                refused = [d for d in unsigned.dead_letters() if job.id in d.detail]
                assert [d.reason for d in refused] == ["bad_signature"]
            # [security] codecs = ["pickle"]: a safe-codec job is refused, not run.
            with SyncClient(nats.url, token="s3cret", codec="safe", signing_key=key) as safe:
                job = safe.enqueue(jobfuncs.add, 1, 2)
                with pytest.raises(actorq.JobError):
                    job.result(timeout=30)
                letters = safe.dead_letters()
            assert {d.job_id: d.reason for d in letters}[job.id] == "undecodable"
            up.signal(signal.SIGTERM)
            assert up.wait() == RET_OK, up.stderr()
            assert wait_gone(up.seen) == set()


def test_a_second_sigterm_stops_at_once_without_waiting_for_jobs(tmp_path: Path) -> None:
    marker = tmp_path / "job"
    with run_up(tmp_path, up_env(tmp_path / "nats")) as up:
        up.ready()
        with SyncClient(up.url) as client:
            client.enqueue(upfuncs.nap, str(marker), 120.0)
            _wait_for((marker / "started").exists, 30, "the job to start")
        up.signal(signal.SIGTERM)
        _wait_for(lambda: "stopping gracefully" in up.stderr(), 30, "the graceful stop")
        started = time.monotonic()
        up.signal(signal.SIGTERM)
        up.wait(60)
        assert time.monotonic() - started < 20
        assert not (marker / "done").exists()
        assert wait_gone(up.seen) == set(), f"left running: {up.seen}"


def test_the_supervisor_shutdown_timeout_bounds_a_graceful_stop(tmp_path: Path) -> None:
    marker = tmp_path / "job"
    env = up_env(tmp_path / "nats", ACTORQ_SUPERVISOR_SHUTDOWN_TIMEOUT="2")
    with run_up(tmp_path, env) as up:
        up.ready()
        with SyncClient(up.url) as client:
            client.enqueue(upfuncs.nap, str(marker), 120.0)
            _wait_for((marker / "started").exists, 30, "the job to start")
        started = time.monotonic()
        up.signal(signal.SIGTERM)  # the queue would wait 30 s for the job; the tree 2 s
        up.wait(60)
        assert time.monotonic() - started < 20
        assert "graceful stop took over 2.0s" in up.stderr()
        assert wait_gone(up.seen) == set(), f"left running: {up.seen}"


def test_up_exits_with_ret_server_or_ret_connect_when_nats_is_not_there(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with run_up(tmp_path, up_env(tmp_path / "nats", ACTORQ_NATS_PORT=port)) as up:
            assert up.wait(60) == RET_SERVER, up.stderr()
            assert "already in use" in up.stderr()
    nowhere = f"nats://127.0.0.1:{free_port()}"
    env = {"ACTORQ_NATS_URL": nowhere, "ACTORQ_NATS_CONNECT_TIMEOUT": "1"}
    with run_up(tmp_path, env, name="connect") as up:
        assert up.wait(60) == RET_CONNECT, up.stderr()
        assert "could not connect" in up.stderr()


def test_ctrl_c_in_a_terminal_drains_before_the_embedded_server_stops(tmp_path: Path) -> None:
    marker = tmp_path / "job"
    env = up_env(tmp_path / "nats")
    with run_up(tmp_path, env, name="first") as up:
        up.ready()
        with SyncClient(up.url) as client:
            job_id = client.enqueue(upfuncs.nap, str(marker), 2.0).id
            _wait_for((marker / "started").exists, 30, "the job to start")
        up.ctrl_c()  # reaches up and the nats-server alike, unless it has its own group
        assert up.wait() == RET_OK, up.stderr()
        assert (marker / "done").exists()
        assert wait_gone(up.seen) == set()
    # The outcome was stored before the server stopped: done once, not redelivered.
    with run_up(tmp_path, env, name="second") as up:
        up.ready()
        with SyncClient(up.url) as client:
            record = client.get_record(job_id)
        assert record is not None
        assert (record.status, record.attempts) == ("succeeded", 1)


def _ps_json(url: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "actorq", "ps", "--json", "--url", url],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    result: list[dict[str, object]] = json.loads(out)
    return result
