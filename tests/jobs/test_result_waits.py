"""Waiting on a job by id (a watch of its record) many times over: each watch's
consumer is deleted when the wait ends, so a burst of waits never reaches the server's
consumer limit (found by bench/chaos.py: the 1001st wait within a few minutes failed
with "maximum consumers limit reached")."""

from __future__ import annotations

import pytest
import trio

from actorq.exceptions import JobTimeout
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime

pytestmark = pytest.mark.timeout(120)


async def test_a_burst_of_waits_by_id_leaves_no_consumer_behind(nats_url: str) -> None:
    with trio.fail_after(90):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.enqueue(jobfuncs.add, 1, 1)
            assert await job.result(timeout=20) == 2
            for _ in range(1100):
                record = await rt.client.wait(job.id, timeout=10)
                assert record.status == "succeeded"
            stream = f"KV_{rt.client.streams.results_bucket}"
            info = await rt.client.conn.jsm("stream_info", stream)
            assert info.state.consumer_count == 0
            # A wait that ends by its timeout deletes its consumer too.
            pending = await rt.client.options(queue="nobody-serves-this").enqueue(
                jobfuncs.add, 1, 2
            )
            for _ in range(3):
                with pytest.raises(JobTimeout):
                    await rt.client.wait(pending.id, timeout=0.2)
            info = await rt.client.conn.jsm("stream_info", stream)
            assert info.state.consumer_count == 0
