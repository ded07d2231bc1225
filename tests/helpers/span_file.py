"""``[tracing] setup`` for tests: every span a process ends is appended, as a JSON
line, to ``$ACTORQ_TEST_SPANS/<pid>.jsonl`` at once (a simple processor, a flush per
span), so a test reads the spans of ``actorq up``'s processes while they run."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

ENV = "ACTORQ_TEST_SPANS"


def as_json(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "trace_id": ctx.trace_id,
        "span_id": ctx.span_id,
        "parent": span.parent.span_id if span.parent else None,
        "kind": span.kind.name,
        "attributes": dict(span.attributes or {}),
        "events": [e.name for e in span.events],
        "status": span.status.status_code.name,
        "start": span.start_time,
        "end": span.end_time,
        "pid": os.getpid(),
    }


class FileExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as out:
            for span in spans:
                out.write(json.dumps(as_json(span)) + "\n")
        return SpanExportResult.SUCCESS


def setup() -> None:
    provider = TracerProvider()
    path = os.path.join(os.environ[ENV], f"{os.getpid()}.jsonl")
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(path)))
    trace.set_tracer_provider(provider)
