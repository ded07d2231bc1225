"""Whole-envelope signatures: every field that decides what runs and where its record
goes is covered; a recurring schedule's signature only makes runs of that schedule."""

from __future__ import annotations

import msgspec
import pytest

from actorq import Signer
from actorq.exceptions import SignatureError
from actorq.wire import JobOptions
from actorq.wire.messages import JobEnvelope, RetryBackoff, decode_envelope, encode
from actorq.wire.signing import (
    EnvelopeError,
    check_envelope,
    inbox_prefix,
    schedule_signature,
    sign_envelope,
    verify_envelope,
)

KEY = Signer(b"k" * 32)


def _envelope(**fields: object) -> JobEnvelope:
    base: dict[str, object] = {
        "id": "job1",
        "queue": "default",
        "function": "tasks:add",
        "codec": "pickle",
        "payload": b"\x80payload",
        "enqueued_at": 1.0,
        "reply_to": "actorq.reply.abc",
    }
    return JobEnvelope(**{**base, **fields})  # type: ignore[arg-type]


def test_a_signed_envelope_verifies_after_a_trip_over_the_wire() -> None:
    # timeout=2 (an int) decodes as 2.0 on the worker: the signature must not care.
    options = JobOptions(max_retries=5, timeout=2, metadata={"b": "1", "a": "2"})
    env = sign_envelope(KEY, _envelope(options=options))
    verify_envelope(KEY, decode_envelope(encode(env)))


@pytest.mark.parametrize(
    "change",
    [
        {"id": "victim"},
        {"queue": "other"},
        {"function": "os:system"},
        {"codec": "safe"},
        {"options": JobOptions(max_retries=99)},
        {"options": JobOptions(backoff=RetryBackoff(kind="fixed"))},
        {"reply_to": "actorq.reply.someone-else"},
        {"reply_to": None},
        {"payload": b"\x80evil"},
    ],
)
def test_changing_any_signed_field_breaks_the_signature(change: dict[str, object]) -> None:
    env = sign_envelope(KEY, _envelope())
    tampered = msgspec.structs.replace(env, **change)
    with pytest.raises(SignatureError):
        verify_envelope(KEY, decode_envelope(encode(tampered)))


def test_attempt_and_enqueue_time_are_not_signed() -> None:
    env = sign_envelope(KEY, _envelope())
    verify_envelope(KEY, msgspec.structs.replace(env, attempt=3, enqueued_at=99.0))


def test_unsigned_and_wrong_key_envelopes_are_refused() -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verify_envelope(KEY, _envelope())
    other = sign_envelope(Signer(b"o" * 32), _envelope())
    with pytest.raises(SignatureError):
        verify_envelope(KEY, other)


def test_a_previous_key_still_verifies_during_a_rotation() -> None:
    old = Signer(b"o" * 32)
    env = sign_envelope(old, _envelope())
    verify_envelope(Signer(b"n" * 32, previous=[b"o" * 32]), env)


def test_a_schedule_signature_makes_only_runs_of_that_schedule() -> None:
    signature = schedule_signature(
        KEY, name="nightly", queue="default", function="tasks:add", codec="pickle",
        payload=b"\x80payload", options=JobOptions(),
    )  # fmt: skip
    run = _envelope(id="nightly-1767225600", reply_to=None, signature=signature)
    verify_envelope(KEY, run)
    for forged in (
        msgspec.structs.replace(run, id="victim"),
        msgspec.structs.replace(run, id="hourly-1767225600"),
        msgspec.structs.replace(run, reply_to="actorq.reply.x"),
    ):
        with pytest.raises(SignatureError):
            verify_envelope(KEY, forged)


def test_check_envelope_wants_its_own_queue_and_an_inbox_reply_to() -> None:
    check_envelope(_envelope(), queue="default", namespace="actorq")
    check_envelope(_envelope(reply_to=None), queue="default", namespace="actorq")
    assert inbox_prefix("shop") == "shop.reply."
    with pytest.raises(EnvelopeError, match="queue"):
        check_envelope(_envelope(queue="other"), queue="default", namespace="actorq")
    for subject in ("actorq.jobs.default.x", "shop.reply.abc", "actorq.replyx", "$KV.x"):
        with pytest.raises(EnvelopeError, match="inbox prefix"):
            check_envelope(_envelope(reply_to=subject), queue="default", namespace="actorq")
