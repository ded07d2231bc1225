"""Signatures over whole job envelopes, and the rules a job must meet before it runs.

A signed payload alone is not enough: a publisher without the key could take a signed
job and change its ``id`` (to overwrite another job's record) or its ``reply_to`` (to
have the result actor publish somewhere else). So the HMAC of a
:class:`~actorq.wire.messages.JobEnvelope` covers everything that decides what runs and
where its outcome goes::

    id, queue, function, codec, options, reply_to, payload

(``attempt`` and ``enqueued_at`` are informative only and left out.)

A recurring schedule is signed once, when it is declared, for runs it has not made yet:
its signature binds every field but the run's id, in place of which it binds
``schedule:<name>``. A worker accepts such a signature only on an envelope whose id is
``<name>-<due>`` (the id the scheduler gives each run) and whose ``reply_to`` is empty,
so the scheduler never needs the key, and a schedule's signature can only ever make runs
of that schedule.

:func:`check_envelope` holds the rules that do not need a key: the queue is the one the
envelope arrived on, and a ``reply_to`` lies inside the namespace's inbox prefix
(``<ns>.reply.``).
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from actorq.exceptions import CodecError, SignatureError
from actorq.wire.codec import Signer
from actorq.wire.messages import JobEnvelope, JobOptions

__all__ = [
    "EnvelopeError",
    "canonical_options",
    "check_envelope",
    "inbox_prefix",
    "schedule_signature",
    "sign_envelope",
    "verify_envelope",
]

_ENCODER: Final = msgspec.msgpack.Encoder()
_OPTIONS: Final = msgspec.msgpack.Decoder(JobOptions)
_CONTEXT: Final = b"actorq:envelope"
_SCHEDULE_RUN: Final = re.compile(r"^(.+)-\d+$")
_DEFAULT_OPTIONS: Final = JobOptions()


class EnvelopeError(CodecError):
    """An envelope breaks a rule that needs no key (``bad_envelope``): it names a queue
    other than the one it arrived on, or a ``reply_to`` outside the inbox prefix."""


def inbox_prefix(namespace: str) -> str:
    """The prefix of every client inbox of ``namespace``: ``<ns>.reply.``.

    Final records are only ever announced on subjects that start with it.
    """
    return f"{namespace}.reply."


def canonical_options(options: JobOptions) -> JobOptions:
    """``options`` as a worker will decode them (``timeout=2`` becomes ``2.0``), so the
    sender signs the very bytes the worker re-encodes."""
    if options is _DEFAULT_OPTIONS:
        return options
    return _OPTIONS.decode(_ENCODER.encode(options))


def _header(job_id: str, env: JobEnvelope, options: JobOptions) -> bytes:
    return _ENCODER.encode(
        (job_id, env.queue, env.function, env.codec, env.reply_to, options, len(env.payload))
    )


def _mac(signer: Signer, job_id: str, env: JobEnvelope, options: JobOptions) -> bytes:
    return signer.sign(_header(job_id, env, options) + env.payload, context=_CONTEXT)


def sign_envelope(signer: Signer, env: JobEnvelope) -> JobEnvelope:
    """A copy of ``env`` carrying its signature (its options made canonical first)."""
    options = canonical_options(env.options)
    signature = _mac(signer, env.id, env, options)
    return msgspec.structs.replace(env, options=options, signature=signature)


def schedule_signature(
    signer: Signer,
    *,
    name: str,
    queue: str,
    function: str,
    codec: str,
    payload: bytes,
    options: JobOptions,
) -> bytes:
    """The signature of a recurring schedule's runs (see the module docstring)."""
    template = JobEnvelope(
        id="x",  # replaced by schedule:<name> in the header
        queue=queue,
        function=function,
        codec=codec,
        payload=payload,
        options=options,
        enqueued_at=0.0,
    )
    return _mac(signer, f"schedule:{name}", template, canonical_options(options))


def verify_envelope(signer: Signer, env: JobEnvelope) -> None:
    """Return if ``env`` is signed with a key ``signer`` accepts; raise
    :class:`~actorq.exceptions.SignatureError` otherwise (before anything is decoded)."""
    signature = env.signature
    if signature is None:
        raise SignatureError(
            f"job {env.id!r} is not signed but this worker requires a signature; the "
            "publisher must use the runtime's signing key (see docs/security.md)"
        )
    header = _header(env.id, env, env.options)
    try:
        signer.verify(header + env.payload, signature, context=_CONTEXT)
        return
    except SignatureError as exc:
        run = _SCHEDULE_RUN.match(env.id)
        if run is None or env.reply_to is not None:
            raise _about(env, exc) from None
    template = _header(f"schedule:{run.group(1)}", env, env.options)
    try:
        signer.verify(template + env.payload, signature, context=_CONTEXT)
    except SignatureError as exc:
        raise _about(env, exc) from None


def _about(env: JobEnvelope, exc: SignatureError) -> SignatureError:
    return SignatureError(
        f"job {env.id!r}: the envelope's signature does not match (it was changed after "
        "signing, or signed with a key this worker does not accept); check that "
        "publisher and worker share the same signing key"
    )


def check_envelope(env: JobEnvelope, *, queue: str, namespace: str) -> None:
    """Raise :class:`EnvelopeError` when ``env`` may not run on ``queue`` of ``namespace``."""
    if env.queue != queue:
        raise EnvelopeError(
            f"job {env.id!r} names queue {env.queue!r} but arrived on queue {queue!r}"
        )
    if env.reply_to is not None and not env.reply_to.startswith(inbox_prefix(namespace)):
        raise EnvelopeError(
            f"job {env.id!r} asks for its record on {env.reply_to!r}, outside the inbox "
            f"prefix {inbox_prefix(namespace)!r}"
        )
