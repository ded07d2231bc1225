"""The result actor: makes outcomes durable, wakes waiters, writes dead letters.

It is the single writer of job records. It pulls outcomes from the outcomes stream
in batches and, per batch:

1. folds each outcome into the job's record (kept in a bounded in-memory cache; a
   cache miss reads the results bucket once);
2. writes the records to the results bucket with pipelined KV publishes (a job's
   ``result_ttl`` becomes a per-message TTL);
3. writes a dead letter, with the original envelope bytes, for each job that failed
   for good;
4. announces each final record on ``<ns>.done.<job id>`` (push: waiters subscribe);
5. acks the outcomes, only now that all of the above is stored.

A ``succeeded`` record is never overwritten by a late outcome of a redelivered copy
of the same job: one result per job id.
"""

from __future__ import annotations

import collections
import logging
import time

import trio

from .connection import Connection, JsMsg, OutMsg, PullConsumer, open_nats
from .exceptions import BrokerTimeout, CodecError
from .job_streams import JobStreams
from .kv import KeyValueStore
from .messages import (
    DeadLetter,
    JobOutcome,
    JobRecord,
    decode_outcome,
    decode_record,
    encode,
)

__all__ = ["ResultActor", "serve_result_actor"]

log = logging.getLogger("actorq.results")

_CACHE_SIZE = 50_000


class ResultActor:
    """State of a running result actor. Use :func:`serve_result_actor`."""

    def __init__(self, conn: Connection, streams: JobStreams, results: KeyValueStore) -> None:
        self.conn = conn
        self.streams = streams
        self.results = results
        self.cache: collections.OrderedDict[str, JobRecord] = collections.OrderedDict()
        self.outcomes_seen = 0

    async def current(self, job_id: str) -> JobRecord | None:
        record = self.cache.get(job_id)
        if record is not None:
            return record
        entry = await self.results.get(job_id)
        return None if entry is None else decode_record(entry.value)

    def remember(self, record: JobRecord) -> None:
        self.cache[record.id] = record
        self.cache.move_to_end(record.id)
        if record.done:
            # Done jobs rarely change again; keep the cache for jobs in flight.
            self.cache.pop(record.id, None)
        while len(self.cache) > _CACHE_SIZE:
            self.cache.popitem(last=False)

    async def prefetch(self, job_ids: set[str]) -> dict[str, JobRecord | None]:
        """Records of the jobs not in the cache, read concurrently (one crossing).

        One read at a time cost a round trip per new job and capped the whole
        pipeline at about 1/RTT jobs per second (bench/throughput.py).
        """
        found: dict[str, JobRecord | None] = {}

        async def one(job_id: str) -> None:
            found[job_id] = await self.current(job_id)

        async with trio.open_nursery() as nursery:
            for job_id in job_ids:
                if job_id not in self.cache:
                    nursery.start_soon(one, job_id)
        return found

    async def process(self, msgs: list[JsMsg]) -> None:
        writes: dict[str, tuple[JobRecord, float | None]] = {}
        dead: list[OutMsg] = []
        outcomes: list[JobOutcome | None] = []
        for msg in msgs:
            try:
                outcomes.append(decode_outcome(msg.data))
            except CodecError as exc:
                outcomes.append(None)
                letter = DeadLetter(
                    queue="?",
                    reason="undecodable_outcome",
                    detail=str(exc),
                    original=msg.data,
                    headers=msg.headers,
                    failed_at=time.time(),
                )
                subject = self.streams.dead_subject(f"seq-{msg.stream_seq}")
                dead.append(OutMsg(subject, encode(letter)))
        stored = await self.prefetch({o.job_id for o in outcomes if o is not None})
        for outcome in outcomes:
            if outcome is None:
                continue
            pending = writes.get(outcome.job_id)
            if pending:
                record: JobRecord | None = pending[0]
            elif outcome.job_id in stored:
                record = stored[outcome.job_id]
            else:
                record = await self.current(outcome.job_id)
            if record is not None and record.status == "succeeded":
                continue  # a late copy of a job that already has its result
            record = record.apply(outcome) if record else JobRecord.from_outcome(outcome)
            writes[record.id] = (record, outcome.result_ttl)
            self.remember(record)
            if outcome.status in ("failed", "dead") and outcome.original is not None:
                dead.append(self._dead_letter(outcome))
        kv_prefix = f"$KV.{self.streams.results_bucket}."
        puts = [
            OutMsg(kv_prefix + rec.id, encode(rec), {"Nats-TTL": f"{int(ttl)}s"} if ttl else None)
            for rec, ttl in writes.values()
        ]
        if puts:
            await self.conn.js_publish_many(puts)
        if dead:
            await self.conn.js_publish_many(dead)
        done = [
            OutMsg(self.streams.done_subject(rec.id), encode(rec))
            for rec, _ in writes.values()
            if rec.done
        ]
        if done:
            await self.conn.publish_many(done)
        await self._consumer.ack_many(msgs)
        self.outcomes_seen += len(msgs)

    def _dead_letter(self, outcome: JobOutcome) -> OutMsg:
        err = outcome.error
        letter = DeadLetter(
            job_id=outcome.job_id,
            queue=outcome.queue,
            reason="max_retries" if outcome.status == "failed" else "dead",
            detail=f"{err.type}: {err.message}\n{err.traceback}" if err else "",
            original=outcome.original or b"",
            failed_at=outcome.finished_at,
        )
        return OutMsg(self.streams.dead_subject(outcome.job_id), encode(letter))

    async def run(self) -> None:
        while True:
            try:
                msgs = await self._consumer.fetch(256, expires=1.0)
            except BrokerTimeout:
                # nats-py raises a bare TimeoutError (not nats.errors.TimeoutError) from
                # fetch when its probe is answered just before the deadline; that is
                # an empty fetch, not a failure (root cause: PullConsumer.fetch).
                continue
            if msgs:
                await self.process(msgs)

    _consumer: PullConsumer


async def serve_result_actor(
    url: str | list[str],
    *,
    namespace: str = "actorq",
    task_status: trio.TaskStatus[ResultActor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the result actor until cancelled (it holds no state that needs draining)."""
    streams = JobStreams(namespace)
    async with open_nats(url, name="actorq-results") as conn:
        await streams.provision(conn)
        results = await conn.kv(streams.results_bucket)
        actor = ResultActor(conn, streams, results)
        actor._consumer = await conn.pull_consumer(streams.outcomes_stream, "results")
        task_status.started(actor)
        await actor.run()
