"""A failed enqueue with an explicit job id does not burn the id (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from actorq.process import faults
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    faults.disarm()
    yield
    faults.disarm()


@pytest.mark.parametrize("delayed", [False, True])
async def test_an_id_whose_publish_failed_can_be_enqueued_again(
    nats_url: str, delayed: bool
) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            bound = rt.client.options(job_id="retry-me")

            async def enqueue() -> object:
                if delayed:
                    return await bound.enqueue_in(0.0, jobfuncs.add, 2, 2)
                return await bound.enqueue(jobfuncs.add, 2, 2)

            faults.arm("client.publish_job=raise:1")
            with pytest.raises(faults.FaultInjected):
                await enqueue()
            job = await enqueue()
            assert not job.deduplicated  # type: ignore[attr-defined]
            assert await job.result(timeout=20) == 4  # type: ignore[attr-defined]
            again = await enqueue()
            assert again.deduplicated  # type: ignore[attr-defined]
