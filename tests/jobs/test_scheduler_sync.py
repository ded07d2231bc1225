"""The sync helper has the scheduling verbs too: delayed, dependent and recurring jobs."""

from __future__ import annotations

import datetime as dt
import time

import trio

from actorq import SyncClient
from tests.helpers import schedfuncs
from tests.helpers.scheduler_harness import open_scheduled_runtime


async def test_the_sync_client_delays_chains_and_schedules_jobs(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_scheduled_runtime(nats_url) as (rt, _):

            def scenario() -> tuple[float, float, str, list[str], list[str]]:
                with SyncClient(rt.url, namespace=rt.namespace) as client:
                    due = time.time() + 1
                    delayed = client.options(max_retries=1).enqueue_at(
                        dt.datetime.fromtimestamp(due, dt.UTC), schedfuncs.now
                    )
                    later = client.enqueue_in(dt.timedelta(seconds=0.5), schedfuncs.concat, "a")
                    child = client.options(depends_on=[delayed.id, later.id]).enqueue(
                        schedfuncs.concat, "b", "c"
                    )
                    # Due in an hour: nothing fires (and ends the schedule) mid-test.
                    info = client.schedule("s", schedfuncs.now, every=3600)
                    names = [s.name for s in client.schedules()]
                    client.pause_schedule("s")
                    client.resume_schedule("s")
                    client.delete_schedule("s")
                    after = [s.name for s in client.schedules()]
                    ran_at = delayed.result(timeout=10)
                    assert later.result(timeout=10) == "a"
                    assert info.every == 3600
                    return due, ran_at, child.result(timeout=10), names, after

            due, ran_at, child, names, after = await trio.to_thread.run_sync(scenario)
    assert due <= ran_at <= due + 1
    assert child == "bc"
    assert names == ["s"]
    assert after == []
