"""The result actor: makes outcomes durable, wakes waiters, writes dead letters.

It pulls outcomes from the outcomes stream in batches and, per batch:

1. folds each job's outcomes into its record;
2. writes the records to the results bucket, all at once, each write conditional on
   the revision it was built from (``Nats-Expected-Last-Subject-Sequence``). The
   revision of a record this actor wrote last is cached, so the usual write needs no
   read; a conflict (a record written elsewhere, or a cold cache after a restart)
   re-reads that one record and folds again. So several result actors can share the
   work without ever losing an update, and a job's ``result_ttl`` becomes a
   per-message TTL;
3. writes a dead letter, with the original envelope bytes, for each job that failed
   for good;
4. sends each final record to the enqueuing client's inbox (push: its waiters wake;
   anyone else waits on a KV watch of the record);
5. registers jobs that wait for others (:class:`WaitForParents`, which travels on
   the same stream) and releases or fails the children of jobs that just finished
   (:mod:`actorq.jobs.dependencies`; a set lookup per final record when none wait);
6. acks each outcome message, only now that all of the above is stored. The
   consumer acks explicitly, message by message: a batch that failed is nak'ed and
   comes back, and no later ack can cover it (an "all up to" ack once lost results).

A ``succeeded`` record is never overwritten by a late outcome of a redelivered copy
of the same job: one result per job id.

The per-batch work has no user code, so it runs entirely on the connection's asyncio
loop (no Trio crossing per batch); Trio only owns its lifetime.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeGuard

import msgspec
import trio

from actorq.constants import (
    DEFAULT_NAMESPACE,
    DEFAULT_URL,
    LEGACY_RESULTS_DURABLE,
    RESULTS_DURABLE,
)
from actorq.exceptions import ActorqError, BrokerError, ConfigError, Conflict, NotFound
from actorq.jobs.dependencies import DependencyTracker
from actorq.jobs.streams import JobStreams, check_job_id, subject_problem
from actorq.jobs.tracing import store_spans
from actorq.jobs.undelivered import serve_undelivered
from actorq.nats.connection import Connection, open_nats
from actorq.nats.delivery import JsMsg
from actorq.nats.errors import is_transient
from actorq.nats.loop import LoopKv, LoopPull, LoopSide, Settle
from actorq.nats.options import ConnectOptions
from actorq.process import faults
from actorq.process.heartbeat import publish_heartbeats
from actorq.wire.messages import (
    DeadLetter,
    JobOutcome,
    JobRecord,
    OutcomeBatch,
    WaitForParents,
    decode_record,
    decode_result_input,
    encode,
)
from actorq.wire.signing import inbox_prefix

__all__ = ["ResultActor", "ResultActorSettings", "serve_result_actor"]

log = logging.getLogger("actorq.results")

_CACHE_SIZE = 50_000
_BATCH = 32  # messages; each may carry up to 256 outcomes
#: A failed batch comes back after this many seconds (nak delay).
_RETRY_DELAY = 0.5
#: Deliveries of a failing batch after which its messages are retried one by one.
_ISOLATE_AFTER = 3
#: Deliveries after which one message that still cannot be stored is dead-lettered.
_GIVE_UP_AFTER = 5


def _outcome_problem(outcome: JobOutcome) -> str | None:
    """Why ``outcome`` cannot be stored or announced (its id is a key, its reply_to a
    subject), or ``None``. Queue actors check envelopes first; this guards the actor
    against whatever else publishes on the outcomes stream."""
    try:
        check_job_id(outcome.job_id)
    except ConfigError as exc:
        return str(exc)
    if outcome.reply_to is not None:
        return subject_problem(outcome.reply_to)
    return None


def fold(
    record: JobRecord | None, outcomes: list[JobOutcome]
) -> tuple[JobRecord | None, list[JobOutcome]]:
    """Apply outcomes in order; returns the new record (``None``: nothing to write)
    and the outcomes that ended a job for good (to dead-letter)."""
    changed = False
    final_failures: list[JobOutcome] = []
    for outcome in outcomes:
        if record is not None and record.status == "succeeded":
            continue  # a late copy of a job that already has its result
        if record is not None and record.done and outcome.attempt <= record.attempts:
            # A stale or repeated report of an attempt already settled (a batch that
            # failed once comes back after later ones): it must not reopen the job.
            continue
        record = record.apply(outcome) if record else JobRecord.from_outcome(outcome)
        changed = True
        if outcome.status in ("failed", "dead") and outcome.original is not None:
            final_failures.append(outcome)
    return (record if changed else None), final_failures


class ResultActor:
    """State of a running result actor. Use :func:`serve_result_actor`."""

    def __init__(
        self, side: LoopSide, streams: JobStreams, pull: LoopPull, kv: LoopKv, deps_kv: LoopKv
    ) -> None:
        self.side = side
        self.streams = streams
        self._pull = pull
        self._kv = kv
        self._kv_prefix = kv.subject_prefix
        # job id -> (record, its revision in the bucket), for jobs still in flight.
        self.cache: collections.OrderedDict[str, tuple[JobRecord, int]] = collections.OrderedDict()
        self.outcomes_seen = 0
        self.conflicts = 0
        self.deps = DependencyTracker(
            side, deps_kv, kv, streams, self.update_record, self._announce
        )

    # -- asyncio side: the hot loop ---------------------------------------------------

    async def run(self) -> None:
        """Fetch and process outcome batches forever (runs on the asyncio loop)."""
        while True:
            msgs = await self._pull.fetch(_BATCH, expires=1.0)
            if not msgs:
                continue
            await self.settle(msgs)

    async def settle(self, msgs: list[JsMsg]) -> None:
        """Process a batch, then ack each of its messages, only now that all it owed is
        stored. A batch that failed is nak'ed, message by message, and comes back soon;
        nothing later can ack it by accident (the consumer acks explicitly).

        Nothing a message carries may stop the actor: a batch that keeps failing is
        retried one message at a time, so one bad message cannot hold the others, and
        a message that still fails for a reason other than NATS trouble is moved to
        the dead-letter stream (``unstorable_outcome``)."""
        try:
            await self.process(msgs)
        except Exception as exc:
            tries = max(m.num_delivered for m in msgs)
            if len(msgs) > 1 and tries >= _ISOLATE_AFTER:
                for msg in msgs:
                    await self.settle([msg])
                return
            if len(msgs) == 1 and tries >= _GIVE_UP_AFTER and not is_transient(exc):
                await self._give_up(msgs[0], exc)
                return
            log.warning("result actor: batch of %d failed, will retry: %r", len(msgs), exc)
            await self._settle_each(msgs, "nak")
            return
        faults.hit("result.before_ack")
        await self._settle_each(msgs, "ack")

    async def _settle_each(self, msgs: list[JsMsg], action: Settle) -> None:
        """Ack (or nak, to come back after a short delay) each message on its own."""
        delay = _RETRY_DELAY if action == "nak" else None
        try:
            await self.side.settle([(m, action, delay) for m in msgs])
        except ActorqError as exc:  # connection trouble: unacked messages come back anyway
            log.warning("result actor: could not %s %d messages: %r", action, len(msgs), exc)

    async def _give_up(self, msg: JsMsg, exc: Exception) -> None:
        seq = msg.stream_seq
        letter = DeadLetter(
            queue="?",
            reason="unstorable_outcome",
            detail=f"{type(exc).__name__}: {exc}",
            original=msg.data,
            headers=msg.headers,
            failed_at=time.time(),
        )
        try:
            await self.side.js_publish(self.streams.dead_subject(f"outcome-{seq}"), encode(letter))
        except ActorqError as again:
            log.warning("result actor: could not dead-letter outcome %d: %r", seq, again)
            await self._settle_each([msg], "nak")
            return
        log.error("result actor: outcome message %d dead-lettered: %r", seq, exc)
        await self._settle_each([msg], "ack")

    async def process(self, msgs: list[JsMsg]) -> None:
        started = time.time_ns()
        by_job: dict[str, list[JobOutcome]] = {}
        dead: list[tuple[str, bytes]] = []
        waits: list[WaitForParents] = []
        traced: list[JobOutcome] = []  # outcomes of traced attempts (actorq.jobs.tracing)
        count = 0
        for msg in msgs:
            try:
                message = decode_result_input(msg.data)
            except Exception as exc:
                seq = msg.stream_seq
                letter = DeadLetter(
                    queue="?",
                    reason="undecodable_outcome",
                    detail=str(exc),
                    original=msg.data,
                    headers=msg.headers,
                    failed_at=time.time(),
                )
                dead.append((self.streams.dead_subject(f"outcome-{seq}"), encode(letter)))
                continue
            if isinstance(message, WaitForParents):
                waits.append(message)
                continue
            outcomes = message.outcomes if isinstance(message, OutcomeBatch) else [message]
            count += len(outcomes)
            for outcome in outcomes:
                problem = _outcome_problem(outcome)
                if problem is not None:
                    dead.append(self._bad_outcome(outcome, problem))
                    continue
                by_job.setdefault(outcome.job_id, []).append(outcome)
                if outcome.trace:
                    traced.append(outcome)

        written = await self.store_all(by_job)
        notices: list[tuple[str, bytes]] = []
        parents_done: list[JobRecord] = []
        parents = self.deps.parents
        for (record, failures), outs in zip(written, by_job.values(), strict=True):
            dead.extend(self._dead_letter(o) for o in failures)
            if record is not None and record.done:
                reply_to = next((o.reply_to for o in outs if o.reply_to), None)
                if self._may_announce(reply_to):
                    notices.append((reply_to, encode(record)))
                if record.id in parents:
                    parents_done.append(record)
        dead_from = time.time_ns()
        if dead:
            for ack in await self.side.js_publish_batch([(s, d, None) for s, d in dead], within=30):
                if isinstance(ack, ActorqError):
                    raise ack
        if traced:
            lettered = {o.job_id for _, failures in written for o in failures}
            store_spans(traced, started, dead_from, time.time_ns(), lettered)
        for subject, data in notices:
            if not faults.hit("result.notify"):
                await self.side.publish(subject, data)
        if notices:
            # Let nats-py's flusher write the wake-ups now, ahead of the dependency
            # steps and the acks (which would otherwise go first, in one write).
            await self.side.sleep(0)
        if waits or parents_done:
            finals = {r.id: r for r, _ in written if r is not None and r.done}
            for record in parents_done:
                await self._guarded(self.deps.parent_done(record), record.id)
            for wait in waits:
                await self._guarded(self.deps.register(wait, finals), wait.job_id)
        self.outcomes_seen += count

    def _write_headers(self, revision: int, ttl: float | None) -> dict[str, str]:
        headers = {"Nats-Expected-Last-Subject-Sequence": str(revision)}
        if ttl:
            headers["Nats-TTL"] = f"{int(ttl)}s"
        return headers

    async def store_all(
        self, by_job: dict[str, list[JobOutcome]]
    ) -> list[tuple[JobRecord | None, list[JobOutcome]]]:
        """Fold and write every job's outcomes: one pipelined batch of conditional
        writes from cached revisions; each conflict then goes through :meth:`store`."""
        folded: list[tuple[JobRecord | None, list[JobOutcome]]] = []
        items = []
        for job_id, outcomes in by_job.items():
            base, revision = self.cache.get(job_id, (None, 0))
            record, failures = fold(base, outcomes)
            folded.append((record, failures))
            if record is not None:
                ttl = next((o.result_ttl for o in reversed(outcomes) if o.result_ttl), None)
                items.append(
                    (self._kv_prefix + job_id, encode(record), self._write_headers(revision, ttl))
                )
        faults.hit("result.store")
        acks = await self.side.js_publish_batch(items, within=30)
        out: list[tuple[JobRecord | None, list[JobOutcome]]] = []
        results = iter(acks)
        for (job_id, outcomes), (record, failures) in zip(by_job.items(), folded, strict=True):
            if record is None:
                out.append((None, []))
                continue
            ack = next(results)
            if isinstance(ack, Conflict):
                self.conflicts += 1
                out.append(await self.store(job_id, outcomes, reread=True))
            elif isinstance(ack, ActorqError):
                raise ack
            else:
                self._remember(record, ack.seq)
                out.append((record, failures))
        return out

    async def store(
        self, job_id: str, outcomes: list[JobOutcome], *, reread: bool = False
    ) -> tuple[JobRecord | None, list[JobOutcome]]:
        """Fold and write one job's outcomes, retrying on a revision conflict."""
        if reread:
            base, revision = await self._read(job_id)
        else:
            base, revision = self.cache.get(job_id, (None, 0))
        ttl = next((o.result_ttl for o in reversed(outcomes) if o.result_ttl), None)
        for _ in range(10):
            record, failures = fold(base, outcomes)
            if record is None:
                return None, []
            headers = self._write_headers(revision, ttl)
            try:
                ack = await self.side.js_publish(
                    self._kv_prefix + job_id, encode(record), headers=headers
                )
            except Conflict:
                self.conflicts += 1
                base, revision = await self._read(job_id)
                continue
            self._remember(record, ack.seq)
            return record, failures
        raise BrokerError(f"record {job_id} kept changing under the result actor")

    async def update_record(
        self, job_id: str, change: Callable[[JobRecord | None], JobRecord | None]
    ) -> JobRecord | None:
        """Write ``change(current record)`` conditionally (``None``: leave it); retries
        on a conflict. Returns what was written, or ``None``."""
        for _ in range(10):
            base, revision = await self._read(job_id)
            record = change(base)
            if record is None:
                return None
            try:
                ack = await self.side.js_publish(
                    self._kv_prefix + job_id, encode(record),
                    headers=self._write_headers(revision, None),
                )  # fmt: skip
            except Conflict:
                self.conflicts += 1
                continue
            self._remember(record, ack.seq)
            return record
        raise BrokerError(f"record {job_id} kept changing under the result actor")

    async def _guarded(self, step: Awaitable[None], job_id: str) -> None:
        """Run a dependency step; NATS trouble retries the batch, anything else (bytes
        this version cannot read) is logged and skipped so outcomes keep flowing."""
        try:
            await step
        except BrokerError:
            raise
        except Exception:
            log.exception("result actor: dependency step for job %s failed; skipped", job_id)

    def _may_announce(self, reply_to: str | None) -> TypeGuard[str]:
        """A record goes only to a client inbox of this namespace, never elsewhere."""
        if not reply_to:
            return False
        if reply_to.startswith(inbox_prefix(self.streams.ns.name)):
            return True
        log.warning("result actor: reply_to %r is outside the inbox prefix; not sent", reply_to)
        return False

    async def _announce(self, record: JobRecord, reply_to: str | None) -> None:
        if self._may_announce(reply_to):
            await self.side.publish(reply_to, encode(record))

    async def _read(self, job_id: str) -> tuple[JobRecord | None, int]:
        # A deleted or purged key still has a revision: the one the next conditional
        # write must name.
        entry = await self._kv.get_any(job_id)
        if entry is None:
            return None, 0
        if entry.operation != "PUT":
            return None, entry.revision
        return decode_record(entry.value), entry.revision

    def _remember(self, record: JobRecord, revision: int) -> None:
        if record.done:
            # Done jobs rarely change again; keep the cache for jobs in flight.
            self.cache.pop(record.id, None)
            return
        self.cache[record.id] = (record, revision)
        self.cache.move_to_end(record.id)
        while len(self.cache) > _CACHE_SIZE:
            self.cache.popitem(last=False)

    def _bad_outcome(self, outcome: JobOutcome, problem: str) -> tuple[str, bytes]:
        """A dead letter for an outcome whose id or reply subject NATS cannot carry."""
        letter = DeadLetter(
            queue=outcome.queue,
            reason="bad_outcome",
            detail=problem,
            original=encode(outcome),
            failed_at=time.time(),
        )
        return self.streams.dead_subject(f"outcome-{uuid.uuid4().hex}"), encode(letter)

    def _dead_letter(self, outcome: JobOutcome) -> tuple[str, bytes]:
        err = outcome.error
        letter = DeadLetter(
            job_id=outcome.job_id,
            queue=outcome.queue,
            reason="max_retries" if outcome.status == "failed" else "dead",
            detail=f"{err.type}: {err.message}\n{err.traceback}" if err else "",
            original=outcome.original or b"",
            failed_at=outcome.finished_at,
        )
        return self.streams.dead_subject(outcome.job_id), encode(letter)


async def serve_result_actor(
    url: str | list[str],
    *,
    namespace: str = DEFAULT_NAMESPACE,
    connect: ConnectOptions | None = None,
    extra: Callable[[Connection, ResultActor], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[ResultActor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the result actor until cancelled (it holds no state that needs draining)."""
    streams = JobStreams(namespace)
    options = connect.kwargs() if connect is not None else {}
    async with open_nats(url, name="actorq-results", **options) as conn:
        await streams.provision(conn)
        side = conn.loop
        pull = await conn.bridge.run(side.pull, streams.outcomes_stream, RESULTS_DURABLE)
        await _retire_legacy_consumer(conn, streams)
        kv = await conn.bridge.run(side.kv, streams.results_bucket)
        deps_kv = await conn.bridge.run(side.kv, streams.deps_bucket)
        actor = ResultActor(side, streams, pull, kv, deps_kv)
        await conn.bridge.run(actor.deps.load)
        async with trio.open_nursery() as nursery:
            # Listed by `actorq ps` before it reports ready.
            await nursery.start(
                functools.partial(publish_heartbeats, conn, namespace, role="results")
            )
            task_status.started(actor)
            if extra is not None:
                nursery.start_soon(extra, conn, actor)
            nursery.start_soon(serve_undelivered, conn, streams)
            await conn.bridge.run(actor.run)
            nursery.cancel_scope.cancel()


async def _retire_legacy_consumer(conn: Connection, streams: JobStreams) -> None:
    """Delete the "ack all up to" consumer of older versions, once its successor exists
    (which then holds every outcome the old one had not acked)."""
    try:
        await conn.jsm("delete_consumer", streams.outcomes_stream, LEGACY_RESULTS_DURABLE)
    except NotFound:
        pass
    except BrokerError as exc:  # not allowed (a least-privilege user): housekeeping only
        log.warning(
            "result actor: could not retire the old consumer %r of %s: %s",
            LEGACY_RESULTS_DURABLE, streams.outcomes_stream, exc,
        )  # fmt: skip


class ResultActorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a result actor process needs, passed to it as JSON."""

    url: list[str] = msgspec.field(default_factory=lambda: [DEFAULT_URL])
    namespace: str = DEFAULT_NAMESPACE
    #: How to connect (auth, TLS); secrets filled in by ``actorq up`` from the environment.
    connect: ConnectOptions = ConnectOptions()
