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
from actorq.nats.connection import Connection
from actorq.nats.objects import ObjectStore
from actorq.wire.messages import JobEnvelope, JobRecord

__all__ = [
    "args_object",
    "load_payload",
    "load_result",
    "message_room",
    "needs_object",
    "offload_payload",
    "result_object",
    "too_large",
]

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
    return (
        f"{what} is {size} bytes, over the limit of {limit} bytes ([results] max_bytes): {advice}"
    )


def needs_object(env: JobEnvelope, room: int) -> bool:
    """Whether the envelope's payload is too large to travel inside it."""
    return len(env.payload) > room


async def offload_payload(env: JobEnvelope, store: ObjectStore, *, max_bytes: int) -> JobEnvelope:
    """``env`` with its payload moved to the object store; raises
    :class:`PayloadTooLarge` above ``max_bytes``. Call it after signing."""
    size = len(env.payload)
    if size > max_bytes:
        raise PayloadTooLarge(
            too_large(
                "the job's encoded arguments", size, max_bytes,
                "pass less, or store the data elsewhere and pass a reference",
            )
        )  # fmt: skip
    name = args_object(env.id)
    await store.put(name, env.payload)
    return replace(env, payload=b"", payload_ref=name)


async def load_payload(env: JobEnvelope, store: ObjectStore) -> JobEnvelope:
    """``env`` with the payload its ``payload_ref`` names put back; raises
    :class:`CodecError` when the object is gone (expired or deleted)."""
    assert env.payload_ref is not None
    data = await store.get(env.payload_ref)
    if data is None:
        raise CodecError(
            f"the job's arguments (object {env.payload_ref!r} of {store.bucket}) are gone: "
            "expired with the results' TTL, or deleted"
        )
    return replace(env, payload=data, payload_ref=None)


async def load_result(record: JobRecord, store: ObjectStore) -> JobRecord:
    """``record`` with the result its ``result_ref`` names filled in; raises
    :class:`NotFound` when the object is gone."""
    if record.result_ref is None or record.result is not None:
        return record
    data = await store.get(record.result_ref)
    if data is None:
        raise NotFound(
            f"the result of job {record.id} (object {record.result_ref!r} of "
            f"{store.bucket}) is gone: it expired with the results' TTL, or was deleted"
        )
    return replace(record, result=data)
