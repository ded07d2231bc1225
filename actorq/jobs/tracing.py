"""OpenTelemetry traces of jobs, when ``opentelemetry-api`` is installed (the
``actorq[otel]`` extra) and a tracer provider is set (by the application, or in every
process of ``actorq up`` by the ``[tracing] setup`` hook).

One trace per job, across processes::

    actorq enqueue QUEUE          PRODUCER  client (or the scheduler, for a recurring
    │                                       schedule's job): the publish; its context
    │                                       travels in the job message's NATS headers
    │                                       (W3C ``traceparent``)
    ├── actorq run FUNCTION       CONSUMER  queue actor: one span per attempt, current
    │   │                                   while the job's code runs (async, Trio,
    │   │                                   asyncio, and sync jobs in their thread), so
    │   │                                   the job's own spans nest under it
    │   ├── (the job's own spans)
    │   ├── actorq retry FUNCTION           a failed attempt that will be retried: from
    │   │                                   the failure to its redelivery's due time
    │   └── actorq store FUNCTION CONSUMER  result actor: the outcome made durable (its
    │       │                               context travels in the outcome)
    │       └── actorq dead_letter FUNCTION a final failure's dead letter
    └── actorq dead_letter FUNCTION         queue actor: a job dead-lettered before or
                                            instead of running (undecodable, oversize,
                                            too many deliveries)

An attempt's span ends when its outcome is reported, with the outcome as attribute
``actorq.outcome``; a failure sets its status to ERROR with the exception's summary
(and events ``retry`` or ``dead_letter``).

Without the package, or with no tracer provider set, every function here is a no-op
that costs one check, job messages carry no extra headers and outcomes no context.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import msgspec

from actorq.nats.delivery import JsMsg
from actorq.wire.messages import JobEnvelope, JobOutcome

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # the optional extra is not installed
    trace = None  # type: ignore[assignment]
    propagate = None  # type: ignore[assignment]
    otel_context = None  # type: ignore[assignment]

__all__ = [
    "AttemptSpans",
    "dead_letter_span",
    "enabled",
    "enqueue_span",
    "enqueue_spans",
    "store_spans",
]


def enabled() -> bool:
    """Whether traces are recorded: the API is installed and a provider was set."""
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _tracer() -> Any:
    return trace.get_tracer("actorq")


def _attributes(queue: str, job_id: str, function: str) -> dict[str, Any]:
    return {
        "messaging.system": "nats", "messaging.destination.name": queue,
        "actorq.job_id": job_id, "actorq.function": function,
    }  # fmt: skip


@contextlib.contextmanager
def enqueue_span(
    queue: str, job_id: str, function: str, *, schedule: str | None = None
) -> Iterator[dict[str, str] | None]:
    """Around a job's publish: yields the headers that carry the trace (``None``
    when tracing is off). ``schedule``: the recurring schedule that enqueues it (the
    scheduler's publish, a trace's first span)."""
    if not enabled():
        yield None
        return
    attributes = _attributes(queue, job_id, function)
    if schedule is not None:
        attributes["actorq.schedule"] = schedule
    with _tracer().start_as_current_span(
        f"actorq enqueue {queue}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield carrier


@contextlib.contextmanager
def enqueue_spans(envs: list[JobEnvelope]) -> Iterator[list[dict[str, str]] | None]:
    """Around a batch's publish (``enqueue_many``): a span per job, as
    :func:`enqueue_span`; yields each job's headers (``None`` when tracing is off)."""
    if not enabled():
        yield None
        return
    tracer = _tracer()
    spans = [
        tracer.start_span(
            f"actorq enqueue {env.queue}",
            kind=trace.SpanKind.PRODUCER,
            attributes=_attributes(env.queue, env.id, env.function),
        )
        for env in envs
    ]  # siblings, each a child of the caller's current span (if any)
    carriers: list[dict[str, str]] = []
    for span in spans:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        carriers.append(carrier)
    try:
        yield carriers
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)[:300]))
        raise
    finally:
        for span in spans:
            span.end()


class AttemptSpans:
    """The open spans of a queue actor's running attempts, by job id."""

    def __init__(self) -> None:
        self._spans: dict[str, Any] = {}

    @property
    def open(self) -> bool:
        """Whether any attempt is traced now (one dict check: the queue actor asks it
        before doing anything for traces)."""
        return bool(self._spans)

    def start(self, msg: JsMsg, env: JobEnvelope) -> None:
        """An attempt starts: a span, child of the enqueue's (from the message's
        headers), made the current span of the calling task (the task that runs the
        attempt, and ends with it), so the job's own spans are its children."""
        if not enabled():
            return
        parent = propagate.extract(msg.headers) if msg.headers else None
        attributes = _attributes(env.queue, env.id, env.function)
        attributes["actorq.attempt"] = msg.num_delivered
        span = _tracer().start_span(
            f"actorq run {env.function}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        )
        self._spans[env.id] = span
        otel_context.attach(trace.set_span_in_context(span))

    def finish(self, outcome: JobOutcome | None) -> JobOutcome | None:
        """The attempt's outcome is reported: its span ends. Returns the outcome, with
        the span's context for the result actor when it ended one."""
        if not self._spans or outcome is None or outcome.status == "running":
            return outcome
        span = self._spans.pop(outcome.job_id, None)
        if span is None:
            return outcome
        span.set_attribute("actorq.outcome", outcome.status)
        err = outcome.error
        summary = f"{err.type}: {err.message}"[:300] if err is not None else ""
        if outcome.status == "retrying":
            span.add_event("retry", {"actorq.retry_in": outcome.retry_in or 0.0})
            span.set_status(trace.Status(trace.StatusCode.ERROR, summary))
            _retry_span(span, outcome)
        elif outcome.status in ("failed", "dead"):
            if outcome.original is not None or outcome.status == "dead":
                span.add_event("dead_letter")
            span.set_status(trace.Status(trace.StatusCode.ERROR, summary))
        span.end()
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return msgspec.structs.replace(outcome, trace=carrier)


def _retry_span(attempt: Any, outcome: JobOutcome) -> None:
    """The backoff of a retry: from the failure to the time its redelivery is due."""
    now = time.time_ns()
    delay = outcome.retry_in or 0.0
    attributes = _attributes(outcome.queue, outcome.job_id, outcome.function)
    attributes["actorq.attempt"] = outcome.attempt
    attributes["actorq.retry_in"] = delay
    span = _tracer().start_span(
        f"actorq retry {outcome.function}",
        context=trace.set_span_in_context(attempt),
        attributes=attributes,
        start_time=now,
    )
    span.end(end_time=now + int(delay * 1e9))


@contextlib.contextmanager
def dead_letter_span(
    msg: JsMsg, env: JobEnvelope | None, job_id: str, queue: str, reason: str
) -> Iterator[None]:
    """Around a queue actor's dead letter: a span, child of the job's running attempt
    (the current span) or else of its enqueue (from the message's headers)."""
    if not enabled():
        yield
        return
    current = trace.get_current_span()
    if current.get_span_context().is_valid:
        parent = None  # the attempt's span, current in this task
    else:
        parent = propagate.extract(msg.headers) if msg.headers else None
    function = env.function if env is not None else ""
    attributes = _attributes(queue, job_id, function)
    attributes["actorq.reason"] = reason
    with _tracer().start_as_current_span(
        f"actorq dead_letter {function or queue}", context=parent, attributes=attributes
    ):
        yield


def store_spans(
    traced: list[JobOutcome], started: int, dead_from: int, ended: int, dead: set[str]
) -> None:
    """The result actor stored ``traced`` outcomes (those that carry a trace context)
    in one batch, from ``started`` to ``ended`` (``time.time_ns()``); the dead letters
    of jobs in ``dead`` went out from ``dead_from``. A span per outcome, child of its
    attempt's, and one per dead letter under it."""
    if not enabled():
        return
    tracer = _tracer()
    for outcome in traced:
        attributes = _attributes(outcome.queue, outcome.job_id, outcome.function)
        attributes["actorq.outcome"] = outcome.status
        attributes["actorq.attempt"] = outcome.attempt
        span = tracer.start_span(
            f"actorq store {outcome.function}",
            context=propagate.extract(outcome.trace),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
            start_time=started,
        )
        if outcome.job_id in dead and outcome.status in ("failed", "dead"):
            letter = tracer.start_span(
                f"actorq dead_letter {outcome.function}",
                context=trace.set_span_in_context(span),
                attributes=_attributes(outcome.queue, outcome.job_id, outcome.function),
                start_time=dead_from,
            )
            letter.end(end_time=ended)
        span.end(end_time=ended)
