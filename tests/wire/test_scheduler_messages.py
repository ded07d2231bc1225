"""The scheduling messages round-trip through their own decoders and the generic one."""

from __future__ import annotations

import pytest

from actorq.exceptions import CodecError
from actorq.wire.messages import (
    AnyMessage,
    JobOptions,
    OutcomeBatch,
    ScheduleEntry,
    ScheduleFire,
    WaitForParents,
    WaitingJob,
    decode_message,
    decode_result_input,
    decode_schedule_entry,
    decode_schedule_fire,
    decode_waiting_job,
    encode,
)

WAIT = WaitForParents(job_id="c", queue="q", parents=["a", "b"], reply_to="x.reply.1")
HELD = WaitingJob(envelope=b"\x81\xa1t\xa3Env", parents=["a"])
FIRE = ScheduleFire(name="nightly", version=3, due=1767232800.0)
ENTRY = ScheduleEntry(
    name="nightly", queue="q", function="m:f", codec="pickle", payload=b"p",
    options=JobOptions(max_retries=1), cron="0 3 * * *", tz="Europe/Paris", max_runs=5,
    misfire="skip", version=2, runs=1, next_run=1767232800.0,
)  # fmt: skip


@pytest.mark.parametrize("message", [WAIT, HELD, FIRE, ENTRY])
def test_each_scheduling_message_decodes_through_the_generic_decoder(
    message: AnyMessage,
) -> None:
    assert decode_message(encode(message)) == message


def test_each_family_decoder_returns_its_type() -> None:
    assert decode_waiting_job(encode(HELD)) == HELD
    assert decode_schedule_fire(encode(FIRE)) == FIRE
    assert decode_schedule_entry(encode(ENTRY)) == ENTRY
    assert decode_result_input(encode(WAIT)) == WAIT
    assert decode_result_input(encode(OutcomeBatch(outcomes=[]))) == OutcomeBatch(outcomes=[])


def test_a_wrong_misfire_policy_is_refused_naming_the_field() -> None:
    bad = encode(ENTRY).replace(b"skip", b"nope")
    with pytest.raises(CodecError, match="misfire"):
        decode_schedule_entry(bad)
