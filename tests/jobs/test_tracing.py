"""OpenTelemetry: one trace spans the client's enqueue, the worker's attempts (current
while the job's code runs, so its own spans nest under them) and the result actor's
store, across processes; a retry and a dead letter are spans (and events) of it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actorq.jobs import tracing
from tests.helpers.paths import ROOT
from tests.helpers.up_harness import run_up, up_env, wait_gone

pytestmark = pytest.mark.timeout(180)


def test_tracing_is_off_without_a_tracer_provider() -> None:
    assert not tracing.enabled()
    with tracing.enqueue_span("default", "j", "m:f") as headers:
        assert headers is None


def test_one_trace_spans_the_enqueue_and_each_attempt(nats_url: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tests.helpers.traced_run", nats_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    first, *rest = out.stdout.splitlines()
    ids = json.loads(first)
    spans = [json.loads(line) for line in rest]

    def of(job_id: str) -> list[dict]:  # type: ignore[type-arg]
        return [s for s in spans if s["attributes"].get("actorq.job_id") == job_id]

    enqueue, run, store = sorted(of(ids["ok"]), key=lambda s: s["name"])
    assert enqueue["name"] == "actorq enqueue default"
    assert run["name"] == "actorq run tests.helpers.jobfuncs:add"
    assert store["name"] == "actorq store tests.helpers.jobfuncs:add"
    assert store["parent"] == run["span_id"]
    # A delayed job: the server copies the trace's headers onto the job it releases.
    late = {s["name"].split()[1]: s for s in of(ids["late"])}
    assert late["run"]["parent"] == late["enqueue"]["span_id"]
    assert late["store"]["parent"] == late["run"]["span_id"]
    # A recurring schedule's job: the scheduler's publish is its trace's first span.
    (tick,) = [s for s in spans if s["name"] == "actorq enqueue default"
               and s["attributes"].get("actorq.schedule") == "traced-tick"]  # fmt: skip
    tick_spans = of(tick["attributes"]["actorq.job_id"])
    assert {s["name"].split()[1]: s["parent"] for s in tick_spans} == {
        "enqueue": None, "run": tick["span_id"],
        "store": next(s["span_id"] for s in tick_spans if s["name"].startswith("actorq run")),
    }  # fmt: skip
    assert run["trace_id"] == enqueue["trace_id"]
    assert run["parent"] == enqueue["span_id"]
    assert run["attributes"]["actorq.outcome"] == "succeeded"
    bad = of(ids["bad"])
    runs = sorted((s for s in bad if s["name"].startswith("actorq run")),
                  key=lambda s: s["attributes"]["actorq.attempt"])  # fmt: skip
    (enq,) = [s for s in bad if s["name"].startswith("actorq enqueue")]
    assert [s["attributes"]["actorq.outcome"] for s in runs] == ["retrying", "failed"]
    assert {s["trace_id"] for s in runs} == {enq["trace_id"]}
    assert runs[0]["events"] == ["retry"]
    assert runs[1]["events"] == ["dead_letter"]
    assert all(s["status"] == "ERROR" for s in runs)


TRACED_UP = """
[[queues]]
name = "default"
concurrency = 4

[scheduler]
enabled = false

[tracing]
setup = "tests.helpers.span_file:setup"
"""


def _spans_in(directory: Path) -> list[dict]:  # type: ignore[type-arg]
    spans = []
    for path in directory.glob("*.jsonl"):
        spans += [json.loads(line) for line in path.read_text().splitlines() if line]
    return spans


def test_one_trace_spans_client_worker_the_jobs_own_span_and_result_actor(
    tmp_path: Path,
) -> None:
    config = tmp_path / "traced.toml"
    config.write_text(TRACED_UP)
    spans_dir = tmp_path / "spans"
    spans_dir.mkdir()
    env = up_env(tmp_path / "nats", ACTORQ_TEST_SPANS=str(spans_dir))
    with run_up(tmp_path, env, config=config) as up:
        up.ready()
        out = subprocess.run(
            [sys.executable, "-m", "tests.helpers.traced_client", up.url],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        client = json.loads(out.stdout)
        ids = client["ids"]
        # The store of the failed job's last attempt is the last span the runtime
        # makes for these jobs; wait (bounded) until it is written.
        deadline = time.monotonic() + 30
        while True:
            server = _spans_in(spans_dir)
            stores = [s for s in server if s["name"].startswith("actorq store")
                      and s["attributes"]["actorq.job_id"] == ids["bad"]]  # fmt: skip
            if len(stores) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        queue_pid = up.pids["default-0"]
        results_pid = up.pids["results"]
        up.close()
    assert wait_gone(up.seen) == set()
    spans = client["spans"] + server

    def of(job_id: str, prefix: str) -> list[dict]:  # type: ignore[type-arg]
        return sorted(
            (s for s in spans if s["name"].startswith(prefix)
             and s["attributes"].get("actorq.job_id") == job_id),
            key=lambda s: s["start"],
        )  # fmt: skip

    (request,) = [s for s in client["spans"] if s["name"] == "client request"]
    for kind in ("sync", "trio", "asyncio", "many"):
        fn = "tests.helpers.traced_jobs:traced_" + ("sync" if kind == "many" else kind)
        (enqueue,) = of(ids[kind], "actorq enqueue")
        (run,) = of(ids[kind], "actorq run")
        (store,) = of(ids[kind], "actorq store")
        # One trace: client -> queue actor -> result actor, three processes.
        assert {enqueue["trace_id"], run["trace_id"], store["trace_id"]} == {request["trace_id"]}
        assert enqueue["parent"] == request["span_id"]
        assert (enqueue["kind"], enqueue["pid"]) == ("PRODUCER", request["pid"])
        assert (run["name"], run["kind"]) == (f"actorq run {fn}", "CONSUMER")
        assert (run["parent"], run["pid"]) == (enqueue["span_id"], queue_pid)
        assert (store["name"], store["parent"]) == (f"actorq store {fn}", run["span_id"])
        assert (store["pid"], store["attributes"]["actorq.outcome"]) == (results_pid, "succeeded")
        # Inside the job, the attempt's span was current: the job's own span nests under it.
        assert client["seen"][kind] == [run["trace_id"], run["span_id"]], kind
        (user,) = [
            s for s in server if s["parent"] == run["span_id"] and s["name"].startswith("user")
        ]
        assert user["name"] == "user " + ("sync" if kind == "many" else kind)
        assert user["pid"] == queue_pid

    # A retry, then a final failure and its dead letter, all in the same trace.
    (enqueue,) = of(ids["bad"], "actorq enqueue")
    runs = of(ids["bad"], "actorq run")
    assert [r["attributes"]["actorq.attempt"] for r in runs] == [1, 2]
    assert all(r["parent"] == enqueue["span_id"] and r["status"] == "ERROR" for r in runs)
    (retry,) = of(ids["bad"], "actorq retry")
    assert retry["parent"] == runs[0]["span_id"]
    assert retry["attributes"]["actorq.retry_in"] == 0.05
    stores = of(ids["bad"], "actorq store")
    assert [(s["parent"], s["attributes"]["actorq.outcome"]) for s in stores] == [
        (runs[0]["span_id"], "retrying"), (runs[1]["span_id"], "failed")
    ]
    (letter,) = of(ids["bad"], "actorq dead_letter")
    assert (letter["parent"], letter["pid"]) == (stores[1]["span_id"], results_pid)
    users = [s for s in server if s["name"] == "user boom"]
    assert sorted(u["parent"] for u in users) == sorted(r["span_id"] for r in runs)
    trace_ids = {s["trace_id"] for s in (enqueue, *runs, retry, *stores, letter, *users)}
    assert trace_ids == {request["trace_id"]}
