"""Recurring schedules: when they are due, and how a client declares and steers them.

A schedule is a :class:`~actorq.wire.messages.ScheduleEntry` stored under its name in the
``<ns>_schedules`` bucket. Exactly one server timer is pending per schedule: a
message on ``<ns>.sched.timer.<name>.<version>-<due>`` with ``Nats-Schedule: @at
<due>``, which the server turns into a :class:`~actorq.wire.messages.ScheduleFire` on
``<ns>.sched.fired.<name>`` at the due time. The leading scheduler
(:mod:`actorq.jobs.scheduler_actor`) then enqueues the job ``<name>-<due>`` and sets the
next timer. So firing costs the same whether 10 or 100,000 schedules are stored.

Due times are whole seconds (job ids carry them). Cron expressions use croniter's
syntax, with an optional sixth field for seconds, read as wall-clock times in the
IANA zone ``tz``. Across DST changes one rule holds (the usual cron one): **every
wall-clock time the expression matches fires once.** A time a fall-back repeats fires
at its first occurrence only; a time a spring-forward skips fires once, right after
the gap (at the first wall-clock time that exists again; several skipped times fire
together, once). croniter walks the naive wall clock; :func:`wall_to_instant` places
each time on the UTC line. ``tests/jobs/test_scheduler_dst.py`` holds it to
hand-written tables for Paris and New York, both transitions.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from croniter import croniter

from actorq.constants import DEFAULT_QUEUE
from actorq.exceptions import (
    BrokerError,
    ConfigError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    UsageError,
)
from actorq.jobs.large_payloads import message_room
from actorq.jobs.streams import JobStreams, check_job_id, check_queue_name
from actorq.wire.messages import (
    JobEnvelope,
    JobOptions,
    ScheduleEntry,
    ScheduleFire,
    decode_schedule_entry,
    encode,
)
from actorq.wire.signing import canonical_options, schedule_signature

if TYPE_CHECKING:
    from actorq.jobs.options import EnqueueOptions

__all__ = [
    "ScheduleBook",
    "ScheduleInfo",
    "ScheduleVerbs",
    "at_header",
    "next_due",
    "next_dues",
    "run_envelope",
    "to_timestamp",
    "wall_to_instant",
]

#: A fire later than this after its due time counts as missed (``misfire``).
DEFAULT_MISFIRE_GRACE = 60.0


class ScheduleInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One schedule as :meth:`actorq.Client.schedules` lists it."""

    name: str
    queue: str
    function: str
    cron: str | None
    tz: str
    every: float | None
    paused: bool
    runs: int
    max_runs: int | None
    end_at: dt.datetime | None
    last_run: dt.datetime | None
    #: The next few due times (UTC), empty when paused or finished.
    next_runs: list[dt.datetime]


def to_timestamp(when: dt.datetime | float) -> float:
    """Unix time of ``when``; a naive datetime is refused (say which zone you mean)."""
    if isinstance(when, int | float):
        return float(when)
    if when.tzinfo is None or when.utcoffset() is None:
        raise ConfigError(
            f"datetime {when.isoformat()} has no time zone: pass an aware one, e.g. "
            "datetime.now(timezone.utc) + timedelta(minutes=5), or "
            "datetime(2030, 1, 1, 9, tzinfo=ZoneInfo('Europe/Paris'))."
        )
    return when.timestamp()


def at_header(timestamp: float) -> str:
    """The ``Nats-Schedule`` value firing at ``timestamp`` (RFC 3339, UTC)."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return "@at " + moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _utc(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


def next_due(entry: ScheduleEntry, after: float) -> float | None:
    """The first due time of ``entry`` strictly after ``after``, or ``None`` if over."""
    if entry.max_runs is not None and entry.runs >= entry.max_runs:
        return None
    if entry.every is not None:
        anchor = entry.start_at if entry.start_at is not None else entry.created_at
        anchor = float(math.ceil(anchor))
        if after < anchor:
            due = anchor
        else:
            steps = math.floor((after - anchor) / entry.every) + 1
            due = anchor + steps * entry.every
    else:
        assert entry.cron is not None
        start = max(after, entry.start_at - 1) if entry.start_at is not None else after
        due = _next_cron(entry.cron, zoneinfo.ZoneInfo(entry.tz), start)
    if entry.end_at is not None and due > entry.end_at:
        return None
    return due


def wall_to_instant(wall: dt.datetime, zone: dt.tzinfo) -> float:
    """The unix time at which the naive wall-clock time ``wall`` happens in ``zone``:
    its first occurrence when a fall-back repeats it; when a spring-forward skips it,
    the end of the gap (the first wall-clock minute that exists again)."""
    instant = wall.replace(tzinfo=zone, fold=0).timestamp()
    if _exists(wall, zone, instant):
        return instant
    # In a gap: gaps end on a whole minute in every zone of the tz database.
    moment = wall.replace(second=0, microsecond=0)
    for _ in range(_MAX_GAP_MINUTES):
        moment += dt.timedelta(minutes=1)
        instant = moment.replace(tzinfo=zone, fold=0).timestamp()
        if _exists(moment, zone, instant):
            return instant
    raise ValueError(f"no wall-clock time exists in {zone} within a day after {wall}")


#: Longest DST gap looked through (a day: zones have skipped whole dates).
_MAX_GAP_MINUTES = 24 * 60 + 1


def _exists(wall: dt.datetime, zone: dt.tzinfo, instant: float) -> bool:
    back = dt.datetime.fromtimestamp(instant, zone).replace(tzinfo=None)
    return back == wall


def _next_cron(expr: str, zone: dt.tzinfo, after: float) -> float:
    """The first instant strictly after ``after`` at which a wall-clock time matching
    ``expr`` happens in ``zone`` (the rule in this module's docstring)."""
    base = dt.datetime.fromtimestamp(math.floor(after), zone).replace(tzinfo=None)
    # croniter on a naive datetime walks the wall clock, DST unaware; placing each
    # time on the UTC line is ours. A time whose instant is not after ``after``
    # fired already: its first occurrence, or the end of the gap it fell in.
    times = croniter(expr, base)
    for _ in range(_MAX_SKIPPED):
        due = wall_to_instant(times.get_next(dt.datetime), zone)
        if due > after:
            return due
    raise ValueError(f"cron {expr!r} in {zone}: no due time after {after}")


#: Wall-clock times skipped at most in one search (a repeated hour of every second).
_MAX_SKIPPED = 2 * 3600 + 2


def run_envelope(entry: ScheduleEntry, job_id: str, now: float) -> JobEnvelope:
    """The job of one run of ``entry`` (a due time's, or one triggered now), signed by
    the schedule's own signature."""
    return JobEnvelope(
        id=job_id,
        queue=entry.queue,
        function=entry.function,
        codec=entry.codec,
        payload=entry.payload,
        signature=entry.signature,
        options=entry.options,
        enqueued_at=now,
    )


def next_dues(entry: ScheduleEntry, after: float, count: int = 3) -> list[float]:
    """Up to ``count`` due times after ``after``, as if each ran (for listing)."""
    out: list[float] = []
    runs = entry.runs
    cursor = after
    for _ in range(count):
        due = next_due(msgspec.structs.replace(entry, runs=runs), cursor)
        if due is None:
            break
        out.append(due)
        cursor, runs = due, runs + 1
    return out


def info(entry: ScheduleEntry, now: float) -> ScheduleInfo:
    """The listing view of an entry."""
    upcoming: list[float] = []
    if not entry.paused and entry.next_run is not None:
        upcoming = [entry.next_run, *next_dues(
            msgspec.structs.replace(entry, runs=entry.runs + 1), entry.next_run, 2)]  # fmt: skip
    return ScheduleInfo(
        name=entry.name,
        queue=entry.queue,
        function=entry.function,
        cron=entry.cron,
        tz=entry.tz,
        every=entry.every,
        paused=entry.paused,
        runs=entry.runs,
        max_runs=entry.max_runs,
        end_at=_utc(entry.end_at),
        last_run=_utc(entry.last_run),
        next_runs=[d for d in (_utc(t) for t in upcoming) if d is not None],
    )


def _same_plan(a: ScheduleEntry, b: ScheduleEntry) -> bool:
    keep = ("version", "runs", "next_run", "last_run", "created_at", "updated_at", "paused")
    strip = dict.fromkeys(keep)
    return msgspec.structs.replace(a, **strip) == msgspec.structs.replace(b, **strip)


class ScheduleBook:
    """A client's view of the schedules bucket: declare, list, pause, resume, delete."""

    def __init__(self, client: Any, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.streams: JobStreams = client.streams
        self.clock = clock

    def build(
        self, name: str, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any],
        *, cron: str | None, every: float | dt.timedelta | None, tz: str, queue: str,
        options: JobOptions, start_at: dt.datetime | float | None,
        end_at: dt.datetime | float | None, max_runs: int | None,
        misfire: Literal["run_once", "skip"], misfire_grace: float,
    ) -> ScheduleEntry:  # fmt: skip
        """A new entry (no I/O); raises :class:`ConfigError` for a bad plan."""
        check_job_id(name)
        check_queue_name(queue)
        if (cron is None) == (every is None):
            raise ConfigError(f"schedule {name!r}: give exactly one of cron=... or every=...")
        seconds: float | None = None
        if every is not None:
            seconds = every.total_seconds() if isinstance(every, dt.timedelta) else float(every)
            if seconds < 1 or seconds != int(seconds):
                raise ConfigError(
                    f"schedule {name!r}: every={seconds}s must be a whole number of seconds "
                    ">= 1 (due times are whole seconds)"
                )
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"schedule {name!r}: unknown time zone {tz!r}; use an IANA name like "
                "'Europe/Paris' or 'UTC'"
            ) from None
        if cron is not None and not croniter.is_valid(cron):
            raise ConfigError(
                f"schedule {name!r}: invalid cron expression {cron!r} (croniter syntax: "
                "'min hour day month weekday [second]')"
            )
        if misfire not in ("run_once", "skip"):
            raise ConfigError(f"schedule {name!r}: misfire must be 'run_once' or 'skip'")
        client = self.client
        payload = client.codec.encode_call(fn, args, kwargs)
        room = message_room(client.conn)
        if len(payload) > room:
            # Each fire copies the arguments from the entry into a job's envelope.
            raise PayloadTooLarge(
                f"schedule {name!r}: its encoded arguments are {len(payload)} bytes, over "
                f"the limit of {room} bytes for a schedule (the server's max_payload less "
                "room for the entry): pass less, or a reference to the data"
            )
        now = self.clock()
        return ScheduleEntry(
            name=name,
            queue=queue,
            function=_function_name(fn),
            codec=client.codec.name,
            payload=payload,
            signature=self._signature(name, queue, fn, payload, options),
            options=canonical_options(options),
            cron=cron,
            tz=tz,
            every=seconds,
            start_at=None if start_at is None else to_timestamp(start_at),
            end_at=None if end_at is None else to_timestamp(end_at),
            max_runs=max_runs,
            misfire=misfire,
            misfire_grace=misfire_grace,
            created_at=now,
            updated_at=now,
        )

    def _signature(
        self, name: str, queue: str, fn: Callable[..., Any], payload: bytes, options: JobOptions
    ) -> bytes | None:
        """The signature of the schedule's runs (``None`` when the client does not sign)."""
        client = self.client
        if client.signer is None:
            return None
        return schedule_signature(
            client.signer, name=name, queue=queue, function=_function_name(fn),
            codec=client.codec.name, payload=payload, options=options,
        )  # fmt: skip

    async def declare(self, entry: ScheduleEntry) -> ScheduleInfo:
        """Store ``entry`` under its name; re-declaring updates it, never duplicates it.

        An unchanged re-declaration (an app declaring its schedules at every start)
        changes nothing, so the pending timer and run count stay as they are.
        """
        kv = self.client.schedules_kv
        for _ in range(10):
            current = await kv.get(entry.name)
            old = decode_schedule_entry(current.value) if current is not None else None
            if old is not None and _same_plan(old, entry):
                return info(old, self.clock())
            new = entry
            if old is not None:
                new = msgspec.structs.replace(
                    entry, version=old.version + 1, runs=old.runs, last_run=old.last_run,
                    created_at=old.created_at, paused=old.paused,
                )  # fmt: skip
            stored = await self._arm_and_store(new, current.revision if current else 0)
            if stored is not None:
                return info(stored, self.clock())
        raise Conflict(f"schedule {entry.name!r} keeps changing concurrently; try again")

    async def _arm_and_store(self, entry: ScheduleEntry, revision: int) -> ScheduleEntry | None:
        """Purge old timers, set the timer of the next due time, then store the entry;
        ``None`` when the entry changed meanwhile (compare-and-set lost).

        The timer goes first: a stored entry always has its timer (a crash in between
        leaves a timer whose version no stored entry has, which the scheduler drops).
        """
        now = self.clock()
        if revision:  # a new schedule has no timers to purge
            await self.client.conn.jsm(
                "purge_stream",
                self.streams.jobs_stream,
                subject=self.streams.timers_filter(entry.name),
            )
        due = None if entry.paused else next_due(entry, now)
        entry = msgspec.structs.replace(entry, next_run=due, updated_at=now)
        if due is not None:
            await arm(self.client.conn, self.streams, entry.name, entry.version, due)
        kv = self.client.schedules_kv
        try:
            if revision:
                await kv.update(entry.name, encode(entry), revision)
            else:
                await kv.create(entry.name, encode(entry))
        except BrokerError:
            return None
        return entry

    async def get(self, name: str) -> tuple[ScheduleEntry, int]:
        entry = await self.client.schedules_kv.get(name)
        if entry is None:
            raise NotFound(f"no schedule {name!r}; list them with `actorq schedules list`")
        return decode_schedule_entry(entry.value), entry.revision

    async def list(self) -> list[ScheduleInfo]:
        """Every schedule with its next run times, sorted by name."""
        kv = self.client.schedules_kv
        now = self.clock()
        out = []
        for name in sorted(await kv.keys()):
            entry = await kv.get(name)
            if entry is not None:
                out.append(info(decode_schedule_entry(entry.value), now))
        return out

    async def set_paused(self, name: str, paused: bool) -> ScheduleInfo:
        """Pause (no timer pending) or resume (next due time after now) a schedule."""
        for _ in range(10):
            entry, revision = await self.get(name)
            if entry.paused == paused:
                return info(entry, self.clock())
            new = msgspec.structs.replace(entry, paused=paused, version=entry.version + 1)
            stored = await self._arm_and_store(new, revision)
            if stored is not None:
                return info(stored, self.clock())
        raise Conflict(f"schedule {name!r} keeps changing concurrently; try again")

    async def delete(self, name: str) -> None:
        """Delete a schedule and its pending timer; a job already enqueued still runs."""
        await self.get(name)
        await self.client.schedules_kv.delete(name)
        await self.client.conn.jsm(
            "purge_stream", self.streams.jobs_stream, subject=self.streams.timers_filter(name)
        )


    async def trigger(self, name: str) -> tuple[str, str]:
        """Enqueue one run of ``name`` now, outside its plan (its run count and next
        due time stay as they are); returns the job id and queue.

        The id is ``<name>-<unix ms>``: the shape of a run's id, so the schedule's own
        signature covers it (no key needed here), and never a due time's id, which
        counts seconds."""
        entry, _ = await self.get(name)
        now = self.clock()
        job_id = f"{name}-{int(now * 1000)}"
        env = run_envelope(entry, job_id, now)
        await self.client.conn.js_publish(
            self.streams.job_subject(entry.queue, job_id), encode(env), msg_id=job_id
        )
        return job_id, entry.queue


class ScheduleVerbs:
    """The schedule verbs of :class:`actorq.Client` (kept here, next to what they do)."""

    _book: ScheduleBook

    async def schedule(
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
        """Run ``fn(*args, **kwargs)`` on a ``cron`` expression (in zone ``tz``) or
        ``every`` so many seconds, as job ``<name>-<due unix time>``.

        ``name`` is the schedule's identity: declaring it again updates it (an
        unchanged declaration changes nothing), never duplicates it. ``max_runs`` /
        ``end_at`` end it; ``misfire`` says what to do with a due time found more
        than ``misfire_grace`` seconds late (no scheduler was running): ``run_once``
        enqueues one job for everything missed, ``skip`` enqueues none. ``options``
        (an :class:`~actorq.EnqueueOptions`) sets the queue, retries, timeout... of
        the jobs. A running scheduler actor
        (:func:`actorq.jobs.scheduler_actor.serve_scheduler_actor`) fires it.
        """
        job_options = JobOptions()
        if options is not None:
            if options.job_id is not None or options.depends_on:
                raise UsageError("schedule() makes its own job ids and takes no depends_on")
            queue, job_options = options.queue, options.job_options()
        entry = self._book.build(
            name, fn, args, kwargs, cron=cron, every=every, tz=tz, queue=queue,
            options=job_options, start_at=start_at, end_at=end_at,
            max_runs=max_runs, misfire=misfire, misfire_grace=misfire_grace,
        )  # fmt: skip
        return await self._book.declare(entry)

    async def schedules(self) -> list[ScheduleInfo]:
        """Every recurring schedule, with its next run times."""
        return await self._book.list()

    async def pause_schedule(self, name: str) -> ScheduleInfo:
        """Stop firing ``name`` until :meth:`resume_schedule`; nothing is lost or queued up."""
        return await self._book.set_paused(name, True)

    async def resume_schedule(self, name: str) -> ScheduleInfo:
        """Fire ``name`` again from its next due time after now."""
        return await self._book.set_paused(name, False)

    async def delete_schedule(self, name: str) -> None:
        """Delete ``name``; raises :class:`~actorq.exceptions.NotFound` if there is no
        such schedule."""
        await self._book.delete(name)


async def arm(conn: Any, streams: JobStreams, name: str, version: int, due: float) -> None:
    """Set the server timer that fires ``name`` at ``due`` (idempotent per due time)."""
    fire = ScheduleFire(name=name, version=version, due=due)
    await conn.js_publish(
        streams.timer_subject(name, version, due),
        encode(fire),
        headers=timer_headers(streams, name, due),
        msg_id=f"t-{name}-{version}-{int(due)}",
    )


def timer_headers(streams: JobStreams, name: str, due: float) -> dict[str, str]:
    """Headers of a schedule's timer message."""
    return {"Nats-Schedule": at_header(due), "Nats-Schedule-Target": streams.fired_subject(name)}


def _function_name(fn: Callable[..., Any]) -> str:
    from actorq.wire.codec import function_path

    try:
        return function_path(fn)
    except Exception:
        return repr(fn)
