"""OpenTelemetry: one trace spans the client's enqueue and the worker's attempts; a
retry is an event, a final failure an ERROR status with its dead letter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from actorq.jobs import tracing
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.timeout(90)


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

    enqueue, run = sorted(of(ids["ok"]), key=lambda s: s["name"])
    assert enqueue["name"] == "actorq enqueue default"
    assert run["name"] == "actorq run tests.helpers.jobfuncs:add"
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
