"""Job arguments and results too large for a NATS message travel in the object store.

A message may not exceed the server's ``max_payload`` (1 MiB by default), and an
envelope, outcome or record needs room around what it carries (:data:`RECORD_ROOM`).
So an encoded argument payload or result over ``max_payload - RECORD_ROOM`` is put in
the namespace's object store bucket (``<ns>_objects``: chunked, with a SHA-256 digest
checked on read) and the message carries its name instead::

    envelope.payload_ref = "args.<job id>"      payload = b""
    outcome.result_ref   = "result.<job id>"    result  = None   (record: the same)

Signatures still cover the bytes themselves: an envelope is signed before its payload
leaves it and checked after it is put back; a result's signature is computed on the
result. The bucket's TTL is the results bucket's, so an object goes with the record
that points at it. Above ``max_bytes`` (``[results] max_bytes``, 64 MiB by default)
nothing is stored: an enqueue raises :class:`~actorq.exceptions.PayloadTooLarge`, and
a job whose result is that large fails (dead letter ``oversize``), both naming the
size and the limit.
"""

from __future__ import annotations

from msgspec.structs import replace

from actorq.exceptions import CodecError, NotFound, PayloadTooLarge
from actorq.jobs.outcome_reports import RECORD_ROOM
from actorq.jobs.streams import JobStreams
from actorq.nats.connection import Connection
from actorq.nats.objects import ObjectStore
from actorq.wire.messages import JobEnvelope, JobRecord

__all__ = ["LargePayloads", "args_object", "message_room", "result_object", "too_large"]


def message_room(conn: Connection) -> int:
    """Largest payload or result that travels inside a message on ``conn``'s server."""
    return conn.max_payload - RECORD_ROOM


def args_object(job_id: str) -> str:
    """Name of the object holding a job's encoded arguments."""
    return f"args.{job_id}"


def result_object(job_id: str) -> str:
    """Name of the object holding a job's encoded result."""
    return f"result.{job_id}"


def too_large(what: str, size: int, limit: int, advice: str) -> str:
    """The error text for ``what`` of ``size`` bytes over ``limit``."""
    limit_text = f"over the limit of {limit} bytes ([results] max_bytes)"
    return f"{what} is {size} bytes, {limit_text}: {advice}"


class LargePayloads:
    """A namespace's object store of large arguments and results, opened on first use."""

    def __init__(self, conn: Connection, streams: JobStreams) -> None:
        self.conn = conn
        self.streams = streams
        self._store: ObjectStore | None = None

    async def store(self) -> ObjectStore:
        """The object store bucket (made if missing, with the default TTL)."""
        if self._store is None:
            self._store = await self.streams.objects(self.conn)
        return self._store

    def fits(self, data: bytes) -> bool:
        """Whether ``data`` travels inside a message (no object needed)."""
        return len(data) <= message_room(self.conn)

    async def fit_envelope(self, env: JobEnvelope, *, max_bytes: int) -> JobEnvelope:
        """``env``, its payload moved to the object store when it is too large for a
        message; raises :class:`PayloadTooLarge` above ``max_bytes``. Call it after
        signing."""
        size = len(env.payload)
        if self.fits(env.payload):
            return env
        if size > max_bytes:
            advice = "pass less, or store the data elsewhere and pass a reference"
            raise PayloadTooLarge(too_large("the job's encoded arguments", size, max_bytes, advice))
        name = args_object(env.id)
        await (await self.store()).put(name, env.payload)
        return replace(env, payload=b"", payload_ref=name)

    async def load_envelope(self, env: JobEnvelope) -> JobEnvelope:
        """``env`` with the payload its ``payload_ref`` names put back; raises
        :class:`CodecError` when the object is gone (expired or deleted)."""
        assert env.payload_ref is not None
        store = await self.store()
        data = await store.get(env.payload_ref)
        if data is None:
            raise CodecError(
                f"the job's arguments (object {env.payload_ref!r} of {store.bucket}) are "
                "gone: expired with the results' TTL, or deleted"
            )
        return replace(env, payload=data, payload_ref=None)

    async def put_result(self, job_id: str, data: bytes) -> str:
        """Store a job's encoded result; returns the object's name."""
        name = result_object(job_id)
        await (await self.store()).put(name, data)
        return name

    async def load_result(self, record: JobRecord) -> JobRecord:
        """``record`` with the result its ``result_ref`` names filled in; raises
        :class:`NotFound` when the object is gone."""
        if record.result_ref is None or record.result is not None:
            return record
        store = await self.store()
        data = await store.get(record.result_ref)
        if data is None:
            raise NotFound(
                f"the result of job {record.id} (object {record.result_ref!r} of "
                f"{store.bucket}) is gone: it expired with the results' TTL, or was deleted"
            )
        return replace(record, result=data)
