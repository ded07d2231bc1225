"""The sync send helper: enqueue jobs and wait for results from plain, blocking code.

For scripts, Django/Flask views, sync FastAPI handlers and notebooks::

    import actorq

    job = actorq.send("emails", send_mail, to="a@b.example")   # default client
    print(job.result(timeout=30))

    with actorq.SyncClient("nats://127.0.0.1:4222", namespace="shop") as client:
        job = client.options(queue="emails", max_retries=5).enqueue(send_mail, to="a@b")
        print(job.status())
        client.enqueue_in(timedelta(minutes=5), remind, user_id)       # delayed
        client.schedule("nightly", backup, cron="0 3 * * *", tz="Europe/Paris")

How it works: a :class:`SyncClient` owns one thread that runs ``trio.run`` hosting an
:func:`actorq.open_client` (which in turn owns its asyncio bridge thread for nats-py).
Every blocking call is handed to that Trio loop (``run_sync_soon`` starts it as a task) and
blocks only the calling thread until its outcome comes back, so

* one connection per client serves the whole process, from any number of threads;
* a caller already inside a running asyncio loop (Jupyter, FastAPI) works: that loop is
  never touched, only blocked for the duration of the call, like any blocking I/O;
* errors come back to the caller unchanged (:class:`~actorq.JobFailed`,
  :class:`~actorq.exceptions.NotFound`, :class:`~actorq.ConnectionFailed`, ...).

The thread stops on :meth:`SyncClient.close` (or leaving the ``with`` block), and every
client still open is closed at interpreter exit. A call from the owner thread itself
raises :class:`~actorq.ActorqError` instead of deadlocking. Trio code should use
:func:`actorq.open_client` rather than stall its loop on these blocking calls.

:func:`send` uses a process-wide default client, created on first use from the
``ACTORQ_NATS_URL`` / ``ACTORQ_NAMESPACE`` environment variables or from :func:`configure`;
the URL, credentials and signing key of a local ``actorq up`` are found in its
credentials file when not given (:mod:`actorq.nats.local_credentials`).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import msgspec
import outcome
import trio

from actorq.constants import (
    DEFAULT_NAMESPACE,
    DEFAULT_QUEUE,
)
from actorq.exceptions import (
    ActorqError,
    BrokerTimeout,
    ClientClosed,
    ConnectionFailed,
    UsageError,
)
from actorq.jobs.client import Client, Job, open_client
from actorq.jobs.options import EnqueueOptions, due_in
from actorq.jobs.schedules import DEFAULT_MISFIRE_GRACE, ScheduleInfo, to_timestamp
from actorq.jobs.sync_direct import direct_enqueue
from actorq.nats.blocking_js import BlockingJsPool
from actorq.wire.codec import Codec, Signer
from actorq.wire.messages import DeadLetter, JobEnvelope, JobRecord, JobStatus

__all__ = ["SyncBoundEnqueue", "SyncClient", "SyncJob"]

log = logging.getLogger("actorq.sync")

T = TypeVar("T")
_Done = queue.SimpleQueue[outcome.Outcome[Any]]


class SyncJob:
    """A handle on an enqueued job, for blocking code. Cheap: an id, a queue, a client."""

    __slots__ = ("_via_inbox", "client", "deduplicated", "id", "queue")

    def __init__(
        self,
        client: SyncClient,
        job_id: str,
        queue: str,
        *,
        deduplicated: bool = False,
        via_inbox: bool = False,
    ) -> None:
        self.client = client
        self.id = job_id
        self.queue = queue
        #: True when this enqueue found the id already used and enqueued nothing.
        self.deduplicated = deduplicated
        # Enqueued by this client: its final record comes to the client's inbox.
        self._via_inbox = via_inbox

    def __repr__(self) -> str:
        return f"SyncJob(id={self.id!r}, queue={self.queue!r})"

    def result(self, timeout: float | None = None) -> Any:
        """Block until the job's result is stored (push-woken) and return it.

        Raises :class:`~actorq.JobFailed` (remote type, message and traceback) when it
        failed, :class:`~actorq.JobCancelled` when cancelled, and
        :class:`~actorq.JobTimeout` when ``timeout`` seconds pass first.
        """
        return self.client.result(self.id, timeout=timeout, via_inbox=self._via_inbox)

    def status(self) -> JobStatus:
        """``queued``, ``running``, ``succeeded``, ``failed``, ``retrying``, ``cancelled``, ..."""
        return self.client.status(self.id)

    def cancel(self) -> None:
        """Cancel the job: it will not run, or stops if it is running (async jobs)."""
        self.client.cancel(self.id)

    def record(self) -> JobRecord | None:
        """Everything stored about the job, or ``None`` while it has no record yet."""
        return self.client.get_record(self.id)


class SyncClient:
    """A blocking job-queue client with one persistent connection; thread-safe.

    Takes the arguments of :func:`actorq.open_client`; ``start_timeout`` bounds
    connecting and provisioning. Example::

        with SyncClient("nats://127.0.0.1:4222") as client:
            job = client.enqueue(add, 1, 2)
            assert job.result(timeout=10) == 3
            client.send("emails", send_mail, to="a@b.example")

    Raises :class:`~actorq.ConnectionFailed` (unchanged from the owner thread) when no
    server answers.
    """

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        codec: str | Codec = "pickle",
        signing_key: bytes | Signer | None = None,
        start_timeout: float = 30.0,
        **connect_options: Any,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self._open_args: dict[str, Any] = {
            "namespace": namespace, "codec": codec, "signing_key": signing_key,
            **connect_options,
        }  # fmt: skip
        self._client: Client | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._main_scope: trio.CancelScope | None = None
        self._stop: trio.Event | None = None
        self._idle: trio.Event | None = None
        # The calls in flight, by their reply queue; touched only in the owner thread.
        self._inflight: dict[_Done, trio.CancelScope] = {}
        self._closing = False  # set in the owner thread: refuse new calls
        self._closed = False  # set by close(): refuse new calls before crossing
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._bridge_thread: threading.Thread | None = None
        # Blocking sockets for enqueues from the calling thread (None: not usable).
        self._pool: BlockingJsPool | None = None
        self._thread = threading.Thread(target=self._own, name="actorq-sync-client", daemon=True)
        self._thread.start()
        if not self._ready.wait(start_timeout):
            self._stop_owner()
            self._thread.join(5)
            raise ConnectionFailed(
                f"SyncClient could not connect and set up within {start_timeout}s "
                f"(url {url or 'of the local runtime, or the default'!r}, namespace "
                f"{namespace!r}); is the server reachable?"
            )
        if self._error is not None:
            self._thread.join(5)
            raise self._error
        with _live_lock:
            _live.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SyncClient(url={self.url!r}, namespace={self.namespace!r}, {state})"

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the owner thread --------------------------------------------------------------

    def _own(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # handed to the constructor, which re-raises it
            if self._ready.is_set():
                log.exception("SyncClient owner thread failed")
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        stop = self._stop = trio.Event()
        with trio.CancelScope() as self._main_scope:  # cancelled only to abandon startup
            async with open_client(self.url, **self._open_args) as client:
                self._client = client
                self._bridge_thread = client.conn.bridge._thread
                self._pool = client.conn.blocking_pool()
                self._ready.set()
                try:
                    await stop.wait()
                finally:
                    if self._pool is not None:
                        self._pool.close()
                # The calls in flight were cancelled; their cleanup (unsubscribing) still
                # needs the connection, so let them unwind before it closes.
                with trio.move_on_after(5):
                    while self._inflight:
                        self._idle = trio.Event()
                        await self._idle.wait()

    def _stop_owner(self) -> None:
        """Ask the owner thread to stop (from any thread; returns at once)."""
        token = self._token
        if token is None:
            return  # trio.run has not started yet, or already finished
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(self._begin_stop)

    def _begin_stop(self) -> None:
        # Runs in the owner thread. Calls in flight are cancelled (their callers get a
        # clear error) before the connection closes under them.
        self._closing = True
        for scope in self._inflight.values():
            scope.cancel()
        if self._stop is not None:
            self._stop.set()
        if self._client is None and self._main_scope is not None:
            self._main_scope.cancel()  # still connecting: give up

    def _start_call(
        self, afn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], done: _Done
    ) -> None:
        # Runs in the owner thread (run_sync_soon): one system task per call.
        if self._closing:
            done.put_nowait(outcome.Error(self._closed_error()))
            return
        try:
            trio.lowlevel.spawn_system_task(self._call, afn, args, done)
        except RuntimeError:  # the run is in its final cleanup: no new tasks
            done.put_nowait(outcome.Error(self._closed_error()))

    async def _call(
        self, afn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], done: _Done
    ) -> None:
        result: outcome.Outcome[Any] | None = None
        try:
            with trio.CancelScope() as scope:
                self._inflight[done] = scope
                try:
                    result = outcome.Value(await afn(*args))
                except trio.Cancelled:
                    raise
                except BaseException as exc:  # handed to the caller unchanged
                    result = outcome.Error(exc)
                finally:
                    del self._inflight[done]
                    if not self._inflight and self._idle is not None:
                        self._idle.set()
        finally:
            # Whatever happens, the caller is woken; no result means cancelled: by
            # close(), by the run ending, or because the caller itself gave up.
            done.put_nowait(result or outcome.Error(self._closed_error(during=True)))

    def _cancel_call(self, done: _Done) -> None:
        scope = self._inflight.get(done)
        if scope is not None:
            scope.cancel()

    def _closed_error(self, *, during: bool = False) -> ClientClosed:
        what = "was closed while this call waited" if during else "is closed"
        return ClientClosed(f"{self!r} {what}; create a new SyncClient (or actorq.configure())")

    def _run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``afn(*args)`` on the owner's Trio loop and block until it is done.

        Not ``trio.from_thread.run``: that refuses any thread inside a Trio run, and a
        caller's "running asyncio loop" may well be Trio underneath (trio-asyncio's
        policy turns ``asyncio.run`` into ``trio.run``). Only the owner's own threads
        would deadlock, so only they are refused.
        """
        if self._closed:
            raise self._closed_error()
        current = threading.current_thread()
        if current is self._thread or current is self._bridge_thread:
            raise UsageError(
                "SyncClient blocks, so it cannot be called from its own owner thread (that "
                "would deadlock); in Trio code use `async with actorq.open_client(...)`."
            )
        token = self._token
        assert token is not None  # set before the constructor returns
        done: _Done = queue.SimpleQueue()
        try:
            token.run_sync_soon(self._start_call, afn, args, done)
        except trio.RunFinishedError:
            raise self._closed_error() from None
        try:
            reply = done.get()
        except BaseException:
            # Interrupted (Ctrl-C in a script or notebook): stop the call, do not leave
            # it waiting in the owner thread until close().
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._cancel_call, done)
            raise
        result: T = reply.unwrap()
        return result

    def run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Block until ``await afn(client, *args)`` ran on this client's loop, with its
        async :class:`~actorq.Client`, and return what it returned.

        Every blocking method here goes through it, and so can code that needs what
        only the async client has::

            stats = sync.run(lambda client: client.conn.jsm("stream_info", "actorq_jobs"))
        """
        return self._run(afn, self._c, *args)

    @property
    def _c(self) -> Client:
        client = self._client
        assert client is not None  # set before the constructor returns
        return client

    def _wrap(self, job: Job) -> SyncJob:
        return SyncJob(
            self, job.id, job.queue, deduplicated=job.deduplicated, via_inbox=job._via_inbox
        )

    # -- enqueue -----------------------------------------------------------------------

    def options(self, **options: Any) -> SyncBoundEnqueue:
        """Enqueue with options: ``client.options(queue="q", max_retries=5).enqueue(fn)``.

        Accepts the fields of :class:`~actorq.EnqueueOptions`.
        """
        try:
            opts = msgspec.convert(options, EnqueueOptions)
        except msgspec.ValidationError as exc:
            raise UsageError(f"invalid enqueue option: {exc}") from None
        return SyncBoundEnqueue(self, opts)

    def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> SyncJob:
        """Enqueue ``fn(*args, **kwargs)`` on the default queue with default options."""
        return self.enqueue_with(_DEFAULT_OPTIONS, fn, args, kwargs)

    def send(self, queue: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> SyncJob:
        """Enqueue ``fn(*args, **kwargs)`` on ``queue``: ``client.send("emails", f, to=x)``."""
        return self.enqueue_with(_queue_options(queue), fn, args, kwargs)

    def enqueue_with(
        self,
        opts: EnqueueOptions,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        at: dt.datetime | float | None = None,
    ) -> SyncJob:
        """Enqueue with explicit :class:`~actorq.EnqueueOptions`, at time ``at`` if given."""
        if self._closed:
            raise self._closed_error()
        client = self._c
        due = None if at is None else to_timestamp(at)
        # Built here, in the caller's thread: the owner loop stays free for others.
        env = client.build_envelope(opts, fn, args, kwargs or {})
        if due is None and not opts.depends_on and env.queue in client._served:
            job = self._direct_enqueue(env, opts)
            if job is not None:
                return job
        return self._wrap(self.run(Client._enqueue_envelope, env, opts, due))

    def _direct_enqueue(self, env: JobEnvelope, opts: EnqueueOptions) -> SyncJob | None:
        """``env`` enqueued from the calling thread (see :mod:`actorq.jobs.sync_direct`),
        or ``None`` when that path cannot take it."""
        if self._pool is None:
            return None
        sent = direct_enqueue(self._pool, self._c, env, opts, self.run)
        if sent is None:
            return None
        if isinstance(sent, Job):
            return self._wrap(sent)
        return SyncJob(self, env.id, env.queue, deduplicated=sent, via_inbox=True)

    def enqueue_at(
        self, when: dt.datetime | float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> SyncJob:
        """Enqueue to run at ``when`` (aware datetime or unix time; naive is refused)."""
        return self.enqueue_with(_DEFAULT_OPTIONS, fn, args, kwargs, at=when)

    def enqueue_in(
        self, delay: dt.timedelta | float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> SyncJob:
        """Enqueue to run after ``delay`` (timedelta or seconds)."""
        return self.enqueue_with(_DEFAULT_OPTIONS, fn, args, kwargs, at=due_in(delay))

    def enqueue_many(
        self, calls: Sequence[tuple[Callable[..., Any], Sequence[Any], Mapping[str, Any]]],
        opts: EnqueueOptions | None = None,
    ) -> list[SyncJob]:  # fmt: skip
        """Enqueue many ``(fn, args, kwargs)`` calls with shared options in one batch."""
        return [self._wrap(j) for j in self.run(Client.enqueue_many, calls, opts)]

    # -- look up and wait --------------------------------------------------------------

    def job(self, job_id: str, queue: str = DEFAULT_QUEUE) -> SyncJob:
        """A handle on a job by id (no I/O; see :meth:`get_record`)."""
        return self._wrap(self._c.job(job_id, queue))

    def get_record(self, job_id: str) -> JobRecord | None:
        """The stored record of a job, or ``None`` if there is none (yet, or any more)."""
        return self.run(Client.get_record, job_id)

    def status(self, job_id: str) -> JobStatus:
        """The job's status; raises :class:`~actorq.exceptions.NotFound` for an unknown id."""
        return self.run(Client.status, job_id)

    def result(self, job_id: str, timeout: float | None = None, *, via_inbox: bool = False) -> Any:
        """Block until the job has a final record; its value or exception (see SyncJob)."""
        # Decoding the result happens here, in the caller's thread, to keep the shared
        # owner loop free for other callers.
        return self.unwrap(self.wait(job_id, timeout, via_inbox=via_inbox))

    def wait(
        self, job_id: str, timeout: float | None = None, *, via_inbox: bool = False
    ) -> JobRecord:
        """Block until the job has a final record and return it (no decoding)."""
        return self.run(functools.partial(Client.wait, via_inbox=via_inbox), job_id, timeout)

    def unwrap(self, record: JobRecord) -> Any:
        """The value of a final record, or the matching exception (no I/O)."""
        return self._c.unwrap(record)

    # -- steer -------------------------------------------------------------------------

    def cancel(self, job_id: str) -> None:
        """Cancel a job by id; durable, so it holds even when no worker is online."""
        self.run(Client.cancel, job_id)

    def requeue(self, job_id: str) -> SyncJob:
        """Enqueue a dead-lettered job again, as it was; removes its dead letter."""
        return self._wrap(self.run(Client.requeue, job_id))

    def served(self, queue: str, *, warn: bool = False) -> bool:
        """Whether ``queue`` has a consumer: a worker served it at least once (see
        :meth:`actorq.Client.served`)."""
        return self.run(functools.partial(Client.served, warn=warn), queue)

    def purge(self, queue: str) -> int:
        """Remove every waiting job of ``queue``; returns how many were removed."""
        return self.run(Client.purge, queue)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first."""
        return self.run(Client.dead_letters, limit)

    def delete_dead_letter(self, job_id: str) -> None:
        """Delete the dead letter of ``job_id`` without running the job again."""
        self.run(Client.delete_dead_letter, job_id)

    # -- recurring schedules -------------------------------------------------------------

    def schedule(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        cron: str | None = None,
        every: dt.timedelta | float | None = None,
        tz: str = "UTC",
        queue: str = DEFAULT_QUEUE,
        start_at: dt.datetime | float | None = None,
        end_at: dt.datetime | float | None = None,
        max_runs: int | None = None,
        misfire: Literal["run_once", "skip"] = "run_once",
        misfire_grace: float = DEFAULT_MISFIRE_GRACE,
        options: EnqueueOptions | None = None,
        **kwargs: Any,
    ) -> ScheduleInfo:
        """Declare (or update) a recurring schedule; see :meth:`actorq.Client.schedule`."""

        async def declare(client: Client) -> ScheduleInfo:
            return await client.schedule(
                name, fn, *args, cron=cron, every=every, tz=tz, queue=queue,
                start_at=start_at, end_at=end_at, max_runs=max_runs, misfire=misfire,
                misfire_grace=misfire_grace, options=options, **kwargs,
            )  # fmt: skip

        return self.run(declare)

    def schedules(self) -> list[ScheduleInfo]:
        """Every recurring schedule, with its next run times."""
        return self.run(Client.schedules)

    def pause_schedule(self, name: str) -> ScheduleInfo:
        """Stop firing ``name`` until :meth:`resume_schedule`."""
        return self.run(Client.pause_schedule, name)

    def resume_schedule(self, name: str) -> ScheduleInfo:
        """Fire ``name`` again from its next due time after now."""
        return self.run(Client.resume_schedule, name)

    def delete_schedule(self, name: str) -> None:
        """Delete ``name`` and its pending timer."""
        self.run(Client.delete_schedule, name)

    def trigger_schedule(self, name: str) -> SyncJob:
        """Run schedule ``name`` once now, outside its plan."""
        return self._wrap(self.run(Client.trigger_schedule, name))

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def close(self, timeout: float = 10.0) -> None:
        """Close the connection and stop the owner thread; idempotent.

        Calls still waiting in other threads raise :class:`~actorq.exceptions.ClientClosed`.
        Raises :class:`~actorq.exceptions.BrokerTimeout` if the thread has not stopped within
        ``timeout`` seconds (it is a daemon thread, so it never blocks exit).
        """
        if self._thread is threading.current_thread():
            raise UsageError("SyncClient.close() called from its own owner thread")
        self._closed = True
        with _live_lock:
            _live.discard(self)
        self._stop_owner()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise BrokerTimeout(f"{self!r}: owner thread did not stop within {timeout}s")


class SyncBoundEnqueue:
    """``client.options(...)``: enqueue with fixed options."""

    __slots__ = ("_client", "_opts")

    def __init__(self, client: SyncClient, opts: EnqueueOptions) -> None:
        self._client = client
        self._opts = opts

    def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> SyncJob:
        """Enqueue ``fn(*args, **kwargs)`` with the bound options."""
        return self._client.enqueue_with(self._opts, fn, args, kwargs)

    def enqueue_many(
        self, calls: Sequence[tuple[Callable[..., Any], Sequence[Any], Mapping[str, Any]]]
    ) -> list[SyncJob]:
        """Enqueue many ``(fn, args, kwargs)`` calls with the bound options."""
        return self._client.enqueue_many(calls, self._opts)

    def enqueue_at(
        self, when: dt.datetime | float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> SyncJob:
        """Enqueue with the bound options, to run at ``when``."""
        return self._client.enqueue_with(self._opts, fn, args, kwargs, at=when)

    def enqueue_in(
        self, delay: dt.timedelta | float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> SyncJob:
        """Enqueue with the bound options, to run after ``delay``."""
        return self._client.enqueue_with(self._opts, fn, args, kwargs, at=due_in(delay))


# Options are immutable; building them once per queue keeps send() cheap.
_DEFAULT_OPTIONS = EnqueueOptions()
_queue_opts: dict[str, EnqueueOptions] = {}


def _queue_options(queue: str) -> EnqueueOptions:
    opts = _queue_opts.get(queue)
    if opts is None:
        if len(_queue_opts) > 1024:  # bound the cache for apps with dynamic queue names
            _queue_opts.clear()
        opts = _queue_opts[queue] = EnqueueOptions(queue=queue)
    return opts


# -- every open client is closed at interpreter exit -----------------------------------

_live: set[SyncClient] = set()
_live_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    with _live_lock:
        clients = list(_live)
    for client in clients:
        try:
            client.close(timeout=5)
        except ActorqError as exc:  # exiting anyway; the thread is a daemon
            log.warning("%s", exc)
