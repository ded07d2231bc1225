"""The client's fast paths (issue 14): the sync helper enqueues from the calling thread,
explicit ids and signed jobs work there, and a result that came before anyone waited
is returned without a read."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from actorq import SyncClient
from actorq.process import faults
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import Runtime, open_runtime

KEY = bytes(range(32))


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    faults.disarm()
    yield
    faults.disarm()


@contextlib.asynccontextmanager
async def open_sync(rt: Runtime, **options: Any) -> AsyncIterator[SyncClient]:
    client = await trio.to_thread.run_sync(
        lambda: SyncClient(rt.url, namespace=rt.namespace, **options)
    )
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(client.close)


async def test_sync_enqueues_go_from_the_calling_thread_and_their_results_come_back(
    nats_url: str,
) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url) as rt, open_sync(rt) as client:

            def work() -> tuple[list[int], int]:
                client.enqueue(jobfuncs.add, 0, 0).result(timeout=20)  # the queue is known
                pool = client._pool
                assert pool is not None
                before = pool.published
                jobs = [client.enqueue(jobfuncs.add, i, i) for i in range(30)]
                return [j.result(timeout=20) for j in jobs], pool.published - before

            results, direct = await trio.to_thread.run_sync(work)
    assert results == [2 * i for i in range(30)]
    assert direct == 30  # none took the owner loop


async def test_explicit_ids_and_signed_jobs_work_on_the_direct_path(nats_url: str) -> None:
    with trio.fail_after(60):
        async with (
            open_runtime(nats_url, signing_key=KEY) as rt,
            open_sync(rt, signing_key=KEY) as client,
        ):

            def work() -> tuple[Any, ...]:
                client.enqueue(jobfuncs.add, 0, 0).result(timeout=20)
                pool = client._pool
                assert pool is not None
                before = pool.published
                bound = client.options(job_id="direct-once")
                first = bound.enqueue(jobfuncs.add, 2, 2)
                direct = pool.published - before
                again = bound.enqueue(jobfuncs.add, 2, 2)
                return first.deduplicated, direct, again.deduplicated, first.result(timeout=20)

            assert await trio.to_thread.run_sync(work) == (False, 1, True, 4)


async def test_a_failed_direct_publish_gives_the_id_back(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url) as rt, open_sync(rt) as client:

            def work() -> tuple[Any, ...]:
                client.enqueue(jobfuncs.add, 0, 0).result(timeout=20)
                bound = client.options(job_id="direct-retry")
                faults.arm("client.publish_job=raise:1")
                with pytest.raises(faults.FaultInjected):
                    bound.enqueue(jobfuncs.add, 3, 3)
                job = bound.enqueue(jobfuncs.add, 3, 3)
                return job.deduplicated, job.result(timeout=20)

            assert await trio.to_thread.run_sync(work) == (False, 6)
    assert faults.fired("client.publish_job") == 1


async def test_without_the_direct_path_the_sync_helper_still_enqueues(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTORQ_CLIENT_LINK", "0")
    with trio.fail_after(60):
        async with open_runtime(nats_url) as rt, open_sync(rt) as client:
            assert client._pool is None
            job = await trio.to_thread.run_sync(client.enqueue, jobfuncs.add, 1, 2)
            assert await trio.to_thread.run_sync(job.result, 20) == 3


async def test_a_result_that_came_before_anyone_waited_needs_no_read(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            kept = trio.Event()
            keep = rt.client._keep_unclaimed

            def keeping(job_id: str, data: bytes) -> None:
                keep(job_id, data)
                kept.set()

            rt.client._keep_unclaimed = keeping  # type: ignore[method-assign]
            job = await rt.client.enqueue(jobfuncs.add, 5, 5)
            await kept.wait()  # the inbox got the final record while nobody waited
            assert job.id in rt.client._unclaimed
            reads = 0
            real_get = rt.client.get_record

            async def counting_get(job_id: str) -> Any:
                nonlocal reads
                reads += 1
                return await real_get(job_id)

            rt.client.get_record = counting_get  # type: ignore[method-assign]
            assert await job.result(timeout=5) == 10
            assert await job.status() == "succeeded"  # stored before result() returned
    assert reads == 1  # status() only; result() read nothing
