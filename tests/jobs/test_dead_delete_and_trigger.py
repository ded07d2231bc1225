"""Client.delete_dead_letter and Client.trigger_schedule (added for the dashboard)."""

from __future__ import annotations

import re

import pytest
import trio

from actorq.exceptions import NotFound
from actorq.jobs.client import EnqueueOptions
from tests.helpers import jobfuncs, schedfuncs
from tests.helpers.jobs_harness import open_runtime


async def test_a_deleted_dead_letter_is_gone_and_its_job_never_runs(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url) as rt:
            client = rt.client
            async with client.conn.subscribe(client.streams.dead_subject(">")) as letters:
                job = await client.enqueue_with(
                    EnqueueOptions(max_retries=0), jobfuncs.boom, ("x",)
                )
                await letters.receive()
            assert [d.job_id for d in await client.dead_letters()] == [job.id]
            await client.delete_dead_letter(job.id)
            assert await client.dead_letters() == []
            with pytest.raises(NotFound):
                await client.delete_dead_letter(job.id)
            with pytest.raises(NotFound):
                await client.requeue(job.id)


async def test_triggering_a_paused_schedule_runs_it_once_now_outside_its_plan(
    nats_url: str,
) -> None:
    # Signed: the run carries the schedule's own signature, which workers accept.
    with trio.fail_after(60):
        async with open_runtime(nats_url, signing_key=b"s" * 32) as rt:
            client = rt.client
            await client.schedule("weekly", schedfuncs.concat, "a", "b", cron="0 9 * * 1")
            before = await client.pause_schedule("weekly")
            job = await client.trigger_schedule("weekly")
            assert re.fullmatch(r"weekly-\d{13}", job.id)
            assert await client.result(job.id, timeout=20) == "ab"
            (after,) = await client.schedules()
            assert after.paused
            assert after.runs == before.runs
            with pytest.raises(NotFound):
                await client.trigger_schedule("no-such-schedule")
