"""The queue actor: pulls jobs of one queue, runs them, reports outcomes, then acks.

One or more run per queue, each in its own process under a supervisor (or as a Trio
task, in tests and embedded use). Per job::

    fetch (only as many as there are free slots)
      -> decode envelope (undecodable, or an id or reply subject NATS cannot carry:
         dead letter, term)
      -> cancelled already? (a push-fed set from the cancels bucket) -> outcome cancelled
      -> delivered ``MAX_DELIVER`` times already? -> dead letter ``max_deliveries``
      -> run: Trio coroutine as a task, asyncio coroutine via trio-asyncio,
              plain function in a worker thread; bounded by the job's timeout
      -> outcome published to the outcomes stream (durable), *then* the job is acked,
         or nak'ed with the backoff delay for a retry

While a job runs its lease (the consumer's ack wait) is renewed with ``in_progress``
every third of it, so a long job is never redelivered and a killed worker's job is.
A sync job past its timeout cannot be stopped: its message keeps its slot and lease
until its thread returns (:meth:`QueueActor.fail_after_thread`), and the actor
recycles; a thread outliving ``shutdown_timeout`` ends with the process, and the job
is never handed back while it runs.

Nothing one job does or carries may stop the actor, or its siblings' outcomes with
it: whatever it raises (``SystemExit`` and ``KeyboardInterrupt`` too), a result over
the server's ``max_payload``, a payload no codec can decode, a dead letter that
cannot be published right now: each becomes that job's outcome (or a retry of it).
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec
import psutil
import trio

from actorq.exceptions import ActorqError, CodecError, SignatureError
from actorq.jobs.job_kinds import runs_in_thread
from actorq.jobs.large_payloads import LargePayloads, too_large
from actorq.jobs.outcome_reports import RECORD_ROOM, Action, OutcomeReporter
from actorq.jobs.queue_settings import QueueActorSettings as QueueActorSettings
from actorq.jobs.slots import Slots
from actorq.jobs.streams import (
    MAX_DELIVER,
    JobStreams,
    envelope_problem,
)
from actorq.jobs.thread_pool import SyncJobThreads
from actorq.jobs.tracing import AttemptSpans, dead_letter_span
from actorq.nats.connection import Connection, JsMsg, PullConsumer, open_nats
from actorq.nats.kv import KeyValueStore
from actorq.process import faults
from actorq.process.heartbeat import publish_heartbeats
from actorq.process.job_counts import JobCounts
from actorq.wire.codec import Codec, Signer, get_codec
from actorq.wire.messages import (
    DeadLetter,
    ErrorInfo,
    JobEnvelope,
    JobOutcome,
    decode_envelope,
    decode_record,
    encode,
)
from actorq.wire.signing import EnvelopeError, check_envelope, verify_envelope

__all__ = ["QueueActor", "QueueActorSettings", "StopReason", "serve_queue_actor"]

log = logging.getLogger("actorq.queue")

StopReason = Literal["stopped", "recycle"]


class QueueActor:
    """The state of one running queue actor. Use :func:`serve_queue_actor`."""

    def __init__(self, settings: QueueActorSettings, conn: Connection) -> None:
        self.settings = settings
        self.conn = conn
        self.streams = JobStreams(settings.namespace)
        signer: Signer | None = None
        if settings.signing_key_hex:
            previous = [bytes.fromhex(k) for k in settings.previous_signing_keys_hex]
            signer = Signer(bytes.fromhex(settings.signing_key_hex), previous=previous)
        self._signer = signer
        # Results are signed by these; calls are decoded by unsigned twins, once the
        # whole envelope's signature has been checked (actorq.wire.signing).
        self._codecs: dict[str, Codec] = {}
        self._call_codecs: dict[str, Codec] = {}
        self.slots = Slots(settings.concurrency)
        self.running: dict[str, tuple[trio.CancelScope, JsMsg]] = {}
        #: Timed-out sync jobs whose thread runs on: lease kept, message not settled.
        self.stuck: dict[str, JsMsg] = {}
        self.cancelled: set[str] = set()
        self.reporter = OutcomeReporter(
            conn, self.streams.outcome_subject(settings.queue), on_settled=self.slots.give,
            counts=JobCounts(settings.queue),
        )  # fmt: skip
        self.jobs_done = 0
        self.worker = settings.name or f"{os.uname().nodename}:{os.getpid()}"
        self.stop_fetching = trio.Event()
        self.exit_reason: StopReason = "stopped"
        self.stuck_threads = 0
        # For heartbeats (actorq.process.heartbeat): attempts that failed for good / will retry.
        self.jobs_failed = 0
        self.jobs_retried = 0
        self.last_error = ""
        self._process = psutil.Process()
        self.threads = SyncJobThreads(max_threads=settings.concurrency)
        #: Arguments and results too large for a message, in the object store.
        self.large = LargePayloads(conn, self.streams)
        self.spans = AttemptSpans()

    def codec(self, name: str) -> Codec:
        codec = self._codecs.get(name)
        if codec is None:
            self._codecs[name] = codec = self._build_codec(name, self._signer)
            self._call_codecs[name] = self._build_codec(name, None)
        return codec

    def _build_codec(self, name: str, signer: Signer | None) -> Codec:
        accepted = self.settings.codecs
        if accepted is not None and name not in accepted:
            raise CodecError(
                f"codec {name!r} is not accepted by this worker (accepted: "
                f"{', '.join(accepted)}); send with one of those"
            )
        options: dict[str, Any] = {}
        if name == "safe" and self.settings.safe_allow is not None:
            options["allow"] = self.settings.safe_allow
        return get_codec(name, signing_key=signer, **options)

    # -- the loops -------------------------------------------------------------------

    def request_stop(self, reason: StopReason = "stopped") -> None:
        """Fetch no more jobs; the actor exits once in-flight ones are reported."""
        if not self.stop_fetching.is_set():
            self.exit_reason = reason
            self.stop_fetching.set()
            self.slots.give(0)  # wake a fetch loop waiting for a free slot

    async def fetch_loop(self, consumer: PullConsumer, jobs: trio.Nursery) -> None:
        """Fetch as many jobs as there are free slots, until asked to stop.

        A fetch in flight is never cancelled (messages the server already sent would
        sit unacked for a whole ack wait); what arrives after a stop is nak'ed, so it
        goes straight to another worker.
        """
        while not self.stop_fetching.is_set():
            await self.slots.wait_free(self.stop_fetching)
            if self.stop_fetching.is_set():
                break
            msgs = await consumer.fetch(self.slots.free, expires=1.0)
            if self.stop_fetching.is_set():
                for msg in msgs:
                    await consumer.nak(msg)
                break
            self.slots.take(len(msgs))
            for msg in msgs:
                jobs.start_soon(self.handle, msg)

    async def handle(self, msg: JsMsg) -> None:
        try:
            env = decode_envelope(msg.data)
        except CodecError as exc:
            await self.dead_letter(msg, None, "undecodable", str(exc))
            return
        if env.payload_ref is not None:
            loaded = await self.load_payload(msg, env)
            if loaded is None:
                return
            env = loaded
        try:
            if self._signer is not None:
                verify_envelope(self._signer, env)
            check_envelope(env, queue=self.settings.queue, namespace=self.settings.namespace)
            problem = envelope_problem(env)
            if problem is not None:
                # Its id or reply subject would break the subjects and keys built from it.
                raise EnvelopeError(problem)
        except (SignatureError, EnvelopeError) as exc:
            # Not authentic or not usable: its id and reply_to may be anyone's, so no
            # record or inbox is touched; the dead letter is filed under its stream
            # sequence.
            reason = "bad_signature" if isinstance(exc, SignatureError) else "bad_envelope"
            await self.dead_letter(msg, None, reason, str(exc))
            return
        if env.id in self.cancelled:
            self.report(msg, self.outcome(env, msg, "cancelled", time.time()), "term")
            return
        if msg.num_delivered > 1 and await self.already_done(env.id):
            # Redelivered after its outcome was stored (e.g. the worker died before
            # acking): one result per job id, so do not run it again.
            self.report(msg, None, "ack")
            return
        if msg.num_delivered >= MAX_DELIVER:
            # The last delivery the consumer allows: dead-letter it rather than run
            # it once more, or it would stay in the stream, never delivered again.
            detail = (
                f"delivered {msg.num_delivered} times, the limit ({MAX_DELIVER}): its "
                "worker kept stopping before it could report the job"
            )
            await self.dead_letter(msg, env, "max_deliveries", detail)
            return
        faults.hit("queue.before_run")
        started = time.time()
        try:
            # Inside the try: a job naming a codec this worker does not accept is a
            # dead letter, not a crash of the worker (which would crash-loop on it).
            codec = self.codec(env.codec)
            fn, args, kwargs = self._call_codecs[env.codec].decode_call(env.payload)
        except CodecError as exc:
            await self.dead_letter(msg, env, "undecodable", str(exc))
            return
        except Exception as exc:  # e.g. TypeError from importing a module named ".x"
            await self.dead_letter(msg, env, "undecodable", f"{type(exc).__name__}: {exc}")
            return
        if self.settings.track_started:
            self.report(msg, self.outcome(env, msg, "running", started), "none")
        self.reporter.counts.start(env.function)
        self.spans.start(msg, env)  # OpenTelemetry, when on (actorq.jobs.tracing)
        scope = trio.CancelScope()
        self.running[env.id] = (scope, msg)
        # Set when a sync job's thread returns: until then its lease is kept.
        ended = trio.Event() if runs_in_thread(fn) else None
        error: BaseException | None = None
        value: Any = None
        cancelled = timed_out = False
        limit = env.options.timeout or self.settings.default_timeout
        try:
            with scope:
                if limit:
                    scope.deadline = trio.current_time() + limit
                try:
                    value = await self.call(fn, args, kwargs, ended)
                except BaseException as exc:
                    if _is_cancellation(exc):
                        raise
                    error = exc  # SystemExit, KeyboardInterrupt too: the job's, not ours
            # One scope for both (a scope costs ~4% per job): its deadline is the
            # timeout; cancel_watch records a user's cancel before calling cancel().
            cancelled = scope.cancelled_caught and env.id in self.cancelled
            timed_out = scope.cancelled_caught and not cancelled
        except trio.Cancelled:
            # Shutdown ran out of time: hand the job straight back for redelivery
            # rather than leaving it to its lease; unless its thread runs on: then the
            # lease runs out only after this process exited (and the thread with it).
            if ended is None or ended.is_set():
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await self._consumer.nak(msg)
            raise
        finally:
            del self.running[env.id]
        self.jobs_done += 1
        if cancelled:
            self.report(msg, self.outcome(env, msg, "cancelled", started), "term")
        elif timed_out:
            late = TimeoutError(f"job ran past its timeout of {limit}s")
            if ended is not None and not ended.is_set():
                await self.fail_after_thread(msg, env, started, late, ended)
            else:
                self.fail(msg, env, started, late)
        elif error is not None:
            self.fail(msg, env, started, error)
        else:
            try:
                result = codec.encode_result(value)
            except CodecError as exc:
                self.fail(msg, env, started, exc)
                return
            out = self.outcome(env, msg, "succeeded", started)
            signature = codec.sign_result(result)
            if len(result) <= self.result_limit():
                out = msgspec.structs.replace(out, result=result, signature=signature)
            else:
                ref = await self.store_result(msg, env, started, result)
                if ref is None:
                    return
                out = msgspec.structs.replace(out, result_ref=ref, signature=signature)
            self.report(msg, out, "ack")
        self.check_recycle()

    def fail(self, msg: JsMsg, env: JobEnvelope, started: float, exc: BaseException) -> None:
        self.report(msg, *self.failure(msg, env, started, exc))

    async def fail_after_thread(
        self, msg: JsMsg, env: JobEnvelope, started: float, exc: BaseException, ended: trio.Event
    ) -> None:
        """A sync job past its timeout: its outcome now, its message settled (retry or
        not) only once its thread returned. Until then it keeps its slot and its lease,
        so no retry runs beside it; a thread that outlives the recycling actor's
        ``shutdown_timeout`` ends with the process, and the job comes back after its
        lease."""
        outcome, action, delay = self.failure(msg, env, started, exc)
        self.report(msg, outcome, "none")
        self.stuck[env.id] = msg
        try:
            await ended.wait()
        finally:
            del self.stuck[env.id]
        self.report(msg, None, action, delay)

    def failure(
        self, msg: JsMsg, env: JobEnvelope, started: float, exc: BaseException
    ) -> tuple[JobOutcome, Action, float | None]:
        """The outcome of a failed attempt and what to do with its message."""
        attempt = msg.num_delivered
        info = ErrorInfo.from_exception(exc)
        self.last_error = f"{info.type}: {info.message}"[:500]
        if attempt <= env.options.max_retries:
            self.jobs_retried += 1
            delay = env.options.backoff.delay(attempt)
            out = msgspec.structs.replace(
                self.outcome(env, msg, "retrying", started), error=info, retry_in=delay
            )
            return out, "nak", delay
        self.jobs_failed += 1
        out = msgspec.structs.replace(
            self.outcome(env, msg, "failed", started), error=info, original=msg.data
        )
        return out, "term", None

    async def call(
        self, fn: Callable[..., Any], args: Any, kwargs: Any, ended: trio.Event | None = None
    ) -> Any:
        if getattr(fn, "__actorq_asyncio__", False):
            import trio_asyncio

            loop = await self.asyncio_loop()
            return await trio_asyncio.aio_as_trio(fn, loop=loop)(*args, **kwargs)
        if inspect.iscoroutinefunction(fn):
            return await fn(*args, **kwargs)
        done = False

        def run() -> Any:
            nonlocal done
            try:
                return fn(*args, **kwargs)
            finally:
                done = True

        if self.spans.open:
            # A traced attempt: its span (current in this task) is current in the
            # job's thread too, as trio.to_thread would carry it.
            run = functools.partial(contextvars.copy_context().run, run)
        try:
            result = await self.threads.run(run, ended=ended)
        finally:
            if not done:
                # The thread cannot be stopped; it keeps a slot of the machine busy.
                # Finish what is in flight, then exit so the supervisor starts afresh.
                self.stuck_threads += 1
                self.request_stop("recycle")
        if inspect.isawaitable(result):  # a sync wrapper that returned a coroutine
            return await result
        return result

    def outcome(self, env: JobEnvelope, msg: JsMsg, status: Any, started: float) -> JobOutcome:
        return JobOutcome(
            job_id=env.id,
            queue=env.queue,
            status=status,
            codec=env.codec,
            attempt=msg.num_delivered,
            started_at=started,
            finished_at=time.time(),
            worker=self.worker,
            function=env.function,
            enqueued_at=env.enqueued_at,
            metadata=env.options.metadata,
            result_ttl=env.options.result_ttl,
            reply_to=env.reply_to,
        )

    def report(
        self, msg: JsMsg, outcome: JobOutcome | None, action: Action, delay: float | None = None
    ) -> None:
        """Queue ``outcome`` (if any) for publishing, then ``action`` on the job's message."""
        # Its attempt's span ends; the outcome takes its context to the result actor.
        outcome = self.spans.finish(outcome)
        self.reporter.report(msg, outcome, action, delay)

    async def heartbeat_loop(self) -> None:
        """Renew the lease of every running job every third of the ack wait."""
        while True:
            await trio.sleep(self.settings.ack_wait / 3)
            msgs = [m for _, m in self.running.values()] + list(self.stuck.values())
            if msgs:
                await self._consumer.in_progress(msgs)

    async def cancel_watch(
        self,
        cancels: KeyValueStore,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep ``cancelled`` in step with the cancels bucket; started once caught up."""
        async with cancels.watch() as updates:
            async for entry in updates:
                if entry is None:
                    # Caught up: no job may be fetched before every stored cancel is known.
                    task_status.started()
                    continue
                if entry.operation != "PUT":
                    # A cleared cancel (deleted or purged): the job may run again.
                    self.cancelled.discard(entry.key)
                    continue
                self.cancelled.add(entry.key)
                running = self.running.get(entry.key)
                if running is not None:
                    running[0].cancel()

    async def already_done(self, job_id: str) -> bool:
        entry = await self._results.get(job_id)
        return entry is not None and decode_record(entry.value).status == "succeeded"

    async def dead_letter(
        self,
        msg: JsMsg,
        env: JobEnvelope | None,
        reason: str,
        detail: str,
        *,
        status: Literal["dead", "failed"] = "dead",
    ) -> None:
        """Publish the job's dead letter, then report it ``status`` and term it. A
        publish that fails hands the job back for a later try instead (it is only
        acked once its letter is stored)."""
        job_id = env.id if env is not None else f"seq-{msg.stream_seq}"
        letter = DeadLetter(
            job_id=job_id,
            queue=self.settings.queue,
            reason=reason,
            detail=detail,
            original=msg.data,
            headers=msg.headers,
            failed_at=time.time(),
        )
        try:
            faults.hit("queue.dead_letter")
            with dead_letter_span(msg, env, job_id, self.settings.queue, reason):
                await self.conn.js_publish(self.streams.dead_subject(job_id), encode(letter))
        except Exception as exc:
            log.warning("could not dead-letter %s (%s), will try again: %r", job_id, reason, exc)
            self.report(msg, None, "nak", _DEAD_LETTER_RETRY)
            return
        if env is not None:
            out = msgspec.structs.replace(
                self.outcome(env, msg, status, time.time()),
                error=ErrorInfo(type=f"actorq.{reason}", message=detail),
            )
            self.report(msg, out, "term")
        else:
            self.report(msg, None, "term")
            # No outcome, so no job line (actorq.jobs.job_log) either: say it here.
            log.error(
                "dead-lettered %s from %s: %s: %s", job_id, self.settings.queue, reason, detail,
                extra={"queue": self.settings.queue, "job_id": job_id, "outcome": "dead"},
            )  # fmt: skip

    def result_limit(self) -> int:
        """Largest encoded result that travels in its outcome: the payload limit less
        room for the outcome and the record around it."""
        return self.reporter.payload_limit() - RECORD_ROOM

    async def load_payload(self, msg: JsMsg, env: JobEnvelope) -> JobEnvelope | None:
        """The envelope with its payload read back from the object store, or ``None``
        when the job was settled instead (object gone: dead letter; NATS trouble: nak)."""
        try:
            return await self.large.load_envelope(env)
        except CodecError as exc:
            # Unverified yet when envelopes are signed: then no record is touched.
            known = env if self._signer is None else None
            await self.dead_letter(msg, known, "undecodable", str(exc))
        except ActorqError as exc:
            log.warning("could not read the arguments of job %s, later: %r", env.id, exc)
            self.report(msg, None, "nak", _DEAD_LETTER_RETRY)
        return None

    async def store_result(
        self, msg: JsMsg, env: JobEnvelope, started: float, result: bytes
    ) -> str | None:
        """Put a result too large for its outcome in the object store; its name, or
        ``None`` when the job was settled instead (over ``max_bytes``: ``oversize``; a
        store that failed: the attempt fails, and is retried if it may be)."""
        limit = self.settings.max_bytes
        if len(result) > limit:
            advice = "return less, or store it elsewhere and return a reference"
            detail = too_large("the job's encoded result", len(result), limit, advice)
            await self.dead_letter(msg, env, "oversize", detail, status="failed")
            return None
        try:
            return await self.large.put_result(env.id, result)
        except ActorqError as exc:
            self.fail(msg, env, started, exc)
            return None

    def check_recycle(self) -> None:
        s = self.settings
        if s.recycle_after_jobs is not None and self.jobs_done >= s.recycle_after_jobs:
            self.request_stop("recycle")
        elif s.recycle_above_rss_mb is not None and self.jobs_done % 16 == 0:
            rss_mb = self._process.memory_info().rss / 1e6
            if rss_mb > s.recycle_above_rss_mb:
                self.request_stop("recycle")

    async def asyncio_loop(self) -> Any:
        """The trio-asyncio loop for asyncio jobs, opened on first use.

        Opened lazily: importing trio-asyncio patches asyncio's loop lookup, which
        costs every asyncio call (the NATS thread's too) ~5%, for nothing when a
        queue runs no asyncio jobs.
        """
        if self._aio_ready is None:
            self._aio_ready = trio.Event()
            self._service.start_soon(_host_asyncio_loop, self)
        await self._aio_ready.wait()
        return self._aio_loop

    _consumer: PullConsumer
    _results: KeyValueStore
    _service: trio.Nursery
    _aio_ready: trio.Event | None = None
    _aio_loop: Any = None


async def serve_queue_actor(
    settings: QueueActorSettings,
    *,
    stop: trio.Event | None = None,
    extra: Callable[[Connection, QueueActor], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[QueueActor] = trio.TASK_STATUS_IGNORED,
) -> StopReason:
    """Run a queue actor until ``stop`` is set, it recycles, or it is cancelled.

    On stop it fetches no more, lets in-flight jobs finish up to
    ``settings.shutdown_timeout``, reports them, and returns; jobs still running then
    are left unacked for redelivery (nothing is lost). ``extra(conn, actor)`` runs
    beside it on its connection (the runtime serves its probe actor there).
    """
    for path in reversed(settings.sys_path):
        sys.path.insert(0, path)
    for module in settings.imports:
        importlib.import_module(module)
    streams = JobStreams(settings.namespace)
    async with open_nats(
        settings.url, name=f"actorq-queue-{settings.queue}", **settings.connect.kwargs()
    ) as conn:
        await streams.provision(conn)
        await streams.provision_queue(
            conn, settings.queue, ack_wait=settings.ack_wait,
            max_ack_pending=max(1000, settings.concurrency * 4),
        )  # fmt: skip
        actor = QueueActor(settings, conn)
        actor._consumer = await conn.pull_consumer(
            streams.jobs_stream, streams.consumer_name(settings.queue)
        )
        actor._results = await conn.kv(streams.results_bucket)
        cancels = await conn.kv(streams.cancels_bucket)
        stop = stop if stop is not None else trio.Event()
        async with trio.open_nursery() as service:
            actor._service = service
            service.start_soon(_close_threads_on_exit, actor.threads)
            service.start_soon(actor.heartbeat_loop)
            # Listed by `actorq ps` before it reports ready.
            await service.start(publish_heartbeats, conn, settings.namespace, actor)
            await service.start(actor.cancel_watch, cancels)
            service.start_soon(_forward_stop, stop, actor)
            if extra is not None:
                service.start_soon(extra, conn, actor)
            async with trio.open_nursery() as reporter:
                reporter.start_soon(actor.reporter.serve)
                task_status.started(actor)
                async with trio.open_nursery() as jobs:
                    await actor.fetch_loop(actor._consumer, jobs)
                    # Graceful: in-flight jobs get their time; past it they are nak'ed.
                    jobs.cancel_scope.deadline = trio.current_time() + settings.shutdown_timeout
                # Report everything that finished, then stop. With the server gone
                # the last outcomes may never get out: they get a short while (a
                # restarting server is back within it), not the full 10 s. Nothing is
                # lost: a job is acked only after its outcome is stored, so those
                # whose outcome was not stay unacked and are delivered again.
                actor.reporter.close()
                grace = _REPORT_GRACE if conn.connected else _REPORT_GRACE_DISCONNECTED
                reporter.cancel_scope.deadline = trio.current_time() + grace
            service.cancel_scope.cancel()
        return actor.exit_reason


#: Seconds the last outcomes get to be published on stop; when the connection is down
#: at that moment, the shorter figure: a server restarting may still be back within
#: it, one that is gone no longer holds the stop up for long.
_REPORT_GRACE = 10.0
_REPORT_GRACE_DISCONNECTED = 3.0

#: A dead letter that could not be published is tried again after this many seconds.
_DEAD_LETTER_RETRY = 1.0


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[0] is not None


async def _close_threads_on_exit(threads: SyncJobThreads) -> None:
    try:
        await trio.sleep_forever()
    finally:
        threads.close()


async def _forward_stop(stop: trio.Event, actor: QueueActor) -> None:
    await stop.wait()
    actor.request_stop("stopped")


async def _host_asyncio_loop(actor: QueueActor) -> None:
    import trio_asyncio

    async with trio_asyncio.open_loop() as loop:
        actor._aio_loop = loop
        assert actor._aio_ready is not None
        actor._aio_ready.set()
        await trio.sleep_forever()
