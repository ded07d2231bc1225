"""The async client (Trio): enqueue jobs, wait for results, look up, cancel, requeue, purge.

Example::

    async with actorq.open_client("nats://127.0.0.1:4222") as client:
        job = await client.enqueue(add, 1, 2)
        assert await job.result(timeout=10) == 3

        # Job options never mix with the function's own keyword arguments:
        job = await client.options(queue="emails", max_retries=5).enqueue(send, to="a@b")

        # Later, after others, or again and again (see docs/scheduling.md):
        await client.enqueue_in(timedelta(minutes=5), remind, user)
        report = await client.options(depends_on=[a.id, b.id]).enqueue(summarize)
        await client.schedule("nightly", backup, cron="0 3 * * *", tz="Europe/Paris")
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import msgspec
import trio

from actorq.constants import DEFAULT_NAMESPACE, DEFAULT_QUEUE, DEFAULT_URL
from actorq.exceptions import (
    ActorqError,
    BrokerError,
    CodecError,
    Conflict,
    JobCancelled,
    JobFailed,
    KeyExists,
    NotFound,
    UsageError,
)
from actorq.jobs.dead_letters import DeadLetterVerbs
from actorq.jobs.dependencies import check_parents
from actorq.jobs.large_payloads import LargePayloads
from actorq.jobs.options import (
    BoundEnqueue,
    EnqueueOptions,
    due_in,
)
from actorq.jobs.result_waits import ResultWaits
from actorq.jobs.schedules import ScheduleBook, ScheduleVerbs, at_header, to_timestamp
from actorq.jobs.streams import DEFAULT_MAX_BYTES, JobStreams, check_job_id, check_queue_name
from actorq.jobs.tracing import enqueue_span, enqueue_spans
from actorq.nats.connection import Connection, OutMsg, open_nats
from actorq.nats.kv import KeyValueStore
from actorq.nats.local_credentials import resolve_local
from actorq.process import faults
from actorq.wire.codec import Codec, Signer, as_signer, function_path, get_codec
from actorq.wire.messages import (
    CancelJob,
    JobEnvelope,
    JobOptions,
    JobRecord,
    JobStatus,
    WaitForParents,
    WaitingJob,
    decode_envelope,
    encode,
)
from actorq.wire.signing import sign_envelope

log = logging.getLogger("actorq.client")

__all__ = ["Client", "Job", "open_client"]


class Job:
    """A handle on an enqueued job. Cheap: holds only its id and queue."""

    __slots__ = ("_via_inbox", "client", "deduplicated", "id", "queue")

    def __init__(
        self,
        client: Client,
        job_id: str,
        queue: str,
        *,
        deduplicated: bool = False,
        via_inbox: bool = False,
    ):
        self.client = client
        self.id = job_id
        self.queue = queue
        #: True when this enqueue found the id already used and enqueued nothing.
        self.deduplicated = deduplicated
        # The final record is announced on this client's inbox (it enqueued the job).
        self._via_inbox = via_inbox

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, queue={self.queue!r})"

    async def record(self) -> JobRecord | None:
        """Everything stored about the job, or ``None`` while it has no record yet."""
        return await self.client.get_record(self.id)

    async def status(self) -> JobStatus:
        """``scheduled``, ``waiting``, ``queued``, ``running``, ``succeeded``, ``failed``, ..."""
        return await self.client.status(self.id)

    async def cancel(self) -> None:
        """Cancel the job: it will not run, or stops if it is running (async jobs)."""
        await self.client.cancel(self.id)

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Wait (push-woken, no polling) for the job's result and return it.

        Raises :class:`~actorq.JobFailed` (with the remote type, message and
        traceback) when it failed, :class:`~actorq.JobCancelled` when cancelled, and
        :class:`~actorq.JobTimeout` when ``timeout`` seconds pass first.
        """
        record = await self.client.wait(self.id, timeout=timeout, via_inbox=self._via_inbox)
        return self.client.unwrap(record)


class Client(ResultWaits, ScheduleVerbs, DeadLetterVerbs):
    """The async job-queue client. Get one from :func:`open_client`.

    Recurring schedules: :meth:`schedule`, :meth:`schedules`, :meth:`pause_schedule`,
    :meth:`resume_schedule`, :meth:`delete_schedule` (from :class:`ScheduleVerbs`).
    """

    def __init__(
        self,
        conn: Connection,
        streams: JobStreams,
        codec: Codec,
        *,
        signing_key: bytes | Signer | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.conn = conn
        self.streams = streams
        self.codec = codec
        #: Largest encoded arguments an enqueue sends (through the object store).
        self.max_bytes = max_bytes
        #: Arguments and results too large for a message, in the object store.
        self.large = LargePayloads(conn, streams)
        self._signing_key = signing_key
        #: Signs every envelope this client sends (``None``: unsigned).
        self.signer = as_signer(signing_key)
        self._results: KeyValueStore | None = None
        self._cancels: KeyValueStore | None = None
        self._claims: KeyValueStore | None = None
        self._deps: KeyValueStore | None = None
        self._schedules: KeyValueStore | None = None
        self._book = ScheduleBook(self)
        self._codecs: dict[str, Codec] = {codec.name: codec}
        self._inbox: str | None = None
        self._init_waits()
        #: Queues known to have a consumer (checked once each, see :meth:`served`).
        self._served: set[str] = set()
        self._checking: dict[str, trio.Event] = {}

    async def _setup(self) -> None:
        # The first enqueue should not pay for opening the Trio-owned link.
        await self.conn.open_link()
        await self.streams.provision(self.conn)
        self._results = await self.conn.kv(self.streams.results_bucket)
        self._cancels = await self.conn.kv(self.streams.cancels_bucket)
        self._claims = await self.conn.kv(self.streams.claims_bucket)
        self._deps = await self.conn.kv(self.streams.deps_bucket)
        self._schedules = await self.conn.kv(self.streams.schedules_bucket)

    async def _serve_inbox(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Wake waiters with the final records the result actor sends this client."""
        inbox = self.streams.ns.subject(f"reply.{uuid.uuid4().hex}")
        # A callback in the Trio thread (the link's reader task where there is a link):
        # a record wakes its waiters with no thread hop and no task switch in between.
        async with self.conn.on_messages(inbox, self._on_notice):
            self._inbox = inbox
            task_status.started()
            await trio.sleep_forever()



    @property
    def deps(self) -> KeyValueStore:
        """The dependencies bucket (``w.<job>`` held jobs, ``p.<job>`` their parents)."""
        assert self._deps is not None
        return self._deps

    @property
    def schedules_kv(self) -> KeyValueStore:
        """The schedules bucket (name -> :class:`~actorq.wire.messages.ScheduleEntry`)."""
        assert self._schedules is not None
        return self._schedules

    # -- enqueue ---------------------------------------------------------------------

    def options(self, **options: Any) -> BoundEnqueue:
        """Enqueue with options: ``await client.options(queue="q").enqueue(fn, x=1)``.

        Accepts the fields of :class:`EnqueueOptions`.
        """
        try:
            opts = msgspec.convert(options, EnqueueOptions)
        except msgspec.ValidationError as exc:
            raise UsageError(f"invalid enqueue option: {exc}") from None
        return BoundEnqueue(self, opts)

    async def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``fn(*args, **kwargs)`` on the default queue with default options."""
        return await self.enqueue_with(EnqueueOptions(), fn, args, kwargs)

    async def send(self, queue: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``fn(*args, **kwargs)`` on ``queue``: ``await client.send("emails", f)``."""
        return await self.enqueue_with(EnqueueOptions(queue=queue), fn, args, kwargs)

    async def enqueue_at(
        self, when: dt.datetime | float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Job:
        """Enqueue ``fn(*args, **kwargs)`` to run at ``when`` (aware datetime or unix time).

        The server holds the job and releases it at that time (no scheduler needed); a
        time in the past runs it now. Naive datetimes are refused with ConfigError.
        """
        return await self.enqueue_with(EnqueueOptions(), fn, args, kwargs, at=when)

    async def enqueue_in(
        self, delay: dt.timedelta | float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Job:
        """Enqueue ``fn(*args, **kwargs)`` to run after ``delay`` (timedelta or seconds)."""
        return await self.enqueue_with(EnqueueOptions(), fn, args, kwargs, at=due_in(delay))

    def build_envelope(
        self, opts: EnqueueOptions, fn: Callable[..., Any], args: Sequence[Any],
        kwargs: Mapping[str, Any], *, job_options: JobOptions | None = None,
    ) -> JobEnvelope:  # fmt: skip
        """Encode a call into an envelope (no I/O)."""
        if job_options is None:
            check_queue_name(opts.queue)
            job_options = opts.job_options()
        job_id = check_job_id(opts.job_id) if opts.job_id is not None else uuid.uuid4().hex
        payload = self.codec.encode_call(fn, args, kwargs)
        try:
            name = function_path(fn)
        except (AttributeError, TypeError, CodecError):
            name = repr(fn)
        env = JobEnvelope(
            id=job_id,
            queue=opts.queue,
            function=name,
            codec=self.codec.name,
            payload=payload,
            options=job_options,
            enqueued_at=time.time(),
            reply_to=self._inbox,
        )
        # The whole envelope is signed (id, queue, options, reply_to...), not only
        # the payload: see actorq.wire.signing.
        return env if self.signer is None else sign_envelope(self.signer, env)

    async def enqueue_with(
        self,
        opts: EnqueueOptions,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        at: dt.datetime | float | None = None,
    ) -> Job:
        """Enqueue with explicit :class:`EnqueueOptions`, at time ``at`` if given."""
        due = None if at is None else to_timestamp(at)
        env = self.build_envelope(opts, fn, args, kwargs or {})
        return await self._enqueue_envelope(env, opts, due)

    async def _enqueue_envelope(
        self, env: JobEnvelope, opts: EnqueueOptions, due: float | None
    ) -> Job:
        """The I/O half of :meth:`enqueue_with`, for an envelope built already (the
        sync helper builds it in the caller's thread)."""
        if opts.depends_on:
            if due is not None:
                raise UsageError(
                    "a job cannot both wait for a time and for other jobs: enqueue it with "
                    "depends_on, or make a delayed job one of its parents"
                )
            await check_parents(self, env.id, list(opts.depends_on))
        if env.queue not in self._served:
            await self._first_use(env.queue)
        if opts.job_id is None:
            return await self._publish_job(env, due, explicit_id=False)
        if not await self._claim(env.id, env.queue):
            return Job(self, env.id, env.queue, deduplicated=True)
        return await self._publish_claimed(env, due)

    async def _publish_claimed(self, env: JobEnvelope, due: float | None) -> Job:
        """Publish a job whose explicit id this client has just claimed; the claim is
        released if the publish fails."""
        try:
            return await self._publish_job(env, due, explicit_id=True)
        except BaseException:
            # Nothing was enqueued (as far as we know): give the id back, or every
            # retry would be "deduplicated" against a job that does not exist.
            await self._release_claim(env.id)
            raise

    def _claim_message(self, job_id: str, queue: str) -> tuple[str, bytes, dict[str, str]]:
        """Subject, value and headers of a write that claims ``job_id`` only if no one
        holds it: a KV create, as one JetStream publish."""
        return (
            f"$KV.{self.streams.claims_bucket}.{job_id}",
            queue.encode(),
            {"Nats-Expected-Last-Subject-Sequence": "0"},
        )

    async def _claim(self, job_id: str, queue: str) -> bool:
        """Claim an explicit job id; ``False`` when it is taken."""
        try:
            # One publish (over the connection's link when it has one).
            subject, value, headers = self._claim_message(job_id, queue)
            await self.conn.js_publish(subject, value, headers=headers)
            return True
        except (Conflict, KeyExists):
            pass  # taken, or a released claim's purge marker: create() tells them apart
        assert self._claims is not None
        try:
            await self._claims.create(job_id, queue.encode())
        except KeyExists:
            return False
        return True

    async def _first_use(self, queue: str) -> None:
        """:meth:`served` with ``warn``, checked once however many callers enqueue to a
        new queue at the same moment (256 concurrent first enqueues made 256 checks,
        and as many consumers provisioned, before)."""
        checking = self._checking.get(queue)
        if checking is not None:
            await checking.wait()
            return
        checking = self._checking[queue] = trio.Event()
        try:
            await self.served(queue, warn=True)
        finally:
            del self._checking[queue]
            checking.set()

    async def served(self, queue: str, *, warn: bool = False) -> bool:
        """Whether ``queue`` has a consumer, i.e. a queue actor served it at least once.

        A job sent to a queue nobody serves waits, invisible to ``actorq queues``, until
        a worker for it starts; with ``warn`` that is logged (once per queue and client).
        """
        if queue in self._served:
            return True
        try:
            await self.conn.jsm(
                "consumer_info", self.streams.jobs_stream, self.streams.consumer_name(queue)
            )
        except NotFound:
            if warn:
                self._served.add(queue)  # warn once, not on every job
                log.warning(
                    "queue %r has no worker in namespace %r yet: its jobs wait until one "
                    "serves it (a [[queues]] entry of `actorq up`)",
                    queue, self.streams.ns.name,
                )  # fmt: skip
                # Its consumer makes the waiting jobs visible (`actorq queues` lists
                # consumers); the first worker to start updates its settings.
                with contextlib.suppress(BrokerError):
                    await self.streams.provision_queue(self.conn, queue)
            return False
        except BrokerError:
            pass  # not allowed to look (least privilege): assume it is served
        self._served.add(queue)
        return True

    async def _release_claim(self, job_id: str) -> None:
        assert self._claims is not None
        with trio.CancelScope(shield=True), trio.move_on_after(self.conn.request_timeout):
            try:
                await self._claims.purge(job_id)
            except ActorqError as exc:
                # The claim stays: a retry reports deduplicated; say why in the log.
                log.warning("could not release the claim on job id %s: %s", job_id, exc)

    async def _publish_job(self, env: JobEnvelope, due: float | None, *, explicit_id: bool) -> Job:
        """Publish an envelope (held for its parents, delayed, or to its queue)."""
        if not self.large.fits(env.payload):
            env = await self.large.fit_envelope(env, max_bytes=self.max_bytes)
        if env.options.depends_on:
            return await self._hold(env)
        faults.hit("client.publish_job")
        if due is not None:
            headers = {
                "Nats-Schedule": at_header(due),
                "Nats-Schedule-Target": self.streams.job_subject(env.queue, env.id),
            }
            # The server copies the other headers onto the job it releases: the trace too.
            with enqueue_span(env.queue, env.id, env.function) as trace_headers:
                ack = await self.conn.js_publish(
                    self.streams.delayed_subject(env.queue, env.id),
                    encode(env),
                    headers={**headers, **trace_headers} if trace_headers else headers,
                    msg_id=env.id if explicit_id else None,
                )
            return Job(self, env.id, env.queue, deduplicated=ack.duplicate, via_inbox=True)
        # Nats-Msg-Id only for ids of the caller's: a generated id is unique already,
        # and the header costs ~10% of publish throughput.
        with enqueue_span(env.queue, env.id, env.function) as trace_headers:
            ack = await self.conn.js_publish(
                self.streams.job_subject(env.queue, env.id),
                encode(env),
                msg_id=env.id if explicit_id else None,
                headers=trace_headers,
            )
        return Job(self, env.id, env.queue, deduplicated=ack.duplicate, via_inbox=True)

    async def _hold(self, env: JobEnvelope) -> Job:
        """Park a dependent job in the deps bucket and tell the result actor."""
        parents = list(env.options.depends_on)
        held = WaitingJob(envelope=encode(env), parents=parents)
        await self.deps.put(f"w.{env.id}", encode(held))
        wait = WaitForParents(
            job_id=env.id, queue=env.queue, parents=parents, function=env.function,
            enqueued_at=env.enqueued_at, metadata=dict(env.options.metadata),
            reply_to=env.reply_to,
        )  # fmt: skip
        await self.conn.js_publish(self.streams.deps_subject, encode(wait))
        return Job(self, env.id, env.queue, via_inbox=True)

    async def enqueue_many(
        self, calls: Sequence[tuple[Callable[..., Any], Sequence[Any], Mapping[str, Any]]],
        opts: EnqueueOptions | None = None,
    ) -> list[Job]:  # fmt: skip
        """Enqueue many calls with shared options in one pipelined batch.

        Ids are generated (an explicit ``job_id`` makes no sense for a batch).
        """
        opts = opts or EnqueueOptions()
        if opts.job_id is not None:
            raise UsageError("enqueue_many generates job ids; drop job_id from the options")
        if opts.depends_on:
            raise UsageError("enqueue_many does not take depends_on; enqueue those one by one")
        check_queue_name(opts.queue)
        if opts.queue not in self._served:
            await self.served(opts.queue, warn=True)
        job_options = opts.job_options()
        envs = [self.build_envelope(opts, fn, a, k, job_options=job_options) for fn, a, k in calls]
        envs = [await self.large.fit_envelope(e, max_bytes=self.max_bytes) for e in envs]
        subject = self.streams.job_subject
        with enqueue_spans(envs) as traces:
            if traces is None:
                outs = [OutMsg(subject(e.queue, e.id), encode(e)) for e in envs]
            else:  # traced: a span and its headers per job
                outs = [
                    OutMsg(subject(e.queue, e.id), encode(e), h)
                    for e, h in zip(envs, traces, strict=True)
                ]
            await self.conn.js_publish_many(outs)
        return [Job(self, e.id, e.queue, via_inbox=True) for e in envs]

    # -- look up -----------------------------------------------------------------------

    def job(self, job_id: str, queue: str = DEFAULT_QUEUE) -> Job:
        """A handle on a job by id (no I/O; see :meth:`get_record`)."""
        return Job(self, check_job_id(job_id), queue)


    async def _queued_envelope(self, job_id: str) -> JobEnvelope | None:
        try:
            msg = await self.conn.jsm(
                "get_last_msg", self.streams.jobs_stream, self.streams.job_subject("*", job_id)
            )
        except NotFound:
            return None
        return decode_envelope(msg.data)

    async def status(self, job_id: str) -> JobStatus:
        """The job's status; raises :class:`~actorq.exceptions.NotFound` for an unknown id."""
        record = await self.get_record(job_id)
        if record is not None and record.done:
            return record.status
        assert self._cancels is not None
        if await self._cancels.get(job_id) is not None:
            return "cancelled"
        if record is not None:
            return record.status
        if await self._queued_envelope(job_id) is not None:
            return "queued"
        if await self.deps.get(f"w.{job_id}") is not None:
            return "waiting"
        try:
            await self.conn.jsm(
                "get_last_msg", self.streams.jobs_stream, self.streams.delayed_subject("*", job_id)
            )
        except NotFound:
            pass
        else:
            return "scheduled"
        raise NotFound(
            f"no job {job_id!r}: never enqueued in namespace {self.streams.ns.name!r}, "
            "or its record expired (result TTL)."
        )


    async def result(
        self,
        job_id: str,
        timeout: float | None = None,  # noqa: ASYNC109
        *,
        via_inbox: bool = False,
    ) -> Any:
        """Wait for the job's final record; its value, or the matching exception
        (see :meth:`Job.result`)."""
        return self.unwrap(await self.wait(job_id, timeout, via_inbox=via_inbox))

    def unwrap(self, record: JobRecord) -> Any:
        """The value of a final record, or the matching exception."""
        if record.status == "succeeded":
            if record.result is None:
                return None
            codec = self._codec(record.codec)
            return codec.decode_result(record.result, record.signature)
        if record.status == "cancelled":
            raise JobCancelled(f"job {record.id} was cancelled")
        err = record.error
        if err is None:
            raise JobFailed(record.id, "UnknownError", f"job ended {record.status}", "")
        raise JobFailed(record.id, err.type, err.message, err.traceback)

    def _codec(self, name: str) -> Codec:
        codec = self._codecs.get(name)
        if codec is None:
            codec = self._codecs[name] = get_codec(name, signing_key=self._signing_key)
        return codec

    # -- steer -------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> None:
        """Cancel a job by id; durable, so it holds even when no worker is online."""
        assert self._cancels is not None
        # Queue actors watch this bucket (push), so a running job stops promptly too.
        await self._cancels.put(job_id, encode(CancelJob(job_id=job_id, requested_at=time.time())))

    async def trigger_schedule(self, name: str) -> Job:
        """Run schedule ``name`` once now, as job ``<name>-<unix ms>``, outside its plan
        (its next due time and run count are unchanged; a paused one runs too)."""
        job_id, queue = await self._book.trigger(name)
        return Job(self, job_id, queue)



@contextlib.asynccontextmanager
async def open_client(
    url: str | Sequence[str] | None = None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    codec: str | Codec = "pickle",
    signing_key: bytes | Signer | None = None,
    local_credentials: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    **connect_options: Any,
) -> AsyncIterator[Client]:
    """Connect a job-queue client for the duration of the block (Trio).

    ``codec`` is ``"pickle"`` (default; lambdas and closures work) or ``"safe"``, or a
    codec object; ``signing_key`` signs every envelope so workers run it.
    ``connect_options`` go to :func:`actorq.nats.open_nats` (user, password, token, tls...).

    With ``local_credentials`` (the default), what is not given comes from the
    credentials file of a local ``actorq up`` (see
    :mod:`actorq.nats.local_credentials`): its URL when ``url`` is ``None``, its
    password and signing key when the client has none, and only for the server it
    names. ``url`` is ``nats://127.0.0.1:4222`` when neither says.

    ``max_bytes`` bounds a job's encoded arguments: above the server's
    ``max_payload`` they travel through the object store, above ``max_bytes`` an
    enqueue raises :class:`~actorq.exceptions.PayloadTooLarge`.
    """
    if local_credentials:
        urls, connect_options, signing_key = resolve_local(url, connect_options, signing_key)
    else:
        urls = None if url is None else ([url] if isinstance(url, str) else list(url))
    c = codec if not isinstance(codec, str) else get_codec(codec, signing_key=signing_key)
    async with (
        open_nats(urls or DEFAULT_URL, **connect_options) as conn,
        trio.open_nursery() as nursery,
    ):
        client = Client(
            conn, JobStreams(namespace), c, signing_key=signing_key, max_bytes=max_bytes
        )
        await client._setup()
        await nursery.start(client._serve_inbox)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()
