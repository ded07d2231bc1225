"""A fetch sends one pull request and waits for the server to end it: a late end of an
earlier request neither ends the next fetch early nor leaves a pull open, and a job
sent after a quiet spell is fetched at once (issue 12, item 13)."""

from __future__ import annotations

import random
import time

import pytest
import trio

from actorq.nats import Connection, pull_fetch
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime
from tests.nats.test_connection import _stream_with_consumer

pytestmark = pytest.mark.timeout(120)


async def _waiting_pulls(nc: Connection, stream: str) -> int:
    info = await nc.jsm("consumer_info", stream, "work")
    return int(info.num_waiting)


async def test_a_late_end_of_an_earlier_pull_does_not_delay_the_next_job(
    nc: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, subject = await _stream_with_consumer(nc)
    consumer = await nc.pull_consumer(name, "work")
    with trio.fail_after(20):
        # A fetch that gives up before the server ends its request (as on a loaded
        # machine): its request is still open, and its end will come late.
        monkeypatch.setattr(pull_fetch, "GRACE", -0.8)
        assert await consumer.fetch(10, expires=1.0) == []  # gave up after 0.2 s
        monkeypatch.setattr(pull_fetch, "GRACE", 0.5)
        assert await _waiting_pulls(nc, name) == 1

        got: list[bytes] = []
        returned_at: list[float] = []

        async def fetch() -> None:
            got.extend(m.data for m in await consumer.fetch(10, expires=2.0))
            returned_at.append(time.monotonic())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch)
            # The earlier request ends (408, ~0.8 s from now) while this fetch waits,
            # whose own request would expire ~2 s from now; between the two, a job.
            await trio.sleep(1.1)
            sent_at = time.monotonic()
            await nc.js_publish(subject, b"job")
        assert got == [b"job"]
        assert returned_at[0] - sent_at < 0.3, "the job waited for a pull to expire"
        await nc.flush()
        assert await _waiting_pulls(nc, name) == 0, "a pull request was left open"


async def test_a_job_after_a_quiet_spell_is_run_at_once(nats_url: str) -> None:
    rng = random.Random(13)
    with trio.fail_after(90):
        async with open_runtime(nats_url, queues={"default": 10}) as rt:
            await (await rt.client.enqueue(jobfuncs.add, 1, 1)).result(timeout=20)
            waits = []
            for quiet in [rng.uniform(1.0, 3.0) for _ in range(5)]:
                await trio.sleep(quiet)  # the quiet spell itself, not a wait for anything
                started = time.monotonic()
                job = await rt.client.enqueue(jobfuncs.add, 2, 2)
                assert await job.result(timeout=20) == 4
                waits.append(time.monotonic() - started)
    # Loose (a shared machine): a job that waited for a pull to expire took ~1 s.
    assert max(waits) < 0.5, waits
