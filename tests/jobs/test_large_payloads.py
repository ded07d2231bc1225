"""Large payloads (issue 12): arguments and results over the server's max_payload
travel through the namespace's object store, up to ``[results] max_bytes``."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio

from actorq.exceptions import JobFailed, PayloadTooLarge
from actorq.jobs.client import EnqueueOptions, open_client
from actorq.jobs.large_payloads import args_object, result_object
from actorq.wire.messages import decode_dead_letter
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime
from tests.helpers.scheduler_harness import eventually

MiB = 1024 * 1024
KEY = b"k" * 32


@pytest.mark.parametrize("signing_key", [None, KEY], ids=["unsigned", "signed"])
async def test_a_5_mib_result_and_a_5_mib_argument_round_trip(
    nats_url: str, signing_key: bytes | None
) -> None:
    data = os.urandom(5 * MiB)
    with trio.fail_after(90):
        async with open_runtime(nats_url, signing_key=signing_key) as rt:
            client = rt.client
            made = await client.enqueue(jobfuncs.big_result, 5 * MiB)
            sent = await client.enqueue(jobfuncs.digest_of, data)
            assert await made.result(timeout=60) == b"x" * (5 * MiB)
            assert await sent.result(timeout=60) == hashlib.sha256(data).hexdigest()
            record = await client.get_record(made.id)
            assert record is not None
            assert record.result is None
            assert record.result_ref == result_object(made.id)
            objects = await client.large.store()
            assert await objects.get(args_object(sent.id)) is not None
            # The sync helper's path reads the object too.
            assert client.unwrap(await client.wait(made.id, timeout=10)) == b"x" * (5 * MiB)


async def test_a_result_over_max_bytes_fails_naming_size_and_limit_while_a_sibling_succeeds(
    nats_url: str,
) -> None:
    limit = 2 * MiB
    with trio.fail_after(90):
        async with open_runtime(nats_url, queues={}) as rt:
            client = rt.client
            await rt.start_queue_actor("default", 4, max_bytes=limit)
            async with client.conn.subscribe(client.streams.dead_subject(">")) as letters:
                once = EnqueueOptions(max_retries=0)
                over = await client.enqueue_with(once, jobfuncs.big_result, (3 * MiB,))
                large = await client.enqueue(jobfuncs.big_result, int(1.5 * MiB))
                small = await client.enqueue(jobfuncs.add, 1, 2)
                async for msg in letters:
                    letter = decode_dead_letter(msg.data)
                    break
            with pytest.raises(JobFailed) as caught:
                await over.result(timeout=30)
            assert await large.result(timeout=30) == b"x" * int(1.5 * MiB)
            assert await small.result(timeout=30) == 3
            actor = rt.queue_actors[0]
            assert actor.jobs_done == 3
    assert (letter.job_id, letter.reason) == (over.id, "oversize")
    assert caught.value.exc_type == "actorq.oversize"
    message = caught.value.exc_message
    assert f"over the limit of {limit} bytes ([results] max_bytes)" in message
    assert message.startswith("the job's encoded result is ")
    assert int(message.split()[5]) > 3 * MiB


async def test_an_argument_over_max_bytes_is_refused_at_enqueue_and_its_id_released(
    nats_url: str,
) -> None:
    limit = 2 * MiB
    with trio.fail_after(60):
        async with (
            open_runtime(nats_url) as rt,
            open_client(nats_url, namespace=rt.namespace, max_bytes=limit) as client,
        ):
            named = EnqueueOptions(job_id="too-big")
            with pytest.raises(PayloadTooLarge) as caught:
                await client.enqueue_with(named, jobfuncs.digest_of, (b"y" * (3 * MiB),))
            message = str(caught.value)
            assert "the job's encoded arguments is " in message
            assert f"over the limit of {limit} bytes" in message
            assert int(message.split()[5]) > 3 * MiB
            # Nothing was enqueued, and the id is free for a payload that fits.
            job = await client.enqueue_with(named, jobfuncs.digest_of, (b"y" * MiB,))
            assert not job.deduplicated
            assert await job.result(timeout=30) == hashlib.sha256(b"y" * MiB).hexdigest()


async def test_stored_objects_go_with_their_record(nats_url: str) -> None:
    with trio.fail_after(90):
        # As `actorq up` does with `[results] ttl`: records and objects kept 2 s.
        async with open_runtime(nats_url, result_ttl=2.0) as rt:
            client = rt.client
            job = await client.enqueue(jobfuncs.digest_of, b"z" * (2 * MiB))
            made = await client.enqueue(jobfuncs.big_result, 2 * MiB)
            await job.result(timeout=30)
            assert await made.result(timeout=30) == b"x" * (2 * MiB)
            objects = await client.large.store()
            names = [args_object(job.id), result_object(made.id)]
            assert all([await objects.get(name) is not None for name in names])

            async def all_gone() -> bool:
                if await client.get_record(made.id) is not None:
                    return False
                return all([await objects.get(name) is None for name in names])

            # Expiry is the server's: look every 0.25 s (bounded by the fail_after above).
            await eventually(all_gone, interval=0.25)


async def test_a_schedule_whose_arguments_do_not_fit_a_message_is_refused(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            with pytest.raises(PayloadTooLarge) as caught:
                await rt.client.schedule(
                    "big", jobfuncs.digest_of, b"s" * (2 * MiB), every=60
                )
            assert await rt.client.schedules() == []
    message = str(caught.value)
    assert message.startswith("schedule 'big': its encoded arguments are ")
    assert f"over the limit of {MiB - 64 * 1024} bytes" in message
