"""Jobs that make spans of their own (tests/jobs/test_tracing.py): each opens span
``user KIND`` and returns the ids of the span that was current when it started (the
attempt's, if the queue actor made it current)."""

from __future__ import annotations

import asyncio

import trio
import trio.lowlevel
from opentelemetry import trace

from actorq.jobs.job_kinds import asyncio_job

tracer = trace.get_tracer("tests.user")


def _current() -> list[int]:
    ctx = trace.get_current_span().get_span_context()
    return [ctx.trace_id, ctx.span_id]


def traced_sync() -> list[int]:
    ids = _current()
    with tracer.start_as_current_span("user sync"):
        pass
    return ids


async def traced_trio() -> list[int]:
    ids = _current()
    with tracer.start_as_current_span("user trio"):
        await trio.lowlevel.checkpoint()
    return ids


@asyncio_job
async def traced_asyncio() -> list[int]:
    ids = _current()
    with tracer.start_as_current_span("user asyncio"):
        await asyncio.sleep(0)
    return ids


def traced_boom() -> None:
    with tracer.start_as_current_span("user boom"):
        raise ValueError("traced kaput")
