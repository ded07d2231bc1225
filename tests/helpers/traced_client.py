"""The client side of tests/jobs/test_tracing.py's trace across processes: enqueues
traced jobs to a running ``actorq up`` under a span of its own, waits for their
results, and prints one JSON object: the job ids, what each job saw as its current
span, and the spans this process ended (the SDK's in-memory exporter)."""

from __future__ import annotations

import contextlib
import json
import sys

import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import actorq
from actorq import JobFailed, RetryBackoff
from tests.helpers import traced_jobs
from tests.helpers.span_file import as_json


async def main(url: str) -> dict[str, object]:
    tracer = trace.get_tracer("tests.client")
    async with actorq.open_client(url) as client:
        with tracer.start_as_current_span("client request"):
            jobs = {
                "sync": await client.enqueue(traced_jobs.traced_sync),
                "trio": await client.enqueue(traced_jobs.traced_trio),
                "asyncio": await client.enqueue(traced_jobs.traced_asyncio),
            }
            fast = RetryBackoff(kind="fixed", base=0.05, jitter=False)
            bad = await client.options(max_retries=1, backoff=fast).enqueue(
                traced_jobs.traced_boom
            )
            (many,) = await client.enqueue_many([(traced_jobs.traced_sync, (), {})])
        seen = {kind: await job.result(timeout=60) for kind, job in jobs.items()}
        seen["many"] = await many.result(timeout=60)
        with contextlib.suppress(JobFailed):
            await bad.result(timeout=60)
    ids = {kind: job.id for kind, job in jobs.items()}
    return {"ids": {**ids, "bad": bad.id, "many": many.id}, "seen": seen}


if __name__ == "__main__":
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    out = trio.run(main, sys.argv[1])
    out["spans"] = [as_json(s) for s in exporter.get_finished_spans()]
    print(json.dumps(out))
