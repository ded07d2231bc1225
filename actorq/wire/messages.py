"""Every message the runtime's actors exchange, as ``msgspec.Struct`` types on msgpack.

Two kinds of struct live here:

* **Messages** travel on their own (a NATS message body, a KV value). Each carries a
  tag in field ``"t"`` (the class name), so a decoder handed the wrong family, or a
  union of several, says exactly what it got::

      JobEnvelope   client → queue actor          a job to run
      JobOutcome    queue actor → result actor    what one attempt did
      JobRecord     result actor → KV bucket      everything known about one job
      DeadLetter    result actor → DLQ stream     a job (or raw message) given up on
      CancelJob     client → cancels bucket       a job that must not run (durable)
      WaitForParents client → result actor        a job held until its parents finish
      WaitingJob    client → deps bucket          the held job's envelope and parents
      ScheduleEntry client → schedules bucket     a recurring schedule and its state
      ScheduleFire  server timer → scheduler      a schedule's due time has come

* **The actor protocol** (``Ping``/``Pong``, ``Introspect``/``ActorInfo``): what every
  actor answers, in the same tagged format as user actor messages.

* **Values** (``RetryBackoff``, ``JobOptions``, ``ErrorInfo``, ``StatusChange``) are only
  ever nested inside messages, so they carry no tag.

Everything is ``frozen``: change a message with :func:`msgspec.structs.replace`.
Constraints written as ``Meta(...)`` (e.g. ``attempt >= 1``) are checked when bytes are
decoded, which is where untrusted input enters; constructors trust the caller.

Unknown fields are ignored rather than refused, so an actor of a newer version can add
a field without breaking older actors sharing the same NATS during a rolling upgrade.

Encode any message with :func:`encode`; decode with the function for the family you
expect (:func:`decode_envelope`, ...), or :func:`decode_message` for any of them. A
malformed message raises :class:`~actorq.exceptions.CodecError` whose text keeps
msgspec's path to the bad field, e.g. ``Expected `int`, got `str` - at `$.attempt```.
"""

from __future__ import annotations

import importlib.util
import os
import random
import traceback as _traceback
from pathlib import Path
from types import TracebackType
from typing import Annotated, Final, Literal, TypeAlias, TypeVar

import msgspec
from msgspec.structs import replace

from actorq.exceptions import CodecError

__all__ = [
    "JOB_STATUSES",
    "TERMINAL_STATUSES",
    "ActorInfo",
    "AnyMessage",
    "CancelJob",
    "DeadLetter",
    "ErrorInfo",
    "Introspect",
    "JobEnvelope",
    "JobOptions",
    "JobOutcome",
    "JobRecord",
    "JobStatus",
    "OutcomeBatch",
    "OutcomeStatus",
    "Ping",
    "Pong",
    "RetryBackoff",
    "ScheduleEntry",
    "ScheduleFire",
    "StatusChange",
    "WaitForParents",
    "WaitingJob",
    "decode_dead_letter",
    "decode_envelope",
    "decode_message",
    "decode_outcome",
    "decode_record",
    "decode_result_input",
    "decode_schedule_entry",
    "decode_schedule_fire",
    "decode_waiting_job",
    "encode",
]

# -- constrained scalars ---------------------------------------------------------------

#: A non-empty identifier (job id, queue name, worker name).
Name = Annotated[str, msgspec.Meta(min_length=1)]
#: A duration or count that cannot be negative.
Seconds = Annotated[float, msgspec.Meta(ge=0)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
#: Attempts count from 1: the first run of a job is attempt 1.
Attempt = Annotated[int, msgspec.Meta(ge=1)]
#: Unix time in seconds (``time.time()``).
Timestamp = float

# -- statuses --------------------------------------------------------------------------

#: Where a job is in its life. ``waiting`` = held until the jobs it depends on finish;
#: ``scheduled`` = held until a time; ``failed`` = gave up after its retries;
#: ``dead`` = moved to the dead-letter stream (undecodable, bad signature, ...).
JobStatus: TypeAlias = Literal[
    "queued",
    "scheduled",
    "waiting",
    "running",
    "succeeded",
    "failed",
    "retrying",
    "cancelled",
    "dead",
]

#: What a single attempt can end in; a subset of :data:`JobStatus`.
OutcomeStatus: TypeAlias = Literal[
    "running", "succeeded", "failed", "retrying", "cancelled", "dead"
]

#: Every :data:`JobStatus`, in life-cycle order (for CLIs and validation).
JOB_STATUSES: Final[tuple[JobStatus, ...]] = (
    "queued",
    "scheduled",
    "waiting",
    "running",
    "succeeded",
    "failed",
    "retrying",
    "cancelled",
    "dead",
)

#: Statuses after which nothing more happens to a job; waiters wake on these.
TERMINAL_STATUSES: Final[frozenset[JobStatus]] = frozenset(
    {"succeeded", "failed", "cancelled", "dead"}
)


# -- base classes ----------------------------------------------------------------------


class _Value(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A value nested in messages: immutable, untagged, defaults left off the wire."""


class _Message(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="t", tag=True
):
    """A message sent on its own; its class name travels in field ``"t"``."""


# -- values ----------------------------------------------------------------------------


class RetryBackoff(_Value, frozen=True, kw_only=True):
    """How long to wait before retrying a failed job.

    ``kind="fixed"`` waits ``base`` seconds every time; ``kind="exponential"`` waits
    ``base * 2**(attempt - 1)``. Both are capped at ``cap`` seconds.

    With ``jitter=True`` the delay uses *equal jitter*: half of it is kept and the other
    half is drawn uniformly, so the result lies in ``[d/2, d]``. Equal rather than full
    jitter (``[0, d]``) because a retry should never fire almost immediately after a
    failure, while many jobs failing together (a database restart) still spread out.
    """

    kind: Literal["fixed", "exponential"] = "exponential"
    base: Seconds = 1.0
    cap: Seconds = 300.0
    jitter: bool = True

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 = the first run).

        ``rng`` draws the jitter; pass a seeded :class:`random.Random` for repeatable
        delays (tests), or leave it out to use the module's generator.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        # Bound the exponent: 2.0**1024 overflows, and any delay that large is capped.
        growth = 1.0 if self.kind == "fixed" else 2.0 ** min(attempt - 1, 1000)
        delay = min(self.cap, self.base * growth)
        if not self.jitter:
            return delay
        draw = (rng or random).random()
        return delay / 2 + draw * delay / 2


class JobOptions(_Value, frozen=True, kw_only=True):
    """Per-job settings chosen at enqueue time.

    ``max_retries`` counts retries, not runs: ``max_retries=3`` allows 4 attempts.
    ``timeout`` bounds one attempt; ``result_ttl`` how long the result is kept (``None``
    for the result bucket's default). ``depends_on`` lists job ids that must succeed
    before this job may run; ``metadata`` is free-form and copied to outcomes' records.
    """

    max_retries: Count = 3
    backoff: RetryBackoff = RetryBackoff()
    timeout: PositiveSeconds | None = None
    result_ttl: PositiveSeconds | None = None
    metadata: dict[str, str] = {}
    depends_on: list[str] = []


class ErrorInfo(_Value, frozen=True, kw_only=True):
    """An exception raised by a job, flattened to text so any process can show it."""

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Capture ``exc``'s qualified type name, message and formatted traceback."""
        kind = type(exc)
        # Builtins read better bare ("ValueError", not "builtins.ValueError").
        name = kind.__qualname__
        if kind.__module__ != "builtins":
            name = f"{kind.__module__}.{name}"
        return cls(
            type=name,
            message=str(exc),
            traceback="".join(_traceback.format_exception(type(exc), exc, _user_frames(exc))),
        )


#: Where the frames that run a job come from: actorq itself, Trio and the asyncio
#: bridge. A job's traceback starts past them, at the user's own first frame.
_RUNTIME_DIRS = (
    *(
        os.path.dirname(spec.origin) + os.sep
        for spec in map(importlib.util.find_spec, ("trio", "outcome", "trio_asyncio", "asyncio"))
        if spec is not None and spec.origin
    ),
    str(Path(__file__).parents[1]) + os.sep,
)


def _user_frames(exc: BaseException) -> TracebackType | None:
    """``exc``'s traceback from its first frame outside the runtime (all of it when
    every frame is the runtime's, as for an error of actorq's own)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_RUNTIME_DIRS):
        tb = tb.tb_next
    return tb if tb is not None else exc.__traceback__


class StatusChange(msgspec.Struct, frozen=True, array_like=True):
    """One entry of a job's history: it entered ``status`` at unix time ``at``.

    Encoded as the pair ``[status, at]``, since a history can be long.
    """

    status: JobStatus
    at: Timestamp


# -- job messages ----------------------------------------------------------------------


class JobEnvelope(_Message, frozen=True, kw_only=True):
    """A job on its way to a queue actor.

    ``payload`` is the function with its arguments, encoded by the codec named in
    ``codec`` (see :mod:`actorq.wire.codec`); ``signature`` is its HMAC when the sender signs.
    ``function`` is for people and logs only (``"pkg.mod:qualname"``): the worker runs
    what the payload holds. ``attempt`` is 1 on first delivery and grows with retries.
    """

    id: Name
    queue: Name
    function: str
    codec: Name
    payload: bytes
    signature: bytes | None = None
    options: JobOptions = JobOptions()
    attempt: Attempt = 1
    enqueued_at: Timestamp
    #: Core subject the final record is also announced on (the enqueuer's inbox).
    reply_to: str | None = None
    #: Set when the payload was too large for a message: ``payload`` is empty and the
    #: bytes are this object of the namespace's object store (``signature`` still
    #: covers them; see :mod:`actorq.jobs.large_payloads`).
    payload_ref: str | None = None


class JobOutcome(_Message, frozen=True, kw_only=True):
    """What one attempt of a job ended in, reported by the worker that ran it.

    ``result`` (on success) is encoded by the job's codec, named in ``codec``, and
    signed in ``signature`` when the codec signs, so a reader never decodes a result an
    unauthenticated writer put in the store. ``retry_in`` is the backoff chosen when
    ``status == "retrying"``.
    """

    job_id: Name
    queue: Name
    status: OutcomeStatus
    codec: Name = "pickle"
    result: bytes | None = None
    signature: bytes | None = None
    error: ErrorInfo | None = None
    attempt: Attempt = 1
    retry_in: Seconds | None = None
    started_at: Timestamp
    finished_at: Timestamp
    worker: str = ""
    # Copied from the envelope so the result actor can build a record without a read.
    function: str = ""
    enqueued_at: Timestamp = 0.0
    metadata: dict[str, str] = {}
    result_ttl: PositiveSeconds | None = None
    # The envelope's bytes, sent with a final failure so it can be dead-lettered.
    original: bytes | None = None
    reply_to: str | None = None
    #: Set when the result was too large for a message: ``result`` is empty and the
    #: bytes are this object of the namespace's object store.
    result_ref: str | None = None
    #: The attempt's trace context (W3C ``traceparent``...) when it was traced
    #: (:mod:`actorq.jobs.tracing`); empty, and not encoded, otherwise.
    trace: dict[str, str] = {}


class OutcomeBatch(_Message, frozen=True, kw_only=True):
    """Several outcomes in one message: a queue actor reports a whole batch at once.

    One publish and one ack per batch instead of per job is most of what keeps the
    reporting path cheap.
    """

    outcomes: list[JobOutcome]


class JobRecord(_Message, frozen=True, kw_only=True):
    """Everything the result store keeps about one job, including its status history."""

    id: Name
    queue: Name
    function: str
    status: JobStatus
    codec: Name = "pickle"
    attempts: Count = 0
    enqueued_at: Timestamp
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    result: bytes | None = None
    signature: bytes | None = None
    error: ErrorInfo | None = None
    worker: str = ""
    metadata: dict[str, str] = {}
    history: list[StatusChange] = []
    #: The object holding the result when it was too large for the record.
    result_ref: str | None = None

    @property
    def done(self) -> bool:
        """Whether the job has reached a status after which nothing more happens."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_envelope(
        cls, envelope: JobEnvelope, *, status: JobStatus = "queued", at: Timestamp | None = None
    ) -> JobRecord:
        """The first record of a job just enqueued (``at`` defaults to its enqueue time)."""
        when = envelope.enqueued_at if at is None else at
        return cls(
            id=envelope.id,
            queue=envelope.queue,
            function=envelope.function,
            status=status,
            codec=envelope.codec,
            enqueued_at=envelope.enqueued_at,
            metadata=dict(envelope.options.metadata),
            history=[StatusChange(status, when)],
        )

    def with_status(self, status: JobStatus, at: Timestamp) -> JobRecord:
        """A copy that has moved to ``status`` at ``at``, with the move in its history."""
        started = at if status == "running" else self.started_at
        history = [*self.history, StatusChange(status, at)]
        return replace(self, status=status, started_at=started, history=history)

    @classmethod
    def from_outcome(cls, outcome: JobOutcome) -> JobRecord:
        """The record of a job first seen through an outcome (no earlier record)."""
        base = cls(
            id=outcome.job_id,
            queue=outcome.queue,
            function=outcome.function,
            status="queued",
            codec=outcome.codec,
            enqueued_at=outcome.enqueued_at or outcome.started_at,
            metadata=dict(outcome.metadata),
            history=[StatusChange("queued", outcome.enqueued_at or outcome.started_at)],
        )
        return base.apply(outcome)

    def apply(self, outcome: JobOutcome) -> JobRecord:
        """A copy updated with one attempt's outcome (result, error, timings, history)."""
        finished = outcome.finished_at if outcome.status in TERMINAL_STATUSES else None
        return replace(
            self,
            status=outcome.status,
            codec=outcome.codec,
            attempts=max(self.attempts, outcome.attempt),
            started_at=outcome.started_at,
            finished_at=finished,
            result=outcome.result,
            result_ref=outcome.result_ref,
            signature=outcome.signature,
            error=outcome.error,
            worker=outcome.worker,
            history=[*self.history, StatusChange(outcome.status, outcome.finished_at)],
        )


class DeadLetter(_Message, frozen=True, kw_only=True):
    """A job, or a raw message that never became one, that the runtime gave up on.

    ``original`` keeps the exact bytes received and ``headers`` their NATS headers, so a
    dead letter can be inspected and replayed as it was. ``job_id`` is ``None`` when the
    bytes could not even be decoded. ``reason`` is a short machine word
    (``"max_retries"``, ``"max_deliveries"``, ``"undecodable"``, ``"bad_signature"``,
    ...); ``detail`` is the human explanation (an error message, a traceback).
    """

    job_id: str | None = None
    queue: str
    reason: Name
    detail: str = ""
    original: bytes
    headers: dict[str, str] = {}
    failed_at: Timestamp


# -- control messages ------------------------------------------------------------------


class CancelJob(_Message, frozen=True, kw_only=True):
    """Ask that a job not run, or stop if it is running. Stored durably by the sender."""

    job_id: Name
    reason: str = ""
    requested_at: Timestamp


# -- the actor protocol: what every actor answers ---------------------------------------
#
# User actors and the runtime's own (queue, result, scheduler) answer these, so the CLI
# or a dashboard asks any actor the same way (``ref.ask(Ping())``). They use msgspec's
# default tag field ("type"), like user messages, so they join any actor's dispatch
# union; their tags carry an ``actorq.`` prefix, so a user's own ``Ping`` class is
# another message.


class Ping(msgspec.Struct, frozen=True, tag="actorq.ping"):
    """Are you there? Every actor answers with a :class:`Pong`."""


class Pong(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a :class:`Ping`: which process of the actor answered."""

    name: str
    pid: int
    host: str


class Introspect(msgspec.Struct, frozen=True, tag="actorq.introspect"):
    """What are you doing? Every actor answers with an :class:`ActorInfo`."""


class ActorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One actor process, as it describes itself.

    ``role`` is ``actor`` for user actors, else ``queue``, ``results`` or ``scheduler``;
    ``stats`` holds the role's own figures (a queue actor's running jobs and capacity,
    the scheduler's leadership, ...; a user actor's :meth:`~actorq.Actor.stats`).
    """

    name: str
    role: str
    pid: int
    host: str
    started_at: Timestamp
    stats: dict[str, int | float | str | bool | None] = {}


# -- held jobs: dependencies and schedules ---------------------------------------------


class WaitForParents(_Message, frozen=True, kw_only=True):
    """Tells the result actor that job ``job_id`` waits for ``parents`` to succeed.

    Sent on the outcomes stream, so the result actor sees it in order with the
    parents' outcomes: a parent that finished before is found final, one that finishes
    after finds the child registered. The held envelope is in the deps bucket.
    """

    job_id: Name
    queue: Name
    parents: list[str]
    function: str = ""
    enqueued_at: Timestamp = 0.0
    metadata: dict[str, str] = {}
    reply_to: str | None = None


class WaitingJob(_Message, frozen=True, kw_only=True):
    """A job held until its parents succeed: its encoded envelope and the parents left."""

    envelope: bytes
    parents: list[str]


class ScheduleFire(_Message, frozen=True, kw_only=True):
    """Fired by the server's timer at a schedule's due time, for the leading scheduler.

    ``version`` is the schedule's version when the timer was set: a timer of an older
    version (the schedule was re-declared, paused or deleted since) is dropped.
    """

    name: Name
    version: Count
    due: Timestamp


class ScheduleEntry(_Message, frozen=True, kw_only=True):
    """A recurring schedule, as stored under its name: what to run, when, and its state.

    Exactly one of ``cron`` (croniter syntax, seconds as an optional sixth field, read
    in the IANA zone ``tz``) and ``every`` (seconds) is set. ``next_run`` is the due
    time the one pending timer is set for (``None``: nothing pending, e.g. finished).
    """

    name: Name
    queue: Name
    function: str
    codec: Name
    payload: bytes
    signature: bytes | None = None
    options: JobOptions = JobOptions()
    cron: str | None = None
    tz: str = "UTC"
    every: PositiveSeconds | None = None
    start_at: Timestamp | None = None
    end_at: Timestamp | None = None
    max_runs: Count | None = None
    misfire: Literal["run_once", "skip"] = "run_once"
    misfire_grace: Seconds = 60.0
    paused: bool = False
    version: Count = 0
    runs: Count = 0
    next_run: Timestamp | None = None
    last_run: Timestamp | None = None
    created_at: Timestamp = 0.0
    updated_at: Timestamp = 0.0


#: Every message type that travels on its own.
AnyMessage: TypeAlias = (
    JobEnvelope
    | JobOutcome
    | OutcomeBatch
    | JobRecord
    | DeadLetter
    | CancelJob
    | WaitForParents
    | WaitingJob
    | ScheduleEntry
    | ScheduleFire
)
#: What arrives on the outcomes stream, for the result actor.
ResultInput: TypeAlias = OutcomeBatch | JobOutcome | WaitForParents


# -- encoding and decoding -------------------------------------------------------------

# One encoder and one decoder per family, built once: the constructors do the type
# analysis, so the hot path only runs the already-compiled codec.
_ENCODER: Final = msgspec.msgpack.Encoder()
_ENVELOPE: Final = msgspec.msgpack.Decoder(JobEnvelope)
_OUTCOME: Final = msgspec.msgpack.Decoder(JobOutcome)
_RECORD: Final = msgspec.msgpack.Decoder(JobRecord)
_RESULT_INPUT: Final[msgspec.msgpack.Decoder[ResultInput]] = msgspec.msgpack.Decoder(ResultInput)
_WAITING: Final = msgspec.msgpack.Decoder(WaitingJob)
_SCHEDULE: Final = msgspec.msgpack.Decoder(ScheduleEntry)
_FIRE: Final = msgspec.msgpack.Decoder(ScheduleFire)
_DEAD_LETTER: Final = msgspec.msgpack.Decoder(DeadLetter)
# Unions are not ``type[T]``, so mypy needs the decoded type spelled out.
_ANY: Final[msgspec.msgpack.Decoder[AnyMessage]] = msgspec.msgpack.Decoder(AnyMessage)

_T = TypeVar("_T")


def encode(message: AnyMessage) -> bytes:
    """Encode any message (with its tag) to msgpack bytes.

    Raises :class:`CodecError` when a field holds something msgpack cannot carry, which
    only happens when a caller put the wrong type in a field.
    """
    try:
        return _ENCODER.encode(message)
    except (msgspec.EncodeError, TypeError, OverflowError) as exc:
        raise CodecError(
            f"cannot encode {type(message).__name__}: {exc}; "
            "every field must hold the type its annotation names"
        ) from exc


def _decode(decoder: msgspec.msgpack.Decoder[_T], data: bytes, family: str) -> _T:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        # msgspec's text already names the path ("... - at `$.options.timeout`").
        raise CodecError(
            f"invalid {family}: {exc}; the sender may run an incompatible actorq version"
        ) from exc
    except msgspec.DecodeError as exc:
        raise CodecError(f"{family} is not valid msgpack: {exc}") from exc


def decode_envelope(data: bytes) -> JobEnvelope:
    """Decode a :class:`JobEnvelope`; raises :class:`CodecError` naming the bad field."""
    return _decode(_ENVELOPE, data, "job envelope")


def decode_outcome(data: bytes) -> JobOutcome:
    """Decode a :class:`JobOutcome`; raises :class:`CodecError` naming the bad field."""
    return _decode(_OUTCOME, data, "job outcome")


def decode_record(data: bytes) -> JobRecord:
    """Decode a :class:`JobRecord`; raises :class:`CodecError` naming the bad field."""
    return _decode(_RECORD, data, "job record")


def decode_dead_letter(data: bytes) -> DeadLetter:
    """Decode a :class:`DeadLetter`; raises :class:`CodecError` naming the bad field."""
    return _decode(_DEAD_LETTER, data, "dead letter")


def decode_message(data: bytes) -> AnyMessage:
    """Decode any message, chosen by its tag (for an inbox that takes several kinds)."""
    return _decode(_ANY, data, "message")


def decode_result_input(data: bytes) -> OutcomeBatch | JobOutcome | WaitForParents:
    """Decode whatever the outcomes stream carries (outcomes or a dependency)."""
    return _decode(_RESULT_INPUT, data, "outcome or dependency")


def decode_waiting_job(data: bytes) -> WaitingJob:
    """Decode a :class:`WaitingJob`; raises :class:`CodecError` naming the bad field."""
    return _decode(_WAITING, data, "waiting job")


def decode_schedule_entry(data: bytes) -> ScheduleEntry:
    """Decode a :class:`ScheduleEntry`; raises :class:`CodecError` naming the bad field."""
    return _decode(_SCHEDULE, data, "schedule")


def decode_schedule_fire(data: bytes) -> ScheduleFire:
    """Decode a :class:`ScheduleFire`; raises :class:`CodecError` naming the bad field."""
    return _decode(_FIRE, data, "schedule fire")
