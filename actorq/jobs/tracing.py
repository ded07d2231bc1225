"""OpenTelemetry traces of jobs, when ``opentelemetry-api`` is installed (the
``actorq[otel]`` extra) and the application set a tracer provider.

``enqueue`` opens a PRODUCER span ``actorq enqueue QUEUE`` and puts its context in
the job message's NATS headers (W3C ``traceparent``, through OpenTelemetry's
configured propagator). The queue actor that runs the job reads them back and opens a
CONSUMER span ``actorq run FUNCTION`` per attempt, as its child, so one trace covers
the client and the worker, across processes and hosts. An attempt's span ends when
its outcome is reported: a retry is an event ``retry`` (with the delay), a final
failure sets the span's status to ERROR with the exception's summary, a dead letter
is an event ``dead_letter``.

Without the package, or with no tracer provider set, every function here is a no-op
that costs one check, and job messages carry no extra headers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from actorq.nats.delivery import JsMsg
from actorq.wire.messages import JobEnvelope, JobOutcome

try:
    from opentelemetry import propagate, trace
except ImportError:  # the optional extra is not installed
    trace = None  # type: ignore[assignment]
    propagate = None  # type: ignore[assignment]

__all__ = ["AttemptSpans", "enabled", "enqueue_span"]


def enabled() -> bool:
    """Whether traces are recorded: the API is installed and a provider was set."""
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _tracer() -> Any:
    return trace.get_tracer("actorq")


@contextlib.contextmanager
def enqueue_span(queue: str, job_id: str, function: str) -> Iterator[dict[str, str] | None]:
    """Around a job's publish: yields the headers that carry the trace (``None``
    when tracing is off)."""
    if not enabled():
        yield None
        return
    attributes = {
        "messaging.system": "nats", "messaging.destination.name": queue,
        "actorq.job_id": job_id, "actorq.function": function,
    }  # fmt: skip
    with _tracer().start_as_current_span(
        f"actorq enqueue {queue}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield carrier


class AttemptSpans:
    """The open spans of a queue actor's running attempts, by job id."""

    def __init__(self) -> None:
        self._spans: dict[str, Any] = {}

    def start(self, msg: JsMsg, env: JobEnvelope) -> None:
        """An attempt starts: a span, child of the enqueue's (from the message's headers)."""
        if not enabled():
            return
        parent = propagate.extract(msg.headers)
        self._spans[env.id] = _tracer().start_span(
            f"actorq run {env.function}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats", "messaging.destination.name": env.queue,
                "actorq.job_id": env.id, "actorq.function": env.function,
                "actorq.attempt": msg.num_delivered,
            },
        )  # fmt: skip

    def finish(self, outcome: JobOutcome | None) -> None:
        """The attempt's outcome is reported: its span ends."""
        if not self._spans or outcome is None or outcome.status == "running":
            return
        span = self._spans.pop(outcome.job_id, None)
        if span is None:
            return
        span.set_attribute("actorq.outcome", outcome.status)
        err = outcome.error
        summary = f"{err.type}: {err.message}"[:300] if err is not None else ""
        if outcome.status == "retrying":
            span.add_event("retry", {"actorq.retry_in": outcome.retry_in or 0.0})
            span.set_status(trace.Status(trace.StatusCode.ERROR, summary))
        elif outcome.status in ("failed", "dead"):
            if outcome.original is not None or outcome.status == "dead":
                span.add_event("dead_letter")
            span.set_status(trace.Status(trace.StatusCode.ERROR, summary))
        span.end()
