"""Where the job queue keeps things in NATS, for one namespace.

=====================  ==============================  ===================================
name                   kind                            holds
=====================  ==============================  ===================================
``<ns>_jobs``          stream, work-queue retention    ``<ns>.jobs.<queue>.<job id>``: one
                                                       :class:`JobEnvelope` per waiting job;
                                                       ``<ns>.sched.at.<queue>.<job id>``:
                                                       delayed jobs, server timers (no
                                                       consumer reads them);
                                                       ``<ns>.sched.timer.<name>.<v>-<due>``:
                                                       a schedule's next due time, a timer
                                                       that fires a :class:`ScheduleFire` on
                                                       ``<ns>.sched.fired.<name>``, read by
                                                       the leading scheduler only
``<ns>_outcomes``      stream, interest retention      ``<ns>.outcomes.<queue>``: what each
                                                       attempt did, for the result actor
``<ns>_dead``          stream, limits retention        ``<ns>.dead.<job id>``: dead letters
``<ns>_undelivered``   stream, work-queue retention    the server's max-deliveries
                                                       advisories of ``<ns>_jobs``: jobs it
                                                       stopped delivering, which the result
                                                       actor dead-letters
                                                       (:mod:`actorq.jobs.undelivered`)
``<ns>_results``       KV bucket, TTL                  job id -> :class:`JobRecord`
``<ns>_cancels``       KV bucket, TTL                  job id -> cancel request (durable)
``<ns>_claims``        KV bucket, TTL                  explicit job ids already enqueued
``<ns>_deps``          KV bucket, TTL                  ``w.<job>``: a job held for its
                                                       parents; ``p.<job>``: its children
``<ns>_schedules``     KV bucket                       name -> :class:`ScheduleEntry`
``<ns>_leader``        KV bucket, short TTL            the scheduler lease
``<ns>_objects``       object store, TTL (= results)   ``args.<job id>``, ``result.<job id>``:
                                                       payloads and results too large for
                                                       a message (chunked, with a digest)
``<ns>.outcomes.deps.wait`` subject                    :class:`WaitForParents` notices
``<ns>.reply.<id>``    core subject                    a client's inbox: final records of
                                                       the jobs it enqueued, to wake waiters
``<ns>.cancel``        core subject                    prompt cancel of running jobs
=====================  ==============================  ===================================

Each queue has one durable pull consumer, ``q-<queue>``, shared by all of its
processes, so work spreads across processes and hosts. Its ``ack_wait`` is short (a
lease) and workers extend it with ``in_progress`` while a job runs, so a crashed
worker's job comes back within seconds and a long job is never run twice.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Literal

import trio

from actorq.constants import DEFAULT_NAMESPACE, RESULTS_DURABLE, SCHEDULER_DURABLE
from actorq.exceptions import ConfigError
from actorq.nats.connection import Connection
from actorq.nats.objects import ObjectStore, ensure_object_store
from actorq.nats.provisioning import (
    ConsumerSpec,
    KvSpec,
    Namespace,
    StreamSpec,
    ensure_consumer,
    ensure_kv,
    ensure_stream,
)
from actorq.wire.messages import JobEnvelope

__all__ = [
    "DEFAULT_MAX_BYTES",
    "JobStreams",
    "check_job_id",
    "check_queue_name",
    "envelope_problem",
    "subject_problem",
]

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_=-]{1,200}$")
#: Printable ASCII, no space and no wildcard ('*' and '>').
_SUBJECT_RE = re.compile(r"^[!-)+-=?-~]{1,1000}$")

#: Results and cancel markers are kept this long unless a job says otherwise.
DEFAULT_RESULT_TTL = 7 * 24 * 3600.0
#: Largest job argument payload or result, stored in the object store when it is over
#: the server's ``max_payload`` (``[results] max_bytes``).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Explicit job ids are remembered this long for de-duplication.
CLAIM_TTL = 7 * 24 * 3600.0
#: The lease on a running job; workers renew it every third of this.
DEFAULT_ACK_WAIT = 15.0
#: Deliveries after which a job that keeps killing its worker is dead-lettered.
MAX_DELIVER = 20
#: Consumer settings provisioning keeps as it wants them.

#: Seconds a scheduler leader's lease lasts without renewal (its default).
LEASE_TTL = 5.0


def check_queue_name(name: str) -> str:
    """Return ``name`` if usable as a queue name, else raise :class:`ConfigError`."""
    if not _TOKEN_RE.match(name):
        raise ConfigError(
            f"queue name {name!r} may only use letters, digits, '_', '-' and '=' "
            "(it becomes part of a NATS subject); pick a name like 'emails'."
        )
    return name


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` if usable as a job id, else raise :class:`ConfigError`."""
    if not _TOKEN_RE.match(job_id):
        raise ConfigError(
            f"job id {job_id!r} may only use letters, digits, '_', '-' and '=' "
            "(at most 200); derive it e.g. from a hash of what makes the job unique."
        )
    return job_id


def subject_problem(subject: str) -> str | None:
    """Why ``subject`` cannot be published to (spaces, wildcards, empty tokens), or
    ``None`` when it can. For subjects that arrive in messages, e.g. a reply inbox."""
    if not _SUBJECT_RE.match(subject) or "" in subject.split("."):
        return f"{subject!r} is not a NATS subject one can publish to"
    return None


class JobStreams:
    """Names of the job queue's streams, subjects and buckets, and their provisioning."""

    def __init__(self, namespace: Namespace | str = DEFAULT_NAMESPACE) -> None:
        self.ns = namespace if isinstance(namespace, Namespace) else Namespace(namespace)
        n = self.ns
        self.jobs_stream = n.stream("jobs")
        self.outcomes_stream = n.stream("outcomes")
        self.dead_stream = n.stream("dead")
        self.undelivered_stream = n.stream("undelivered")
        #: Where the server announces a message of the jobs stream it delivers no more.
        self.undelivered_filter = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.jobs_stream}.*"
        self.results_bucket = n.bucket("results")
        self.cancels_bucket = n.bucket("cancels")
        self.claims_bucket = n.bucket("claims")
        self.deps_bucket = n.bucket("deps")
        self.schedules_bucket = n.bucket("schedules")
        self.leader_bucket = n.bucket("leader")
        self.objects_bucket = n.bucket("objects")
        #: Dependency notices travel with outcomes (two tokens: never a queue's subject).
        self.deps_subject = n.subject("outcomes.deps.wait")
        self.fired_filter = n.subject("sched.fired.>")

    def delayed_subject(self, queue: str, job_id: str) -> str:
        """Subject of a delayed job's server timer (no consumer reads it)."""
        return self.ns.subject(f"sched.at.{queue}.{job_id}")

    def timer_subject(self, name: str, version: int, due: float) -> str:
        """Subject of a schedule's timer for one due time."""
        return self.ns.subject(f"sched.timer.{name}.{version}-{int(due)}")

    def timers_filter(self, name: str) -> str:
        """Every pending timer of a schedule."""
        return self.ns.subject(f"sched.timer.{name}.*")

    def fired_subject(self, name: str) -> str:
        """Where a schedule's timer delivers its :class:`ScheduleFire`."""
        return self.ns.subject(f"sched.fired.{name}")

    def job_subject(self, queue: str, job_id: str) -> str:
        """Subject a job of ``queue`` is published to."""
        return self.ns.subject(f"jobs.{queue}.{job_id}")

    def queue_filter(self, queue: str) -> str:
        """Filter subject of a queue's consumer."""
        return self.ns.subject(f"jobs.{queue}.*")

    def outcome_subject(self, queue: str) -> str:
        """Subject queue actors report outcomes of ``queue`` on."""
        return self.ns.subject(f"outcomes.{queue}")

    def dead_subject(self, job_id: str) -> str:
        """Subject of a job's dead letter."""
        return self.ns.subject(f"dead.{job_id}")

    async def objects(
        self,
        conn: Connection,
        *,
        ttl: float = DEFAULT_RESULT_TTL,
        replicas: int | None = None,
        update_existing: bool = False,
        update_ttl: bool = True,
    ) -> ObjectStore:
        """The object store of large payloads and results (made if missing); its TTL
        is the results' so an object goes with the record that points at it."""
        return await ensure_object_store(
            conn, self.objects_bucket, ttl=ttl, replicas=replicas,
            update_existing=update_existing, update_ttl=update_ttl,
        )  # fmt: skip

    @staticmethod
    def consumer_name(queue: str) -> str:
        """Durable consumer of ``queue``."""
        return f"q-{queue}"

    async def provision(
        self,
        conn: Connection,
        *,
        result_ttl: float | None = None,
        replicas: int | None = None,
    ) -> None:
        """Create (or check) every stream and bucket; idempotent.

        ``result_ttl`` and ``replicas`` are for the runtime's owner (``actorq up`` passes
        ``[results] ttl`` and ``[nats] replicas``): given, they set the TTL of the
        results, cancels and dependencies buckets and the replica count of every
        stream and bucket, existing or not (a cluster moves R1 to R3 in place). Left
        out (clients, actors), what is missing is made with the defaults (R1) and what
        exists is left as its owner set it.
        """
        ttl = DEFAULT_RESULT_TTL if result_ttl is None else result_ttl
        n = self.ns
        update = result_ttl is not None or replicas is not None

        async def outcomes() -> None:
            await ensure_stream(
                conn,
                StreamSpec(
                    name=self.outcomes_stream,
                    subjects=[n.subject("outcomes.>")],
                    # The result actor's consumer is made right here, before anyone can
                    # publish an outcome, so none is dropped for lack of interest.
                    retention="interest",
                    num_replicas=replicas,
                ),
            )
            await self._ensure_consumer(
                conn,
                self.outcomes_stream,
                RESULTS_DURABLE,
                n.subject("outcomes.>"),
            )

        async def undelivered() -> None:
            # Before any queue consumer exists, so no advisory is published to no stream.
            await ensure_stream(
                conn,
                StreamSpec(
                    name=self.undelivered_stream,
                    subjects=[self.undelivered_filter],
                    retention="workqueue",
                    num_replicas=replicas,
                ),
            )
            await self._ensure_consumer(
                conn, self.undelivered_stream, RESULTS_DURABLE, self.undelivered_filter
            )

        # Independent of each other: asked all at once, so a starting process (a
        # restarted queue actor above all) waits for one round trip, not a dozen.
        steps: list[Callable[[], Awaitable[object]]] = [
            partial(
                ensure_stream,
                conn,
                StreamSpec(
                    name=self.jobs_stream,
                    # sched.>: server-fired timers (delayed jobs, schedules); queue
                    # consumers filter jobs.<queue>.*, so a timer is never run as a job.
                    subjects=[n.subject("jobs.>"), n.subject("sched.>")],
                    retention="workqueue",
                    # Lets `enqueue_at` hand delays to the server (nats-server >= 2.12).
                    allow_msg_schedules=True,
                    num_replicas=replicas,
                ),
            ),
            outcomes,
            undelivered,
            partial(
                ensure_stream,
                conn,
                StreamSpec(
                    name=self.dead_stream, subjects=[n.subject("dead.>")], num_replicas=replicas
                ),
            ),
        ]
        for bucket in (self.results_bucket, self.cancels_bucket, self.deps_bucket):
            steps.append(
                partial(
                    ensure_kv,
                    conn,
                    KvSpec(bucket=bucket, ttl=ttl, replicas=replicas),
                    update_existing=update,
                    update_ttl=result_ttl is not None,
                )
            )
        steps.append(
            partial(
                ensure_kv, conn, KvSpec(bucket=self.claims_bucket, ttl=CLAIM_TTL, replicas=replicas)
            )
        )
        steps.append(
            partial(ensure_kv, conn, KvSpec(bucket=self.schedules_bucket, replicas=replicas))
        )
        if replicas is not None:
            # The scheduler's lease too, so a leader survives the loss of a node; the
            # scheduler creates it when missing and owns its TTL.
            steps.append(
                partial(
                    ensure_kv,
                    conn,
                    KvSpec(bucket=self.leader_bucket, ttl=LEASE_TTL, replicas=replicas),
                    update_ttl=False,
                )
            )
        steps.append(
            partial(
                self.objects, conn, ttl=ttl, replicas=replicas, update_existing=update,
                update_ttl=result_ttl is not None,
            )
        )  # fmt: skip
        await _all_at_once(steps)

    async def provision_queue(
        self,
        conn: Connection,
        queue: str,
        *,
        max_ack_pending: int = 1000,
        ack_wait: float = DEFAULT_ACK_WAIT,
    ) -> None:
        """Create (or update) the durable consumer of ``queue``."""
        check_queue_name(queue)
        await self._ensure_consumer(
            conn,
            self.jobs_stream,
            self.consumer_name(queue),
            self.queue_filter(queue),
            max_ack_pending=max_ack_pending,
            ack_wait=ack_wait,
            max_deliver=MAX_DELIVER,
        )

    async def provision_scheduler(self, conn: Connection, *, ack_wait: float = 10.0) -> None:
        """Create (or update) the durable consumer the leading scheduler reads fires from."""
        await self._ensure_consumer(
            conn,
            self.jobs_stream,
            SCHEDULER_DURABLE,
            self.fired_filter,
            max_ack_pending=10_000,
            ack_wait=ack_wait,
        )

    async def _ensure_consumer(
        self,
        conn: Connection,
        stream: str,
        durable: str,
        filter_subject: str,
        *,
        max_ack_pending: int = 10_000,
        ack_wait: float = DEFAULT_ACK_WAIT,
        max_deliver: int = -1,
        ack_policy: Literal["explicit", "all"] = "explicit",
    ) -> None:
        await ensure_consumer(
            conn,
            ConsumerSpec(
                stream=stream,
                durable=durable,
                filter_subject=filter_subject,
                ack_policy=ack_policy,
                ack_wait=ack_wait,
                max_deliver=max_deliver,
                max_ack_pending=max_ack_pending,
            ),
        )


def envelope_problem(env: JobEnvelope) -> str | None:
    """Why ``env`` cannot be run or reported (an id or reply subject NATS cannot carry),
    or ``None`` when it can."""
    try:
        check_job_id(env.id)
    except ConfigError as exc:
        return str(exc)
    if env.reply_to is not None:
        problem = subject_problem(env.reply_to)
        if problem is not None:
            return f"reply subject {problem}"
    return None


async def _all_at_once(steps: list[Callable[[], Awaitable[object]]]) -> None:
    """Run ``steps`` concurrently; raise the first failure as itself (not in a group),
    as the sequential provisioning did."""
    try:
        async with trio.open_nursery() as nursery:
            for step in steps:
                nursery.start_soon(step)
    except BaseExceptionGroup as group:
        errors = [e for e in _leaves(group) if not isinstance(e, trio.Cancelled)]
        if not errors:
            raise  # only cancellation: the scope that cancelled us takes it
        raise errors[0] from None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
