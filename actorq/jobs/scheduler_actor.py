"""The scheduler actor: fires recurring schedules, one leader at a time.

Delayed jobs (``enqueue_at`` / ``enqueue_in``) need no scheduler at all: the server
holds them and releases them into their queue. Recurring schedules need one step per
due time, which this actor takes::

    server timer fires ScheduleFire(name, version, due) on <ns>.sched.fired.<name>
      -> (leader only) read the schedule; drop the fire if it is stale (older version,
         paused, deleted, or a due time already handled)
      -> enqueue job <name>-<due>: a create in the claims bucket first, then the
         publish with Nats-Msg-Id <name>-<due>, so a due time yields one job even if
         two leaders (or a redelivery) handle it, inside or past the duplicate window
      -> set the timer of the next due time, then store the schedule's new state
         (compare-and-set on its revision), then ack the fire

Work per fire is a handful of requests, whatever the number of schedules stored:
nothing scans them. Fires that arrive while no scheduler runs wait in the stream
(one per schedule, since each has one timer), and the misfire policy decides.

Leadership is a lease: key ``scheduler`` in the ``<ns>_leader`` bucket, whose TTL is
the lease time. The holder renews it (compare-and-set on its revision) every third
of that; the others try to create it as often. A renewal is bounded by what is left
of the lease (counted from the sending of the last renewal that succeeded), and a
leader whose renewal does not succeed in time stops acting a sixth of the TTL before
its lease can run out, and handles no fetched fire past that point. A dead leader's
key expires, and another scheduler holds the lease within about ``lease_ttl * 4/3``.
A fire half-handled by a dead leader is redelivered after ``ack_wait``, and the steps
above are idempotent.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable

import msgspec
import trio

from actorq.constants import DEFAULT_NAMESPACE, DEFAULT_URL, SCHEDULER_DURABLE
from actorq.exceptions import BrokerError, Conflict
from actorq.jobs.schedules import next_due, run_envelope, timer_headers
from actorq.jobs.streams import LEASE_TTL, JobStreams
from actorq.jobs.tracing import enqueue_span
from actorq.nats.connection import Connection, open_nats
from actorq.nats.delivery import JsMsg
from actorq.nats.kv import KeyValueStore
from actorq.nats.loop import LoopKv, LoopSide
from actorq.nats.options import ConnectOptions
from actorq.nats.provisioning import KvSpec, ensure_kv
from actorq.process import faults
from actorq.process.heartbeat import publish_heartbeats
from actorq.process.job_counts import LagCounts
from actorq.wire.messages import (
    ScheduleEntry,
    ScheduleFire,
    decode_schedule_entry,
    encode,
)
from actorq.wire.messages import decode_schedule_fire as _decode_fire

__all__ = ["Lease", "SchedulerActor", "SchedulerSettings", "serve_scheduler_actor"]

log = logging.getLogger("actorq.scheduler")

_LEASE_KEY = "scheduler"
#: A claim younger than this is re-published with its Nats-Msg-Id (the server drops
#: the copy inside the 2-minute duplicate window); an older one means "done already".
_REPUBLISH_WITHIN = 90.0
_BATCH = 256


class SchedulerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a scheduler actor process needs, passed to it as JSON."""

    url: list[str] = msgspec.field(default_factory=lambda: [DEFAULT_URL])
    namespace: str = DEFAULT_NAMESPACE
    #: Seconds a leader's lease lasts without renewal: the takeover bound.
    lease_ttl: float = LEASE_TTL
    #: Seconds before an unacked fire (its leader died mid-way) is delivered again.
    ack_wait: float = 10.0
    name: str = ""
    #: How to connect (auth, TLS); secrets filled in by ``actorq up`` from the environment.
    connect: ConnectOptions = ConnectOptions()


class Lease:
    """A leadership lease in a KV bucket with a TTL (Trio side).

    The lease is valid until ``ttl`` after the *sending* of the last renewal that
    succeeded (the server starts the key's TTL when it stores it, later than that),
    less a ``margin`` for the fire round in progress. A renewal is cancelled once it
    would end past that point, and the holder stops leading then, so it never acts
    after its lease could have passed to another scheduler, however long NATS takes to
    answer (a request may otherwise block for ``request_timeout``, as long as the TTL).
    """

    def __init__(self, kv: KeyValueStore, holder: str, ttl: float) -> None:
        self.kv = kv
        self.holder = holder
        self.ttl = ttl
        #: Seconds before expiry at which a leader stops acting.
        self.margin = ttl / 6
        self.leading = False
        self._revision = 0
        self._expires_at = 0.0
        self.changed = trio.Event()
        self.terms = 0

    def _set(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            if leading:
                self.terms += 1
            log.info("scheduler %s %s", self.holder, "leads" if leading else "follows")
            self.changed.set()
            self.changed = trio.Event()

    def remaining(self) -> float:
        """Seconds this holder may still act (<= 0: none); safe to read from any thread."""
        if not self.leading:
            return 0.0
        return self._expires_at - self.margin - time.monotonic()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold or chase the lease forever; started after the first attempt."""
        started = False
        while True:
            await self.step()
            if not started:
                task_status.started()
                started = True
            await trio.sleep(self.ttl / 3)

    async def step(self) -> None:
        """One renewal (when leading) or one attempt to take the lease, each bounded:
        a leader's by what is left of its lease, a follower's by ``ttl * 2/3``."""
        sent = time.monotonic()
        value = self.holder.encode()
        budget = self.remaining() if self.leading else self.ttl * 2 / 3
        try:
            with trio.move_on_after(max(0.0, budget)) as bound:
                if self.leading:
                    revision = await self.kv.update(_LEASE_KEY, value, self._revision)
                else:
                    revision = await self.kv.create(_LEASE_KEY, value)
            if bound.cancelled_caught:
                if self.leading:
                    log.warning(
                        "scheduler %s: lease renewal got no answer in the %.2fs left of the "
                        "lease; it stops leading",
                        self.holder,
                        budget,
                    )
                self._set(False)
                return
            self._revision = revision
            self._expires_at = sent + self.ttl
            self._set(True)
        except Conflict:
            self._set(False)  # someone else holds it (KeyExists, or a wrong revision)
        except BrokerError as exc:
            # NATS is unreachable or slow: stop acting unless enough of the lease is
            # left to try again in time (the next try is bounded by what is left).
            if self.leading and self.remaining() < self.ttl / 3:
                log.warning("scheduler %s lost its lease: %s", self.holder, exc)
                self._set(False)
            elif not self.leading:
                self._set(False)

    async def release(self) -> None:
        """Give the lease up at once (graceful stop), so another takes over now."""
        if self.leading:
            self._set(False)
            try:
                entry = await self.kv.get(_LEASE_KEY)
                if entry is not None and entry.value == self.holder.encode():
                    await self.kv.delete(_LEASE_KEY)
            except BrokerError:
                pass


class SchedulerActor:
    """Handles fires on the asyncio side; use :func:`serve_scheduler_actor`."""

    def __init__(
        self, side: LoopSide, streams: JobStreams, schedules: LoopKv, claims: LoopKv,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.side = side
        self.streams = streams
        self.schedules = schedules
        self.claims = claims
        self.clock = clock
        self._sched_prefix = schedules.subject_prefix
        self._claim_prefix = claims.subject_prefix
        self.fired = 0
        self.skipped = 0
        self.stale = 0
        #: Seconds from each fire's due time to its handling (metrics, via heartbeats).
        self.lag = LagCounts()
        self.lease: Lease | None = None

    async def process(self, msgs: list[JsMsg]) -> None:
        """Handle a batch of fires concurrently, then ack each (asyncio side)."""
        await self.side.gather(*(self.fire(m) for m in msgs))

    async def fire(self, msg: JsMsg) -> None:
        try:
            fire = _decode_fire(msg.data)
        except Exception as exc:
            log.warning("scheduler: dropping an undecodable fire: %s", exc)
            await self.side.settle([(msg, "term", None)])
            return
        try:
            await self.handle(fire)
        except BrokerError as exc:
            log.warning("scheduler: fire %s@%s failed, will retry: %s", fire.name, fire.due, exc)
            await self.side.settle([(msg, "nak", 1.0)])
            return
        except Exception:
            # A stored schedule this version cannot read: drop the fire (the schedule
            # stops) rather than crash-loop the actor; re-declaring it starts it again.
            log.exception("scheduler: dropping fire %s@%s", fire.name, fire.due)
            await self.side.settle([(msg, "term", None)])
            return
        await self.side.settle([(msg, "ack", None)])

    async def handle(self, fire: ScheduleFire) -> None:
        """Enqueue the due job (once), set the next timer, store the new state."""
        raw = await self.schedules.get(fire.name)
        if raw is None:
            self.stale += 1
            return
        entry, revision = decode_schedule_entry(raw.value), raw.revision
        if (
            entry.version != fire.version
            or entry.paused
            or entry.next_run is None
            or fire.due < entry.next_run
        ):
            self.stale += 1  # re-declared, paused, deleted, or handled already
            return
        now = self.clock()
        self.lag.observe(now - fire.due)
        missed = now - fire.due > entry.misfire_grace
        run = not missed or entry.misfire == "run_once"
        if run:
            await self.enqueue(entry, fire.due, now)
            faults.hit("scheduler.after_fire")
            self.fired += 1
        else:
            self.skipped += 1
        state = msgspec.structs.replace(
            entry,
            runs=entry.runs + 1 if run else entry.runs,
            last_run=fire.due if run else entry.last_run,
        )
        # After downtime, the next due time is the first one after now: missed ones
        # are folded into the single run above (run_once) or dropped (skip).
        following = next_due(state, now if missed else fire.due)
        state = msgspec.structs.replace(state, next_run=following, updated_at=now)
        if following is not None:
            await self.side.js_publish(
                self.streams.timer_subject(entry.name, entry.version, following),
                encode(ScheduleFire(name=entry.name, version=entry.version, due=following)),
                headers={
                    **timer_headers(self.streams, entry.name, following),
                    "Nats-Msg-Id": f"t-{entry.name}-{entry.version}-{int(following)}",
                },
            )
        # A Conflict means re-declared or paused meanwhile: that change set its own timer.
        with contextlib.suppress(Conflict):
            await self.side.js_publish(
                self._sched_prefix + entry.name, encode(state),
                headers={"Nats-Expected-Last-Subject-Sequence": str(revision)},
            )  # fmt: skip

    async def enqueue(self, entry: ScheduleEntry, due: float, now: float) -> None:
        """Publish job ``<name>-<due>`` unless a claim shows it was published long ago."""
        job_id = f"{entry.name}-{int(due)}"
        try:
            await self.side.js_publish(
                self._claim_prefix + job_id, repr(now).encode(),
                headers={"Nats-Expected-Last-Subject-Sequence": "0"},
            )  # fmt: skip
        except Conflict:
            claim = await self.claims.get(job_id)
            if now - float(claim.value if claim else b"0") > _REPUBLISH_WITHIN:
                return
        env = run_envelope(entry, job_id, now)
        # A due job starts its trace here (when traced): the scheduler is its enqueuer.
        with enqueue_span(entry.queue, job_id, entry.function, schedule=entry.name) as trace:
            await self.side.js_publish(
                self.streams.job_subject(entry.queue, job_id), encode(env),
                headers={"Nats-Msg-Id": job_id, **trace} if trace else {"Nats-Msg-Id": job_id},
            )  # fmt: skip


async def serve_scheduler_actor(
    url: str | list[str],
    *,
    namespace: str = DEFAULT_NAMESPACE,
    lease_ttl: float = LEASE_TTL,
    ack_wait: float = 10.0,
    name: str = "",
    clock: Callable[[], float] = time.time,
    connect: ConnectOptions | None = None,
    extra: Callable[[Connection, SchedulerActor], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[SchedulerActor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a scheduler until cancelled: chase the lease, and fire schedules while leading.

    Started once connected and past its first try at the lease. On cancellation a
    leader gives its lease up, so another scheduler takes over at once.
    """
    streams = JobStreams(namespace)
    holder = name or f"{os.uname().nodename}:{os.getpid()}"
    options = connect.kwargs() if connect is not None else {}
    async with open_nats(url, name=f"actorq-scheduler-{holder}", **options) as conn:
        await streams.provision(conn)
        await streams.provision_scheduler(conn, ack_wait=ack_wait)
        lease_kv = await ensure_kv(conn, KvSpec(bucket=streams.leader_bucket, ttl=lease_ttl))
        schedules = await conn.bridge.run(conn.loop.kv, streams.schedules_bucket)
        claims = await conn.bridge.run(conn.loop.kv, streams.claims_bucket)
        actor = SchedulerActor(conn.loop, streams, schedules, claims, clock)
        lease = actor.lease = Lease(lease_kv, holder, lease_ttl)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(lease.serve)
                beats = functools.partial(
                    publish_heartbeats, conn, namespace, role="scheduler",
                    stats=lambda: {"schedule_lag": actor.lag},
                )  # fmt: skip
                await nursery.start(beats)  # listed by `actorq ps` before it is ready
                if extra is not None:
                    nursery.start_soon(extra, conn, actor)
                task_status.started(actor)
                await _fire_loop(conn, streams, actor, lease)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(3):
                await lease.release()


async def _fire_loop(
    conn: Connection, streams: JobStreams, actor: SchedulerActor, lease: Lease
) -> None:
    pull = await conn.bridge.run(conn.loop.pull, streams.jobs_stream, SCHEDULER_DURABLE)

    async def one_round() -> None:
        msgs = await pull.fetch(_BATCH, expires=1.0)
        if not msgs:
            return
        if lease.remaining() <= 0:
            # The lease ran short during the fetch: leave these fires to the next
            # leader (or to this one, once renewed).
            await conn.loop.settle([(m, "nak", 1.0) for m in msgs])
            return
        await actor.process(msgs)

    while True:
        while not lease.leading:
            await lease.changed.wait()
        # Never cancelled mid-fetch (fetched fires would wait a whole ack wait); a
        # round lasts about a second, well inside the lease's renewal margin.
        await conn.bridge.run(one_round)
