"""Due times: cron in IANA zones (DST tables: test_scheduler_dst.py), intervals, misfires."""

from __future__ import annotations

import datetime as dt
import functools
import time
import zoneinfo
from collections.abc import Awaitable

import pytest
import trio

from actorq.jobs.scheduler_actor import serve_scheduler_actor
from actorq.jobs.schedules import next_due, next_dues
from actorq.wire.messages import ScheduleEntry
from tests.helpers import schedfuncs
from tests.helpers.jobs_harness import open_runtime
from tests.helpers.scheduler_harness import eventually

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def _entry(**kw: object) -> ScheduleEntry:
    base: dict[str, object] = {
        "name": "s", "queue": "default", "function": "f", "codec": "pickle", "payload": b"",
    }  # fmt: skip
    return ScheduleEntry(**{**base, **kw})  # type: ignore[arg-type]


def test_a_daily_nine_oclock_in_paris_stays_at_nine_local_across_dst() -> None:
    entry = _entry(cron="0 9 * * *", tz="Europe/Paris")
    start = dt.datetime(2026, 3, 27, 12, tzinfo=PARIS).timestamp()
    local = [dt.datetime.fromtimestamp(t, PARIS) for t in next_dues(entry, start, 4)]
    assert [d.hour for d in local] == [9, 9, 9, 9]
    assert {d.utcoffset() for d in local} == {dt.timedelta(hours=1), dt.timedelta(hours=2)}


def test_interval_due_times_are_anchored_and_respect_limits() -> None:
    entry = _entry(every=10, start_at=1000.0, end_at=1030.0)
    assert next_due(entry, 0) == 1000
    assert next_due(entry, 1000) == 1010
    assert next_due(entry, 1015.5) == 1020
    assert next_due(entry, 1030) is None
    assert next_due(_entry(every=10, start_at=1000.0, max_runs=2, runs=2), 0) is None


@pytest.mark.parametrize(("policy", "expected_missed_runs"), [("run_once", 1), ("skip", 0)])
async def test_after_downtime_the_misfire_policy_decides(
    nats_url: str, policy: str, expected_missed_runs: int
) -> None:
    with trio.fail_after(25):
        async with open_runtime(nats_url) as rt:
            info = await rt.client.schedule(
                "m",
                schedfuncs.now,
                every=1,
                misfire=policy,
                misfire_grace=0.5,  # type: ignore[arg-type]
            )
            first_due = int(info.next_runs[0].timestamp())
            # No scheduler for a while: several due times pass; one timer fires and waits.
            await trio.sleep(max(0.0, first_due - time.time()) + 1.6)
            down_until = time.time()
            async with trio.open_nursery() as nursery:
                scheduler = await nursery.start(
                    functools.partial(serve_scheduler_actor, nats_url, namespace=rt.namespace)
                )
                await eventually(lambda: scheduler.fired + scheduler.skipped >= 2)
                nursery.cancel_scope.cancel()

            async def stored() -> list[str]:
                return [k for k in await rt.client.results.keys() if k.startswith("m-")]

            await eventually(lambda: _at_least(stored(), scheduler.fired))
            keys = await stored()
    dues = sorted(int(k.rsplit("-", 1)[1]) for k in keys)
    missed = [d for d in dues if d < down_until]
    assert len(missed) == expected_missed_runs
    assert scheduler.skipped == 1 - expected_missed_runs


async def _at_least(items: Awaitable[list[str]], count: int) -> bool:
    return len(await items) >= count
