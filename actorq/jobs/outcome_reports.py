"""A queue actor's outcome reports: batched, published durably, then the jobs settled.

Every attempt of a job ends in a report: its outcome (if any) for the result actor and
what to do with the job's message (ack, nak after a delay, term). Reports are gathered
while the previous batch is on its way and go out together: one crossing to the
connection's asyncio loop publishes every outcome of the batch (pipelined, a few per
message), waits for the stream's acks, and only then settles the jobs' messages. A
job's message is therefore acked only after its outcome is stored.

A "running" report is held a few milliseconds for the job's final one, so a short job
sends one outcome instead of two. An outcome too large for the server's
``max_payload`` is cut down (a long error text) or turned into a failure naming the
size and the limit; it never fails its batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

import msgspec
import trio

from actorq.exceptions import ActorqError
from actorq.jobs.job_log import log_outcomes
from actorq.nats.connection import Connection
from actorq.nats.delivery import JsMsg
from actorq.nats.errors import is_transient
from actorq.nats.loop import Settle
from actorq.process import faults
from actorq.process.job_counts import JobCounts
from actorq.wire.messages import ErrorInfo, JobOutcome, OutcomeBatch, encode

__all__ = ["RECORD_ROOM", "Action", "OutcomeReporter", "Report", "fit_outcome"]

log = logging.getLogger("actorq.queue")

#: What to do with a job's message once its outcome is stored ("none": a progress
#: report, the job still runs).
Action = Literal["ack", "nak", "term", "none"]

#: Tries of an outcome publish before the actor gives up (and restarts).
_PUBLISH_TRIES = 3
#: Seconds an outcome publish keeps being tried while NATS itself is in trouble.
_TRANSIENT_PATIENCE = 30.0
#: Bytes kept free in a message around a result (outcome, record, history, error).
RECORD_ROOM = 64 * 1024
#: Longest error message and traceback an outcome carries (more is cut).
_ERROR_TEXT = 16 * 1024


class Report(msgspec.Struct):
    """One attempt's report: its outcome (if any) and what to do with its message."""

    msg: JsMsg
    outcome: JobOutcome | None
    action: Action
    delay: float | None = None


class OutcomeReporter:
    """Batches a queue actor's reports; :meth:`serve` publishes and settles them."""

    def __init__(
        self,
        conn: Connection,
        subject: str,
        *,
        on_settled: Callable[[int], None],
        counts: JobCounts | None = None,
    ) -> None:
        self.conn = conn
        self.subject = subject
        #: Per-function counters of the settled outcomes (for heartbeats and metrics).
        self.counts = counts if counts is not None else JobCounts("")
        # Called with the number of job messages settled: their slots are free again.
        self._on_settled = on_settled
        self.reports: list[Report] = []
        self._ready = trio.Event()
        self._final_ready = trio.Event()
        self._closing = False

    def report(
        self, msg: JsMsg, outcome: JobOutcome | None, action: Action, delay: float | None = None
    ) -> None:
        """Queue a report; never blocks."""
        self.reports.append(Report(msg, outcome, action, delay))
        self._ready.set()
        if action != "none":
            self._final_ready.set()

    def close(self) -> None:
        """Ask :meth:`serve` to flush what is left and return."""
        self._closing = True
        self._ready.set()
        self._final_ready.set()

    def payload_limit(self) -> int:
        """Largest message the server takes (its ``max_payload``)."""
        return self.conn.max_payload

    async def serve(self) -> None:
        """Publish outcomes in batches (durable), then ack/nak their jobs.

        Returns once :meth:`close` was called and everything is flushed; it is never
        cancelled mid-batch on a graceful stop, so no finished job is lost.
        """
        while True:
            await self._ready.wait()
            if not self._closing and all(r.action == "none" for r in self.reports):
                # Only "running" reports: hold them a moment, so a job that finishes
                # within it sends one outcome instead of two, and its final report
                # does not queue behind a flush of the first.
                with trio.move_on_after(_RUNNING_HOLD):
                    await self._final_ready.wait()
            self._ready = trio.Event()
            self._final_ready = trio.Event()
            batch, self.reports = self.reports, []
            if batch:
                await self.flush(batch)
            if self._closing and not self.reports:
                return

    async def flush(self, batch: list[Report]) -> None:
        """Publish the batch's outcomes, wait for their acks, then settle the jobs.

        One crossing to the asyncio loop for the whole batch. A ``running`` report
        whose job already finished within the same batch is dropped: the final
        outcome carries ``started_at``, and it halves the messages for short jobs.
        """
        finished = {r.outcome.job_id for r in batch if r.outcome and r.action != "none"}
        limit = self.payload_limit()
        outcomes = [
            fit_outcome(r.outcome, limit)
            for r in batch
            if r.outcome is not None and not (r.action == "none" and r.outcome.job_id in finished)
        ]
        outs = [(self.subject, encode(OutcomeBatch(outcomes=chunk))) for chunk in _chunks(outcomes)]
        settle: list[tuple[JsMsg, Settle, float | None]] = [
            (r.msg, r.action, r.delay) for r in batch if r.action != "none"
        ]
        side = self.conn.loop

        async def publish() -> None:
            faults.hit("queue.publish_outcome")
            for ack in await side.js_publish_batch([(s, d, None) for s, d in outs]):
                if isinstance(ack, ActorqError):
                    raise ack

        async def run() -> None:
            if outs:
                # A publish that failed is tried again (a duplicate outcome is
                # harmless: the result actor never lets a late copy undo a final one):
                # a few times for an error of its own, for up to _TRANSIENT_PATIENCE
                # seconds while NATS is in trouble (reconnecting, a cluster electing
                # the stream's leader), after which the actor gives up and restarts.
                started = time.monotonic()
                attempt = 0
                while True:
                    try:
                        await publish()
                        break
                    except Exception as exc:
                        attempt += 1
                        patient = is_transient(exc) and (
                            time.monotonic() - started < _TRANSIENT_PATIENCE
                        )
                        if attempt >= _PUBLISH_TRIES and not patient:
                            raise
                        log.warning("publishing outcomes failed, trying again: %r", exc)
                        await side.sleep(min(0.1 * 2 ** (attempt - 1), 2.0))
                if settle:
                    faults.hit("queue.before_ack")
            await side.settle(settle)

        await self.conn.bridge.run(run)
        self._on_settled(len(settle))
        finals = [r.outcome for r in batch if r.outcome is not None and r.action != "none"]
        log_outcomes(finals)
        self.counts.record(finals)


def fit_outcome(outcome: JobOutcome, limit: int) -> JobOutcome:
    """``outcome``, made to fit in a message of ``limit`` bytes: an error's text is cut,
    and one still too large loses its result and envelope and becomes a failure."""
    err = outcome.error
    weight = 512 + len(outcome.result or b"") + len(outcome.original or b"")
    if err is not None:
        weight += len(err.message) + len(err.traceback)
    if weight <= limit - RECORD_ROOM:
        return outcome  # the usual case: no encoding to measure
    if err is not None and len(err.message) + len(err.traceback) > 2 * _ERROR_TEXT:
        err = msgspec.structs.replace(
            err, message=err.message[:_ERROR_TEXT], traceback=err.traceback[-_ERROR_TEXT:]
        )
        outcome = msgspec.structs.replace(outcome, error=err)
    size = len(encode(outcome))
    if size <= limit - RECORD_ROOM:
        return outcome
    log.error(
        "outcome of job %s is %d bytes, over the limit: reported as failed", outcome.job_id, size
    )
    return msgspec.structs.replace(
        outcome,
        status="failed",
        result=None,
        signature=None,
        original=None,
        error=ErrorInfo(
            type="actorq.oversize",
            message=f"the job's outcome is {size} bytes, over the limit of "
            f"{limit - RECORD_ROOM} bytes (the server's max_payload less room for the record)",
        ),
    )


#: How long "running" reports wait for their job's final outcome before going out.
_RUNNING_HOLD = 0.005

#: Outcomes per report message; well under NATS's 1 MB default payload limit unless
#: results are large, which _chunks also watches.
_OUTCOMES_PER_MESSAGE = 256
_BYTES_PER_MESSAGE = 512 * 1024


def _chunks(outcomes: list[JobOutcome]) -> list[list[JobOutcome]]:
    chunks: list[list[JobOutcome]] = []
    current: list[JobOutcome] = []
    size = 0
    for outcome in outcomes:
        weight = 512 + len(outcome.result or b"") + len(outcome.original or b"")
        if current and (
            len(current) >= _OUTCOMES_PER_MESSAGE or size + weight > _BYTES_PER_MESSAGE
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(outcome)
        size += weight
    if current:
        chunks.append(current)
    return chunks
