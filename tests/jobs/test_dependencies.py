"""Jobs that wait for others: fan-in, chains, failure propagation, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actorq import JobFailed
from actorq.exceptions import DependencyError
from tests.helpers import jobfuncs, schedfuncs
from tests.helpers.jobs_harness import open_runtime, wait_for_status


async def test_a_fan_in_job_runs_after_all_its_parents_succeeded(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            a = await rt.client.enqueue(jobfuncs.sync_sleep, 0.3)
            b = await rt.client.enqueue(schedfuncs.now)
            c = await rt.client.options(depends_on=[a.id, b.id]).enqueue(schedfuncs.now)
            ran_at = await c.result(timeout=10)
            ra, rb = await a.record(), await b.record()
            rc = await c.record()
    assert ra is not None
    assert ra.finished_at is not None
    assert rb is not None
    assert rb.finished_at is not None
    assert ran_at >= max(ra.finished_at, rb.finished_at)
    assert rc is not None
    assert [h.status for h in rc.history][:2] == ["waiting", "queued"]


async def test_a_chain_runs_in_order(nats_url: str, tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            first = await rt.client.enqueue(jobfuncs.sync_sleep, 0.2)
            second = await rt.client.options(depends_on=[first.id]).enqueue(schedfuncs.now)
            assert await second.status() == "waiting"
            third = await rt.client.options(depends_on=[second.id]).enqueue(schedfuncs.now)
            t3 = await third.result(timeout=10)
            t2 = await second.result(timeout=10)
    assert t2 <= t3


async def test_a_parent_that_already_succeeded_releases_its_child_at_once(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            parent = await rt.client.enqueue(schedfuncs.concat, "p")
            await parent.result(timeout=10)
            child = await rt.client.options(depends_on=[parent.id]).enqueue(schedfuncs.concat, "c")
            assert await child.result(timeout=10) == "c"


async def test_a_failed_parent_fails_its_dependents_which_never_run(
    nats_url: str, tmp_path: Path
) -> None:
    marks = tmp_path / "runs"
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            slow = await rt.client.enqueue(jobfuncs.sync_sleep, 0.3)
            bad = await rt.client.options(max_retries=0, depends_on=[slow.id]).enqueue(
                schedfuncs.fail, "no"
            )
            child = await rt.client.options(depends_on=[bad.id, slow.id]).enqueue(
                schedfuncs.mark, str(marks)
            )
            grandchild = await rt.client.options(depends_on=[child.id]).enqueue(
                schedfuncs.mark, str(marks)
            )
            with pytest.raises(JobFailed, match="no"):
                await bad.result(timeout=10)
            with pytest.raises(JobFailed, match="dependency failed") as info:
                await child.result(timeout=10)
            with pytest.raises(JobFailed, match="dependency failed"):
                await grandchild.result(timeout=10)
            assert await grandchild.status() == "failed"
    assert info.value.exc_type == "actorq.DependencyFailed"
    assert bad.id in info.value.exc_message
    assert not marks.exists()


async def test_an_unknown_parent_is_refused_at_enqueue(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url, queues={}) as rt:
            with pytest.raises(DependencyError, match="unknown"):
                await rt.client.options(depends_on=["nope"]).enqueue(schedfuncs.now)


async def test_a_job_depending_on_itself_is_refused_as_a_cycle(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url, queues={}) as rt:
            with pytest.raises(DependencyError, match="cycle"):
                await rt.client.options(job_id="loop", depends_on=["loop"]).enqueue(schedfuncs.now)


async def test_dependents_survive_a_result_actor_restart(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            parent = await rt.client.enqueue(schedfuncs.concat, "p")
            child = await rt.client.options(depends_on=[parent.id]).enqueue(schedfuncs.concat, "c")
            await wait_for_status(rt.client, child.id, "waiting")
            # A fresh result actor (the harness's first keeps running too: both share
            # the outcomes consumer) must know the parent from the deps bucket alone.
            from actorq.jobs.result_actor import serve_result_actor

            fresh = await rt.nursery.start(
                lambda task_status: serve_result_actor(
                    nats_url, namespace=rt.namespace, task_status=task_status
                )
            )
            assert parent.id in fresh.deps.parents
            await rt.start_queue_actor("default", 2)
            assert await child.result(timeout=15) == "c"
