"""Runs one traced job against an in-process runtime and prints the finished spans as
JSON lines (tests/jobs/test_tracing.py): a process of its own, since OpenTelemetry's
tracer provider is set once per process."""

from __future__ import annotations

import contextlib
import json
import sys

import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actorq import JobFailed, RetryBackoff
from tests.helpers import jobfuncs
from tests.helpers.scheduler_harness import eventually, open_scheduled_runtime


async def main(url: str, exporter: InMemorySpanExporter) -> None:
    async with open_scheduled_runtime(url) as (rt, _):
        ok = await rt.client.enqueue(jobfuncs.add, 2, 3)
        assert await ok.result(timeout=30) == 5
        fast = RetryBackoff(kind="fixed", base=0.05, jitter=False)
        bad = await rt.client.options(max_retries=1, backoff=fast).enqueue(jobfuncs.boom, "x")
        with contextlib.suppress(JobFailed):
            await bad.result(timeout=30)
        late = await rt.client.enqueue_in(0.5, jobfuncs.add, 1, 1)  # the server releases it
        assert await late.result(timeout=30) == 2
        # A recurring schedule's job: its trace starts at the scheduler.
        await rt.client.schedule("traced-tick", jobfuncs.add, 2, 2, every=1, max_runs=1)

        def stored() -> bool:  # its result actor span is the last of its trace
            return any(
                s.name.startswith("actorq store")
                and str((s.attributes or {}).get("actorq.job_id", "")).startswith("traced-tick-")
                for s in exporter.get_finished_spans()
            )

        with trio.fail_after(30):
            await eventually(stored)
    print(json.dumps({"ok": ok.id, "bad": bad.id, "late": late.id}))


if __name__ == "__main__":
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    trio.run(main, sys.argv[1], exporter)
    for span in exporter.get_finished_spans():
        ctx = span.get_span_context()
        print(json.dumps({
            "name": span.name,
            "trace_id": ctx.trace_id,
            "span_id": ctx.span_id,
            "parent": span.parent.span_id if span.parent else None,
            "attributes": dict(span.attributes or {}),
            "events": [e.name for e in span.events],
            "status": span.status.status_code.name,
        }))
