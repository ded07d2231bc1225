"""The operations CLI against a real `actorq up` subprocess: queues and purge, jobs,
requeue, send --wait, doctor; plus clean failures against a closed port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from actorq import EnqueueOptions, SyncClient
from actorq.cli import common as cli_common
from actorq.cli import main as cli
from actorq.jobs.streams import JobStreams
from actorq.nats.connection import open_nats
from actorq.nats.embedded_server import free_port
from tests.helpers import jobfuncs
from tests.helpers.up_harness import ROOT, Up, local_auth, run_up, up_env, wait_gone

pytestmark = pytest.mark.timeout(180)


def actorq_cli(
    *args: str, url: str | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m actorq ARGS`` from the repo root, bounded."""
    env = {**os.environ}
    env.pop("ACTORQ_NATS_URL", None)
    if url is not None:
        env["ACTORQ_NATS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "actorq", *args],
        cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("cli_up")
    with run_up(tmp, up_env(tmp / "nats")) as running:
        running.ready()
        yield running
        running.close()
    assert wait_gone(running.seen) == set()


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def _provision_queue(url: str, queue: str) -> None:
    async def run() -> None:
        async with open_nats(url, **local_auth()) as conn:
            await JobStreams().provision_queue(conn, queue)

    trio.run(run)


def test_the_cli_exit_codes_agree_with_the_shared_ones() -> None:
    assert cli_common.RET_ERROR == cli.RET_ERROR
    assert cli_common.RET_CONFIG == cli.RET_CONFIG
    assert cli_common.RET_CONNECT == cli.RET_CONNECT


def test_queues_counts_a_known_backlog_and_purge_needs_confirmation(up: Up) -> None:
    # A queue no worker serves: its jobs stay pending.
    _provision_queue(up.url, "backlog")
    with SyncClient(up.url) as client:
        for i in range(5):
            client.enqueue_with(EnqueueOptions(queue="backlog"), jobfuncs.add, (i, 1))
    out = actorq_cli("queues", "--json", url=up.url)
    assert out.returncode == 0, out.stderr
    stats = {q["queue"]: q for q in json.loads(out.stdout)}
    assert stats["backlog"]["pending"] == 5
    assert stats["backlog"]["in_flight"] == 0
    assert stats["backlog"]["oldest_pending_age"] >= 0
    assert "default" in stats
    table = actorq_cli("queues", url=up.url)
    assert "backlog" in table.stdout
    assert "PENDING" in table.stdout
    # No input: the confirmation fails, nothing is purged.
    refused = actorq_cli("queue", "purge", "backlog", url=up.url)
    assert refused.returncode != 0
    again = json.loads(actorq_cli("queues", "--json", url=up.url).stdout)
    assert {q["queue"]: q["pending"] for q in again}["backlog"] == 5
    forced = actorq_cli("queue", "purge", "backlog", "--force", url=up.url)
    assert forced.returncode == 0, forced.stderr
    assert "removed 5" in forced.stdout
    after = json.loads(actorq_cli("queues", "--json", url=up.url).stdout)
    assert {q["queue"]: q["pending"] for q in after}["backlog"] == 0


def test_jobs_show_of_a_failed_job_contains_its_traceback(up: Up) -> None:
    with SyncClient(up.url) as client:
        job = client.options(max_retries=0).enqueue(jobfuncs.boom, "kaput")
        with pytest.raises(Exception, match="kaput"):
            job.result(timeout=30)
    shown = actorq_cli("jobs", "show", job.id, url=up.url)
    assert shown.returncode == 0, shown.stderr
    assert "failed" in shown.stdout
    assert "Traceback" in shown.stdout
    assert "ValueError: kaput" in shown.stdout
    listed = json.loads(
        actorq_cli("jobs", "list", "--status", "failed", "--json", url=up.url).stdout
    )
    assert job.id in {j["id"] for j in listed}
    dead = json.loads(actorq_cli("jobs", "dead", "--json", url=up.url).stdout)
    assert job.id in {d["job_id"] for d in dead}


def test_requeue_runs_a_dead_letter_again(up: Up, tmp_path: Path) -> None:
    marker = tmp_path / "calls"
    with SyncClient(up.url) as client:
        # Fails on its first call, succeeds on its second.
        job = client.options(max_retries=0).enqueue(jobfuncs.fail_until, str(marker), 2)
        with pytest.raises(Exception, match="attempt 1 fails"):
            job.result(timeout=30)
        _wait_for(
            lambda: job.id in {d.job_id for d in client.dead_letters()}, 30, "the dead letter"
        )
        out = actorq_cli("jobs", "requeue", job.id, url=up.url)
        assert out.returncode == 0, out.stderr
        assert f"requeued job {job.id}" in out.stdout
        _wait_for(lambda: client.status(job.id) == "succeeded", 30, "the second run")
        assert client.result(job.id, timeout=5) == 2


def test_send_wait_prints_the_value_or_the_remote_traceback_with_its_exit_code(up: Up) -> None:
    ok = actorq_cli("send", "default", "tests.helpers.jobfuncs:add", "2", "3", "--wait", url=up.url)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == "5"
    kw = actorq_cli(
        "send", "default", "tests.helpers.jobfuncs:add", "--kwargs", '{"a": 1, "b": 41}', "--wait",
        url=up.url,
    )  # fmt: skip
    assert kw.stdout.splitlines()[-1] == "42", kw.stderr
    bad = actorq_cli("send", "default", "tests.helpers.jobfuncs:boom", "oops", "--wait", url=up.url)
    assert bad.returncode == cli_common.RET_JOB_FAILED
    assert "ValueError: oops" in bad.stderr
    assert "Traceback" in bad.stderr
    later = actorq_cli(
        "send", "default", "tests.helpers.jobfuncs:add", "1", "1", "--in", "1s", "--wait",
        url=up.url,
    )
    assert later.returncode == 0, later.stderr
    assert later.stdout.splitlines()[-1] == "2"


def test_doctor_passes_against_the_running_runtime(up: Up) -> None:
    out = actorq_cli("doctor", url=up.url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PROBLEM" not in out.stdout
    for name in ("nats", "version", "jetstream", "streams", "scheduler"):
        assert name in out.stdout


def test_commands_fail_with_one_clear_line_against_a_closed_port() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    doctor = actorq_cli("doctor", "--url", url)
    assert doctor.returncode == cli.RET_CONNECT
    assert "PROBLEM" in doctor.stdout
    assert "cannot connect" in doctor.stdout
    assert "Traceback" not in doctor.stdout + doctor.stderr
    for args in (["queues"], ["jobs", "list"], ["schedules", "list"]):
        out = actorq_cli(*args, url=url)
        assert out.returncode == cli.RET_CONNECT, (args, out.stderr)
        assert out.stderr.startswith("error:")
        assert "Traceback" not in out.stderr


def test_schedules_are_listed_paused_resumed_and_deleted(up: Up) -> None:
    with SyncClient(up.url) as client:
        client.schedule("cli-nightly", jobfuncs.add, 1, 2, cron="0 3 * * *", tz="Europe/Paris")
    listed = json.loads(actorq_cli("schedules", "list", "--json", url=up.url).stdout)
    entry = {s["name"]: s for s in listed}["cli-nightly"]
    assert entry["tz"] == "Europe/Paris"
    assert entry["paused"] is False
    assert entry["next_runs"]
    assert actorq_cli("schedules", "pause", "cli-nightly", url=up.url).returncode == 0
    paused = json.loads(actorq_cli("schedules", "list", "--json", url=up.url).stdout)
    assert {s["name"]: s["paused"] for s in paused}["cli-nightly"] is True
    assert actorq_cli("schedules", "resume", "cli-nightly", url=up.url).returncode == 0
    table = actorq_cli("schedules", "list", url=up.url)
    assert "cli-nightly" in table.stdout
    assert "0 3 * * *" in table.stdout
    assert actorq_cli("schedules", "delete", "cli-nightly", url=up.url).returncode == 0
    remaining = json.loads(actorq_cli("schedules", "list", "--json", url=up.url).stdout)
    assert "cli-nightly" not in {s["name"] for s in remaining}


def test_the_server_and_namespace_come_from_url_env_or_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTORQ_CREDENTIALS_FILE", "")  # no local runtime to find
    config = tmp_path / "actorq.toml"
    config.write_text('namespace = "shop"\n[nats]\nurl = "nats://10.0.0.5:4222"\ntoken = "t0k"\n')
    from_config = cli_common.resolve(None, config, None)
    assert from_config.urls == ["nats://10.0.0.5:4222"]
    assert from_config.namespace == "shop"
    assert from_config.options == {"token": "t0k"}
    # TLS settings come along too, as `actorq up` gives them to its processes.
    tls = tmp_path / "tls.toml"
    tls.write_text('[nats]\nurl = "tls://nats.internal:4222"\ntls_hostname = "nats.internal"\n')
    assert cli_common.resolve(None, tls, None).options == {"tls_hostname": "nats.internal"}
    # --url wins over the config; --namespace over the config's.
    both = cli_common.resolve("nats://a:1,nats://b:2", config, "other")
    assert both.urls == ["nats://a:1", "nats://b:2"]
    assert both.namespace == "other"
    assert cli_common.resolve(None, None, None).urls == [cli_common.DEFAULT_URL]
    bad = tmp_path / "bad.toml"
    bad.write_text("namespace = 5\n")
    out = actorq_cli("queues", "--config", str(bad))
    assert out.returncode == cli.RET_CONFIG
    assert out.stderr.startswith("error:")


def test_actor_asks_any_runtime_actor_what_it_is_and_names_one_nobody_serves(up: Up) -> None:
    out = actorq_cli("actor", "_queue-default", "--json", url=up.url)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["role"] == "queue"
    assert info["pid"] in {up.pids["default-0"], up.pids["default-1"]}
    assert info["stats"]["capacity"] == 10
    text = actorq_cli("actor", "_scheduler", url=up.url)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("_scheduler  scheduler  pid ")
    assert "leading" in text.stdout
    missing = actorq_cli("actor", "nobody-here", "--timeout", "2", url=up.url)
    assert missing.returncode == cli_common.RET_NOT_FOUND
    assert "nobody-here" in missing.stderr
