"""Tests for actorq.wire.messages: round trips, tagged unions, errors with paths, backoff."""

from __future__ import annotations

import random

import msgspec
import pytest

from actorq.exceptions import CodecError
from actorq.wire.messages import (
    JOB_STATUSES,
    TERMINAL_STATUSES,
    ActorInfo,
    AnyMessage,
    CancelJob,
    DeadLetter,
    ErrorInfo,
    Introspect,
    JobEnvelope,
    JobOptions,
    JobOutcome,
    JobRecord,
    Ping,
    Pong,
    RetryBackoff,
    StatusChange,
    decode_dead_letter,
    decode_envelope,
    decode_message,
    decode_outcome,
    decode_record,
    encode,
)

OPTIONS = JobOptions(
    max_retries=5,
    backoff=RetryBackoff(kind="fixed", base=2.0, cap=10.0, jitter=False),
    timeout=30.0,
    result_ttl=3600.0,
    metadata={"tenant": "acme"},
    depends_on=["job-0"],
)

ENVELOPE = JobEnvelope(
    id="job-1",
    queue="emails",
    function="myapp.mail:send",
    codec="pickle",
    payload=b"\x80\x05payload",
    signature=b"s" * 32,
    options=OPTIONS,
    attempt=2,
    enqueued_at=1_700_000_000.25,
)

ERROR = ErrorInfo(type="ValueError", message="bad address", traceback="Traceback ...")

OUTCOME = JobOutcome(
    job_id="job-1",
    queue="emails",
    status="retrying",
    codec="pickle",
    result=None,
    error=ERROR,
    attempt=2,
    retry_in=4.0,
    started_at=1_700_000_001.0,
    finished_at=1_700_000_002.5,
    worker="host-a/1234",
)

RECORD = JobRecord(
    id="job-1",
    queue="emails",
    function="myapp.mail:send",
    status="succeeded",
    codec="safe",
    attempts=3,
    enqueued_at=1.0,
    started_at=2.0,
    finished_at=3.0,
    result=b"\x01",
    signature=b"x" * 32,
    error=None,
    worker="w",
    metadata={"k": "v"},
    history=[StatusChange("queued", 1.0), StatusChange("running", 2.0)],
)

DEAD = DeadLetter(
    job_id=None,
    queue="emails",
    reason="undecodable",
    detail="not msgpack",
    original=b"\xff\xfe",
    headers={"Nats-Msg-Id": "abc"},
    failed_at=5.0,
)

CANCEL = CancelJob(job_id="job-1", reason="user asked", requested_at=1.0)

ALL_MESSAGES: list[AnyMessage] = [ENVELOPE, OUTCOME, RECORD, DEAD, CANCEL]


def test_an_envelope_survives_an_encode_decode_round_trip() -> None:
    assert decode_envelope(encode(ENVELOPE)) == ENVELOPE


def test_an_envelope_with_only_required_fields_gets_the_documented_defaults() -> None:
    minimal = JobEnvelope(
        id="j", queue="q", function="m:f", codec="pickle", payload=b"", enqueued_at=0.0
    )
    decoded = decode_envelope(encode(minimal))
    assert decoded == minimal
    assert decoded.attempt == 1
    assert decoded.signature is None
    assert decoded.options == JobOptions()


def test_an_outcome_survives_an_encode_decode_round_trip() -> None:
    assert decode_outcome(encode(OUTCOME)) == OUTCOME


def test_a_record_and_a_dead_letter_survive_an_encode_decode_round_trip() -> None:
    assert decode_record(encode(RECORD)) == RECORD
    assert decode_dead_letter(encode(DEAD)) == DEAD


def test_the_actor_protocol_joins_a_union_with_user_messages_of_the_same_name() -> None:
    # A user's own Ping (tag "Ping") and the protocol's (tag "actorq.ping") are two
    # messages that one actor's decoder tells apart.
    class UserPing(msgspec.Struct, tag="Ping"):
        n: int

    decoder = msgspec.msgpack.Decoder(UserPing | Ping | Introspect)
    assert decoder.decode(msgspec.msgpack.encode(Ping())) == Ping()
    assert decoder.decode(msgspec.msgpack.encode(UserPing(3))) == UserPing(3)
    assert decoder.decode(msgspec.msgpack.encode(Introspect())) == Introspect()
    info = ActorInfo(name="a", role="queue", pid=1, host="h", started_at=1.0, stats={"x": 2})
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(info), type=ActorInfo) == info
    pong = Pong(name="a", pid=1, host="h")
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(pong), type=Pong) == pong


@pytest.mark.parametrize("message", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_any_message_decodes_through_the_generic_decoder(message: AnyMessage) -> None:
    assert decode_message(encode(message)) == message


def test_every_message_carries_its_class_name_as_tag_t() -> None:
    raw = msgspec.msgpack.decode(encode(OUTCOME))
    assert raw["t"] == "JobOutcome"


def test_history_entries_travel_as_compact_status_time_pairs() -> None:
    raw = msgspec.msgpack.decode(encode(RECORD))
    assert raw["history"] == [["queued", 1.0], ["running", 2.0]]


def test_messages_are_frozen_values() -> None:
    with pytest.raises(AttributeError):
        ENVELOPE.attempt = 3  # type: ignore[misc]
    assert JobEnvelope.__struct_config__.frozen
    assert RetryBackoff.__struct_config__.frozen


def test_a_message_of_the_wrong_family_is_a_codec_error_naming_the_tag() -> None:
    with pytest.raises(CodecError, match="JobOutcome"):
        decode_envelope(encode(OUTCOME))
    with pytest.raises(CodecError, match="JobEnvelope"):
        decode_record(encode(ENVELOPE))


def test_a_field_of_the_wrong_type_is_a_codec_error_naming_its_path() -> None:
    raw = msgspec.msgpack.decode(encode(ENVELOPE))
    raw["attempt"] = "two"
    with pytest.raises(CodecError, match=r"\$\.attempt") as info:
        decode_envelope(msgspec.msgpack.encode(raw))
    assert isinstance(info.value.__cause__, msgspec.ValidationError)


def test_a_nested_constraint_violation_names_the_nested_path() -> None:
    raw = msgspec.msgpack.decode(encode(ENVELOPE))
    raw["options"]["backoff"]["base"] = -1.0
    with pytest.raises(CodecError, match=r"\$\.options\.backoff\.base"):
        decode_envelope(msgspec.msgpack.encode(raw))


def test_attempt_zero_is_refused_when_decoded() -> None:
    raw = msgspec.msgpack.decode(encode(OUTCOME))
    raw["attempt"] = 0
    with pytest.raises(CodecError, match=r"\$\.attempt"):
        decode_outcome(msgspec.msgpack.encode(raw))


def test_a_missing_required_field_is_a_codec_error_naming_it() -> None:
    raw = msgspec.msgpack.decode(encode(ENVELOPE))
    del raw["payload"]
    with pytest.raises(CodecError, match="payload"):
        decode_envelope(msgspec.msgpack.encode(raw))


def test_bytes_that_are_not_msgpack_are_a_codec_error() -> None:
    with pytest.raises(CodecError, match="not valid msgpack"):
        decode_envelope(b"\xc1 definitely not msgpack")


def test_unknown_fields_from_a_newer_sender_are_ignored() -> None:
    raw = msgspec.msgpack.decode(encode(ENVELOPE))
    raw["priority"] = 7
    assert decode_envelope(msgspec.msgpack.encode(raw)) == ENVELOPE


def test_encoding_a_field_holding_the_wrong_type_is_a_codec_error() -> None:
    bad = JobOptions(metadata={"when": object()})  # type: ignore[dict-item]
    envelope = msgspec.structs.replace(ENVELOPE, options=bad)
    with pytest.raises(CodecError, match="JobEnvelope"):
        encode(envelope)


def test_fixed_backoff_waits_base_seconds_every_time() -> None:
    backoff = RetryBackoff(kind="fixed", base=3.0, cap=60.0, jitter=False)
    assert [backoff.delay(n) for n in (1, 2, 10)] == [3.0, 3.0, 3.0]


def test_exponential_backoff_doubles_until_the_cap() -> None:
    backoff = RetryBackoff(kind="exponential", base=1.0, cap=10.0, jitter=False)
    assert [backoff.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_exponential_backoff_does_not_overflow_on_huge_attempts() -> None:
    backoff = RetryBackoff(kind="exponential", base=1.0, cap=300.0, jitter=False)
    assert backoff.delay(100_000) == 300.0


def test_jittered_backoff_stays_between_half_and_the_full_delay() -> None:
    backoff = RetryBackoff(kind="exponential", base=0.5, cap=20.0, jitter=True)
    plain = RetryBackoff(kind="exponential", base=0.5, cap=20.0, jitter=False)
    rng = random.Random(1234)
    for attempt in range(1, 12):
        full = plain.delay(attempt)
        draws = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in draws)
        # The jitter actually spreads delays out instead of returning a constant.
        assert max(draws) - min(draws) > full / 4


def test_jittered_backoff_is_repeatable_with_a_seeded_generator() -> None:
    backoff = RetryBackoff()
    first = [backoff.delay(n, random.Random(7)) for n in range(1, 5)]
    again = [backoff.delay(n, random.Random(7)) for n in range(1, 5)]
    assert first == again


def test_backoff_refuses_an_attempt_below_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetryBackoff().delay(0)


def test_terminal_statuses_are_job_statuses_and_retrying_is_not_terminal() -> None:
    assert set(TERMINAL_STATUSES) <= set(JOB_STATUSES)
    assert "retrying" not in TERMINAL_STATUSES
    assert "running" not in TERMINAL_STATUSES


def test_a_record_follows_a_job_from_enqueue_through_retry_to_success() -> None:
    record = JobRecord.from_envelope(ENVELOPE)
    assert record.status == "queued"
    assert record.metadata == {"tenant": "acme"}
    assert record.history == [StatusChange("queued", ENVELOPE.enqueued_at)]

    record = record.with_status("running", 10.0)
    record = record.apply(OUTCOME)
    assert record.status == "retrying"
    assert not record.done
    assert record.finished_at is None
    assert record.error == ERROR

    success = msgspec.structs.replace(
        OUTCOME, status="succeeded", error=None, result=b"ok", attempt=3, finished_at=20.0
    )
    record = record.apply(success)
    assert record.done
    assert record.attempts == 3
    assert record.result == b"ok"
    assert record.error is None
    assert record.finished_at == 20.0
    assert [c.status for c in record.history] == ["queued", "running", "retrying", "succeeded"]
    assert decode_record(encode(record)) == record


def test_error_info_captures_type_message_and_traceback_of_an_exception() -> None:
    class CustomError(Exception):
        pass

    try:
        raise CustomError("boom")
    except CustomError as exc:
        info = ErrorInfo.from_exception(exc)
    assert info.type.endswith("CustomError")
    assert info.type.startswith(__name__)
    assert info.message == "boom"
    assert "raise CustomError" in info.traceback

    assert ErrorInfo.from_exception(KeyError("k")).type == "KeyError"
