"""The backstop for a job the server stopped delivering: dead-letter it ``max_deliveries``.

A queue actor dead-letters a job on its last allowed delivery (``MAX_DELIVER``) rather
than run it once more. But when the process dies during that very delivery (the job
kills its worker every time, or the dead letter could not be published), the server
delivers it no more, and on the work-queue jobs stream the message would stay for ever:
no record, no dead letter, ``send --wait`` hanging.

The server says when that happens: an advisory on
``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<ns>_jobs.<consumer>``, naming the stream
sequence of the message. Stream ``<ns>_undelivered`` keeps those advisories (provisioned
with the others, before any queue consumer exists, so none is missed while no result
actor runs), and the result actor reads them here. Per advisory::

    read the job's message by its sequence (gone already: it was settled after all)
      -> dead letter ``max_deliveries`` with the original bytes (Nats-Msg-Id per
         sequence, so a redelivered advisory files it once)
      -> outcome ``dead`` on the queue's outcomes subject: the record says why, waiters
         wake, dependent jobs fail (the result actor's usual path)
      -> delete the message from the jobs stream, then ack the advisory

Each step is idempotent, so an advisory whose handler died is simply handled again.
"""

from __future__ import annotations

import contextlib
import logging
import time

import msgspec
import trio

from actorq.constants import RESULTS_DURABLE
from actorq.exceptions import BrokerError, CodecError, NotFound
from actorq.jobs.streams import JobStreams, envelope_problem
from actorq.nats.connection import Connection, JsMsg, PullConsumer
from actorq.wire.messages import (
    DeadLetter,
    ErrorInfo,
    JobEnvelope,
    JobOutcome,
    decode_envelope,
    encode,
)

__all__ = ["MaxDeliveries", "handle_advisory", "serve_undelivered"]

log = logging.getLogger("actorq.results")

#: An advisory that could not be handled (NATS trouble) comes back after this long,
_RETRY_DELAY = 1.0
#: up to this many times.
_GIVE_UP_AFTER = 10


class MaxDeliveries(msgspec.Struct, frozen=True):
    """The server's ``io.nats.jetstream.advisory.v1.max_deliver`` advisory (the fields
    actorq reads)."""

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int = 0


async def serve_undelivered(conn: Connection, streams: JobStreams) -> None:
    """Handle max-deliveries advisories of the namespace's queues until cancelled.

    A user who may not read them (a least-privilege setup without the permissions in
    docs/security.md) gets a warning, and the result actor runs on without it."""
    try:
        consumer = await conn.pull_consumer(streams.undelivered_stream, RESULTS_DURABLE)
    except BrokerError as exc:
        log.warning(
            "result actor: cannot read %s (%s); jobs whose worker died on their last "
            "delivery will stay in the jobs stream", streams.undelivered_stream, exc,
        )  # fmt: skip
        return
    while True:
        try:
            msgs = await consumer.fetch(16, expires=1.0)
        except BrokerError as exc:
            log.warning("result actor: reading max-deliveries advisories failed: %r", exc)
            await trio.sleep(_RETRY_DELAY)
            continue
        for msg in msgs:
            try:
                await _settle(conn, streams, consumer, msg)
            except BrokerError as exc:  # its ack, nak or term: it comes back anyway
                log.warning("result actor: could not settle an advisory: %r", exc)


async def _settle(
    conn: Connection, streams: JobStreams, consumer: PullConsumer, msg: JsMsg
) -> None:
    try:
        advisory = msgspec.json.decode(msg.data, type=MaxDeliveries)
    except msgspec.DecodeError as exc:
        log.warning("result actor: dropping an unreadable advisory: %s", exc)
        await consumer.term(msg)
        return
    try:
        await handle_advisory(conn, streams, advisory)
        await consumer.ack(msg)
    except Exception as exc:
        # Nothing an advisory or the job it names holds may stop the result actor.
        if not isinstance(exc, BrokerError) or msg.num_delivered >= _GIVE_UP_AFTER:
            # Each step is done or refused for good (a user without the permissions
            # of docs/security.md): stop, rather than file the letter again and again.
            log.error(
                "result actor: gave up on message %d of %s (max deliveries) after %d "
                "tries: %r; may this user read, dead-letter, report and delete it "
                "(docs/security.md)?", advisory.stream_seq, advisory.stream,
                msg.num_delivered, exc,
            )  # fmt: skip
            await consumer.term(msg)
            return
        log.warning(
            "result actor: could not dead-letter message %d of %s, will try again: %r",
            advisory.stream_seq, advisory.stream, exc,
        )  # fmt: skip
        await consumer.nak(msg, _RETRY_DELAY)


async def handle_advisory(conn: Connection, streams: JobStreams, advisory: MaxDeliveries) -> None:
    """Dead-letter the job ``advisory`` names and remove it from the jobs stream."""
    seq = advisory.stream_seq
    if advisory.stream != streams.jobs_stream or not advisory.consumer.startswith("q-"):
        return  # not a queue's consumer (the stream's subjects say this never happens)
    queue = advisory.consumer.removeprefix("q-")
    try:
        raw = await conn.jsm("get_msg", streams.jobs_stream, seq)
    except NotFound:
        return  # settled after all (acked late, or handled by an earlier try)
    data: bytes = raw.data or b""
    env: JobEnvelope | None
    try:
        env = decode_envelope(data)
    except CodecError:
        env = None
    if env is not None and (env.queue != queue or envelope_problem(env) is not None):
        env = None  # its id or reply subject cannot be used: filed under its sequence
    job_id = env.id if env is not None else f"seq-{seq}"
    detail = (
        f"delivered {advisory.deliveries} times, the limit: its worker died (or could "
        "not report it) every time, the last one too"
    )
    letter = DeadLetter(
        job_id=job_id,
        queue=queue,
        reason="max_deliveries",
        detail=detail,
        original=data,
        headers=dict(raw.headers or {}),
        failed_at=time.time(),
    )
    await conn.js_publish(
        streams.dead_subject(job_id), encode(letter), msg_id=f"max-deliveries-{seq}"
    )
    if env is not None:
        now = time.time()
        outcome = JobOutcome(
            job_id=env.id,
            queue=env.queue,
            status="dead",
            codec=env.codec,
            attempt=max(1, advisory.deliveries),
            started_at=now,
            finished_at=now,
            worker="result-actor",
            function=env.function,
            enqueued_at=env.enqueued_at,
            metadata=env.options.metadata,
            result_ttl=env.options.result_ttl,
            reply_to=env.reply_to,
            error=ErrorInfo(type="actorq.max_deliveries", message=detail),
        )
        await conn.js_publish(streams.outcome_subject(env.queue), encode(outcome))
    with contextlib.suppress(NotFound):  # deleted by an earlier try
        await conn.jsm("delete_msg", streams.jobs_stream, seq)
    log.error(
        "dead-lettered %s from %s: max_deliveries: %s", job_id, queue, detail,
        extra={"queue": queue, "job_id": job_id, "outcome": "dead"},
    )  # fmt: skip
