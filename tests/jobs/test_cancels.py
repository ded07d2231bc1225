"""The cancel set of a long-lived queue actor follows the cancels bucket both ways."""

from __future__ import annotations

import pytest
import trio

from actorq.exceptions import JobCancelled
from actorq.jobs.options import EnqueueOptions
from actorq.wire.messages import encode
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime, wait_for_status


async def test_a_cleared_cancel_lets_the_same_job_id_run_again(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            client, streams = rt.client, rt.client.streams

            async def publish(job_id: str) -> None:
                env = client.build_envelope(EnqueueOptions(job_id=job_id), jobfuncs.add, (1, 2), {})
                await client.conn.js_publish(streams.job_subject("default", job_id), encode(env))

            # A queue actor loads every stored cancel before it fetches a job.
            await client.cancel("again")
            actor = await rt.start_queue_actor("default", 2)
            await publish("again")
            assert (await client.wait("again", timeout=10)).status == "cancelled"
            marker = await client.enqueue(jobfuncs.trio_sleep, 60)
            await wait_for_status(client, marker.id, "running")
            # Clear the cancel (and the record), then cancel the running marker job:
            # the watch delivers in order, so once the marker stops, the delete was seen.
            assert client._cancels is not None
            await client._cancels.delete("again")
            await client.results.purge("again")
            await marker.cancel()
            with pytest.raises(JobCancelled):
                await marker.result(timeout=10)
            assert "again" not in actor.cancelled
            await publish("again")
            record = await client.wait("again", timeout=10)
    assert record.status == "succeeded"
