"""Workers with a signing key run only authentic envelopes: an unsigned, forged or
tampered one ends as a dead letter, runs nothing (a marker file says so), and touches no
record or inbox. Signed delayed, dependent and recurring jobs still run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import trio

from actorq import EnqueueOptions
from actorq.nats.connection import Message
from actorq.wire.codec import get_codec
from actorq.wire.messages import DeadLetter, JobEnvelope, decode_dead_letter, encode
from actorq.wire.signing import sign_envelope
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import Runtime, open_runtime
from tests.helpers.scheduler_harness import eventually, open_scheduled_runtime

KEY = b"s" * 32


@asynccontextmanager
async def _dead_letters(rt: Runtime) -> AsyncIterator[trio.MemoryReceiveChannel[Message]]:
    async with rt.client.conn.subscribe(f"{rt.namespace}.dead.>") as letters:
        yield letters


async def _next_letter(letters: trio.MemoryReceiveChannel[Message]) -> DeadLetter:
    return decode_dead_letter((await letters.receive()).data)


def _attack_envelope(rt: Runtime, marker: Path, job_id: str, **fields: object) -> JobEnvelope:
    """What a publisher without the key can write: any call, any id, any reply_to."""
    payload = get_codec("pickle").encode_call(jobfuncs.fail_until, (str(marker), 1), {})
    base: dict[str, object] = {
        "id": job_id,
        "queue": "default",
        "function": "tests.helpers.jobfuncs:fail_until",
        "codec": "pickle",
        "payload": payload,
        "enqueued_at": 0.0,
    }
    return JobEnvelope(**{**base, **fields})  # type: ignore[arg-type]


async def test_an_unsigned_envelope_from_a_keyless_publisher_is_dead_lettered_unrun(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with trio.fail_after(30):
        async with open_runtime(nats_url, signing_key=KEY) as rt, _dead_letters(rt) as letters:
            env = _attack_envelope(rt, marker, "forged1")
            subject = rt.client.streams.job_subject("default", env.id)
            await rt.client.conn.js_publish(subject, encode(env))
            letter = await _next_letter(letters)
            assert await rt.client.get_record("forged1") is None
    assert letter.reason == "bad_signature"
    assert str(letter.job_id).startswith("seq-")  # not filed under the id it claims
    assert not marker.exists()


async def test_a_forged_envelope_cannot_overwrite_another_jobs_record(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with trio.fail_after(30):
        async with open_runtime(nats_url, signing_key=KEY) as rt, _dead_letters(rt) as letters:
            victim = await rt.client.enqueue(jobfuncs.add, 20, 22)
            assert await victim.result(timeout=10) == 42
            forged = _attack_envelope(
                rt, marker, victim.id, signature=b"x" * 32, reply_to=f"{rt.namespace}.reply.x"
            )
            subject = rt.client.streams.job_subject("default", victim.id)
            await rt.client.conn.js_publish(subject, encode(forged))
            letter = await _next_letter(letters)
            assert letter.reason == "bad_signature"
            record = await rt.client.get_record(victim.id)
            assert record is not None
            assert (record.status, rt.client.unwrap(record)) == ("succeeded", 42)
    assert not marker.exists()


async def test_a_tampered_reply_to_is_refused(nats_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with trio.fail_after(30):
        async with open_runtime(nats_url, signing_key=KEY) as rt, _dead_letters(rt) as letters:
            signed = rt.client.build_envelope(
                EnqueueOptions(), jobfuncs.fail_until, (str(marker), 1), {}
            )
            # Someone rewrites reply_to, to have records published elsewhere.
            async with rt.client.conn.subscribe("elsewhere.>") as elsewhere:
                tampered = msgspec.structs.replace(signed, reply_to="elsewhere.inbox")
                subject = rt.client.streams.job_subject("default", signed.id)
                await rt.client.conn.js_publish(subject, encode(tampered))
                letter = await _next_letter(letters)
                assert letter.reason == "bad_signature"
                # The outcome path is closed too: nothing was reported for the job.
                assert await rt.client.get_record(signed.id) is None
                with trio.move_on_after(0.2):
                    msg = await elsewhere.receive()
                    raise AssertionError(f"a record reached {msg.subject}")
    assert not marker.exists()


async def test_a_signed_envelope_with_a_reply_to_outside_the_inbox_prefix_is_a_bad_envelope(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with trio.fail_after(30):
        async with open_runtime(nats_url, signing_key=KEY) as rt, _dead_letters(rt) as letters:
            env = rt.client.build_envelope(
                EnqueueOptions(), jobfuncs.fail_until, (str(marker), 1), {}
            )
            outside = sign_envelope(
                rt.client.signer,  # type: ignore[arg-type]
                msgspec.structs.replace(env, reply_to=f"{rt.namespace}.jobs.default.x"),
            )
            await rt.client.conn.js_publish(
                rt.client.streams.job_subject("default", env.id), encode(outside)
            )
            letter = await _next_letter(letters)
            # Signed for another queue but published to this one: refused as well.
            other = sign_envelope(
                rt.client.signer,  # type: ignore[arg-type]
                msgspec.structs.replace(env, id="other1", queue="other"),
            )
            await rt.client.conn.js_publish(
                rt.client.streams.job_subject("default", "other1"), encode(other)
            )
            second = await _next_letter(letters)
    assert (letter.reason, second.reason) == ("bad_envelope", "bad_envelope")
    assert "inbox prefix" in letter.detail
    assert "queue" in second.detail
    assert not marker.exists()


async def test_signed_delayed_and_dependent_jobs_run(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, signing_key=KEY) as rt:
            delayed = await rt.client.enqueue_in(0.2, jobfuncs.add, 1, 2)
            parent = await rt.client.enqueue(jobfuncs.add, 2, 2)
            child = await rt.client.options(
                depends_on=[parent.id], timeout=2, max_retries=1
            ).enqueue(jobfuncs.add, 3, 3)
            assert await delayed.result(timeout=10) == 3
            assert await child.result(timeout=10) == 6


async def test_a_signed_recurring_schedule_runs_with_a_keyless_scheduler(
    nats_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "runs"
    with trio.fail_after(30):
        async with open_scheduled_runtime(nats_url, signing_key=KEY) as (rt, _):
            await rt.client.schedule("tick", jobfuncs.fail_until, str(marker), 1, every=1)
            await eventually(lambda: marker.exists() and len(list(marker.iterdir())) >= 2)
