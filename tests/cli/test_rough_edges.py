"""The rough edges a new user hit first (issue 15), each held by a test: `send` with a
config's `sys_path`, a queue nobody serves, `jobs cancel` of an unknown id, an unknown
`--status`, a job's traceback that starts at the user's frame, `top` at 80 columns,
the port-in-use hint, and a config's queue options applied by an enqueuer."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

import msgspec
import pytest
import trio
from rich.console import Console

from actorq import EnqueueOptions, JobFailed
from actorq.cli import common as cli_common
from actorq.cli.top import render
from actorq.config.schema import loads_config
from actorq.exceptions import PortInUse
from actorq.nats.embedded_server import _check_port_free
from actorq.process.heartbeat import ProcReport
from actorq.runtime.metrics import MetricsState
from actorq.wire.messages import encode
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.timeout(120)


async def actorq_cli(*args: str) -> trio.CompletedProcess[bytes]:
    """``python -m actorq ARGS`` from the repo root, with no ACTORQ_* settings, bounded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORQ_")}
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "actorq", *args],
            cwd=ROOT, env=env, capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip


def _config(tmp_path: Path, url: str, namespace: str, sys_path: str = "") -> str:
    path = tmp_path / "actorq.toml"
    extra = f"sys_path = [{json.dumps(sys_path)}]\n" if sys_path else ""
    path.write_text(f'namespace = "{namespace}"\n{extra}\n[nats]\nurl = "{url}"\n')
    return str(path)


async def test_send_imports_the_function_through_the_configs_sys_path(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker (in this process) imports `tasks` from examples/, as `actorq up` would.
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    async with open_runtime(nats_url) as rt:
        bare = _config(tmp_path, nats_url, rt.namespace)
        missing = await actorq_cli("send", "default", "tasks:add", "2", "3", "--config", bare)
        assert missing.returncode == cli_common.RET_CONFIG
        assert b"No module named 'tasks'" in missing.stderr
        assert b"--config" in missing.stderr  # says what to do next
        cfg = _config(tmp_path, nats_url, rt.namespace, sys_path=str(ROOT / "examples"))
        sent = await actorq_cli(
            "send", "default", "tasks:add", "2", "3", "--wait", "--timeout", "30", "--config", cfg
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.decode().splitlines()[-1] == "5"
        assert b"no worker" not in sent.stderr


async def test_a_queue_nobody_serves_warns_and_is_listed_with_its_jobs(
    nats_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_runtime(nats_url) as rt:
        cfg = _config(tmp_path, nats_url, rt.namespace)
        sent = await actorq_cli(
            "send", "nobody", "tests.helpers.jobfuncs:add", "1", "2", "--wait", "--timeout", "0.5",
            "--config", cfg,
        )  # fmt: skip
        assert sent.returncode == cli_common.RET_JOB_FAILED
        err = sent.stderr.decode()
        assert "warning: queue 'nobody' has no worker yet" in err
        # A timeout tells the operator what to run, not what to call in Python.
        assert "actorq jobs show" in err
        assert "await" not in err
        with caplog.at_level(logging.WARNING, logger="actorq"):
            await rt.client.options(queue="nobody2").enqueue(jobfuncs.add, 1, 2)
            await rt.client.options(queue="nobody2").enqueue(jobfuncs.add, 1, 2)
        warned = [r for r in caplog.records if "'nobody2' has no worker" in r.getMessage()]
        assert len(warned) == 1  # once per queue, not per job
        listed = await actorq_cli("queues", "--json", "--config", cfg)
        assert listed.returncode == 0, listed.stderr
        stats = {q["queue"]: q for q in json.loads(listed.stdout)}
        assert stats["nobody"]["pending"] == 1
        assert stats["nobody2"]["pending"] == 2
        assert stats["nobody"]["workers"] == 0


async def test_a_queue_whose_jobs_came_before_any_consumer_is_listed_and_measured(
    nats_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_runtime(nats_url, queues={}) as rt:
        client = rt.client
        # Jobs that reached a queue no consumer exists for, as a recurring schedule of
        # a queue nobody serves, a client not allowed to create consumers, or an older
        # actorq put them there: published with no consumer made.
        for _ in range(3):
            env = client.build_envelope(EnqueueOptions(queue="orphans"), jobfuncs.add, (1, 2), {})
            await client.conn.js_publish(client.streams.job_subject("orphans", env.id), encode(env))
        with caplog.at_level(logging.WARNING, logger="actorq"):
            batch = await client.options(queue="batched").enqueue_many(
                [(jobfuncs.add, (i, 1), {}) for i in range(2)]
            )
        assert any("'batched' has no worker" in r.getMessage() for r in caplog.records)
        # A delayed job is a server timer in the same stream, not a job of any queue yet.
        await client.options(queue="later").enqueue_in(3600, jobfuncs.add, 1, 1)
        cfg = _config(tmp_path, nats_url, rt.namespace)
        listed = await actorq_cli("queues", "--json", "--config", cfg)
        assert listed.returncode == 0, listed.stderr
        stats = {q["queue"]: q for q in json.loads(listed.stdout)}
        assert stats["orphans"]["pending"] == 3
        assert stats["orphans"]["workers"] == 0
        assert stats["orphans"]["oldest_pending_age"] is not None
        assert stats["batched"]["pending"] == 2
        assert stats["later"]["pending"] == 0  # its consumer exists; the job is not due
        assert sorted(stats) == ["batched", "later", "orphans"]
        table = await actorq_cli("queues", "--config", cfg)
        rows = [line.split() for line in table.stdout.decode().splitlines()]
        assert ["orphans", "3", "0", "0", "0"] in [r[:5] for r in rows], table.stdout
        # The metrics endpoint's depth too.
        metrics = MetricsState(client.conn, rt.namespace, tree=lambda: None)  # type: ignore[arg-type,return-value]
        await metrics.refresh()
        assert metrics.queues["orphans"].pending == 3
        # Once a worker serves it, its jobs run, and it is listed once, as served.
        await rt.start_queue_actor("orphans", 2)
        await rt.start_queue_actor("batched", 2)
        assert [await j.result(timeout=30) for j in batch] == [1, 2]
        with trio.fail_after(30):
            while True:
                listed = await actorq_cli("queues", "--json", "--config", cfg)
                names = [q["queue"] for q in json.loads(listed.stdout)]
                now = [q for q in json.loads(listed.stdout) if q["queue"] == "orphans"]
                if now and now[0]["pending"] == 0 and now[0]["in_flight"] == 0:
                    break
                await trio.sleep(0.2)
        assert names.count("orphans") == 1


async def test_cancel_of_an_unknown_job_exits_not_found_and_of_a_done_one_says_so(
    nats_url: str, tmp_path: Path
) -> None:
    async with open_runtime(nats_url) as rt:
        cfg = _config(tmp_path, nats_url, rt.namespace)
        unknown = await actorq_cli("jobs", "cancel", "nosuchjob", "--config", cfg)
        assert unknown.returncode == cli_common.RET_NOT_FOUND
        assert b"no job 'nosuchjob'" in unknown.stderr
        job = await rt.client.enqueue(jobfuncs.add, 1, 2)
        assert await job.result(timeout=30) == 3
        done = await actorq_cli("jobs", "cancel", job.id, "--config", cfg)
        assert done.returncode == 0, done.stderr
        assert b"already succeeded: nothing to cancel" in done.stdout


async def test_not_found_errors_name_the_command_that_lists_not_a_python_call(
    nats_url: str, tmp_path: Path
) -> None:
    async with open_runtime(nats_url, queues={}) as rt:
        cfg = _config(tmp_path, nats_url, rt.namespace)
        for args, lister in [
            (("jobs", "requeue", "nosuchjob"), "`actorq jobs dead`"),
            (("schedules", "delete", "nosuch"), "`actorq schedules list`"),
            (("schedules", "pause", "nosuch"), "`actorq schedules list`"),
        ]:
            out = await actorq_cli(*args, "--config", cfg)
            assert out.returncode == cli_common.RET_NOT_FOUND, (args, out.stderr)
            err = out.stderr.decode()
            assert lister in err, err
            assert "()" not in err, err
            assert "await" not in err, err


async def test_jobs_list_refuses_an_unknown_status_and_names_the_valid_ones() -> None:
    out = await actorq_cli("jobs", "list", "--status", "bogus")
    assert out.returncode == cli_common.RET_USAGE
    assert b"--status 'bogus': use one of queued, scheduled" in out.stderr


async def test_a_failed_jobs_traceback_starts_at_the_users_own_frame(nats_url: str) -> None:
    async with open_runtime(nats_url) as rt:
        job = await rt.client.options(max_retries=0).enqueue(jobfuncs.boom, "kaput")
        with pytest.raises(JobFailed) as info:
            await job.result(timeout=30)
    frames = [line for line in info.value.traceback.splitlines() if line.startswith("  File")]
    assert frames, info.value.traceback
    assert "tests/helpers/jobfuncs.py" in frames[0], info.value.traceback
    assert not any("/actorq/" in f or "/trio/" in f for f in frames), info.value.traceback


def test_top_fits_80_columns_and_names_processes_as_ps_does() -> None:
    now = time.time()
    reports = [
        ProcReport(
            pid=4194304, host="h", role="queue", queue="default", at=now, started_at=now - 5000,
            processed=1234567, failed=12345, rss_bytes=1234 * 2**20, cpu_percent=100.0,
        ),
        ProcReport(pid=4343, host="h", role="results", at=now, started_at=now),
    ]
    console = Console(width=80, record=True, color_system=None)
    console.print(render([], reports, {}, {4194304: "default-0", 4343: "results"}))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    for header in ("role/queue", "name", "state", "active", "done", "failed", "jobs/s"):
        assert header in text
    assert "…" not in text
    assert "default-0" in text
    assert "1234567" in text
    assert "results" in text


def test_the_port_in_use_hint_says_port_0_picks_a_free_one() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUse, match="use port 0 to get a free one"):
            _check_port_free("127.0.0.1", port)


def test_a_configs_queue_options_are_enqueue_options() -> None:
    config = loads_config(
        '[[queues]]\nname = "emails"\nmax_retries = 5\ntimeout = 30.0\n'
        'backoff = { kind = "fixed", base = 2.0 }\n',
        check_imports=False,
    )
    opts = msgspec.convert(config.queue("emails").enqueue_options(), EnqueueOptions)
    assert (opts.queue, opts.max_retries, opts.timeout) == ("emails", 5, 30.0)
    assert (opts.backoff.kind, opts.backoff.base) == ("fixed", 2.0)
