"""Cron across DST (issue 12, item 5): every wall-clock time a cron expression matches
fires once. A time a fall-back repeats fires at its first occurrence only; a time a
spring-forward skips fires once, right after the gap.

The expected due times are written out by hand (UTC, with the local time each one
is), not computed by croniter or by any code under test.

2026 transitions: Europe/Paris springs forward on 29 March at 02:00 CET (to 03:00
CEST, UTC+2) and falls back on 25 October at 03:00 CEST (to 02:00 CET, UTC+1);
America/New_York springs forward on 8 March at 02:00 EST (to 03:00 EDT, UTC-4) and
falls back on 1 November at 02:00 EDT (to 01:00 EST, UTC-5).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from actorq.jobs.schedules import next_due, next_dues
from actorq.wire.messages import ScheduleEntry

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def _entry(cron: str, tz: str) -> ScheduleEntry:
    return ScheduleEntry(
        name="s", queue="default", function="f", codec="pickle", payload=b"", cron=cron, tz=tz
    )


def _utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def _show(ts: float, tz: str) -> str:
    return dt.datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(tz)).isoformat()


# (cron, zone, start (local, exclusive), expected: [(UTC, local as it reads)])
TABLES = {
    "paris spring-forward: 02:30 does not exist, fires once at 03:00": (
        "30 2 * * *", PARIS, "2026-03-27T12:00:00+01:00",
        [
            ("2026-03-28T01:30:00", "2026-03-28T02:30:00+01:00"),
            ("2026-03-29T01:00:00", "2026-03-29T03:00:00+02:00"),
            ("2026-03-30T00:30:00", "2026-03-30T02:30:00+02:00"),
        ],
    ),
    "paris fall-back: 02:30 happens twice, fires once (the first)": (
        "30 2 * * *", PARIS, "2026-10-23T12:00:00+02:00",
        [
            ("2026-10-24T00:30:00", "2026-10-24T02:30:00+02:00"),
            ("2026-10-25T00:30:00", "2026-10-25T02:30:00+02:00"),
            ("2026-10-26T01:30:00", "2026-10-26T02:30:00+01:00"),
        ],
    ),
    "paris fall-back, hourly: the repeated 02:00 fires once": (
        "0 * * * *", PARIS, "2026-10-25T00:00:00+02:00",
        [
            ("2026-10-24T23:00:00", "2026-10-25T01:00:00+02:00"),
            ("2026-10-25T00:00:00", "2026-10-25T02:00:00+02:00"),
            ("2026-10-25T02:00:00", "2026-10-25T03:00:00+01:00"),
            ("2026-10-25T03:00:00", "2026-10-25T04:00:00+01:00"),
        ],
    ),
    "new york spring-forward: 02:30 does not exist, fires once at 03:00": (
        "30 2 * * *", NEW_YORK, "2026-03-06T12:00:00-05:00",
        [
            ("2026-03-07T07:30:00", "2026-03-07T02:30:00-05:00"),
            ("2026-03-08T07:00:00", "2026-03-08T03:00:00-04:00"),
            ("2026-03-09T06:30:00", "2026-03-09T02:30:00-04:00"),
        ],
    ),
    "new york spring-forward, every 15 min: the skipped hour fires once, at 03:00": (
        "*/15 * * * *", NEW_YORK, "2026-03-08T01:00:00-05:00",
        [
            ("2026-03-08T06:15:00", "2026-03-08T01:15:00-05:00"),
            ("2026-03-08T06:30:00", "2026-03-08T01:30:00-05:00"),
            ("2026-03-08T06:45:00", "2026-03-08T01:45:00-05:00"),
            ("2026-03-08T07:00:00", "2026-03-08T03:00:00-04:00"),
            ("2026-03-08T07:15:00", "2026-03-08T03:15:00-04:00"),
        ],
    ),
    "new york fall-back: 01:30 happens twice, fires once (the first)": (
        "30 1 * * *", NEW_YORK, "2026-10-31T12:00:00-04:00",
        [
            ("2026-11-01T05:30:00", "2026-11-01T01:30:00-04:00"),
            ("2026-11-02T06:30:00", "2026-11-02T01:30:00-05:00"),
        ],
    ),
    "new york fall-back, hourly: the repeated 01:00 fires once": (
        "0 * * * *", NEW_YORK, "2026-11-01T00:00:00-04:00",
        [
            ("2026-11-01T05:00:00", "2026-11-01T01:00:00-04:00"),
            ("2026-11-01T07:00:00", "2026-11-01T02:00:00-05:00"),
            ("2026-11-01T08:00:00", "2026-11-01T03:00:00-05:00"),
        ],
    ),
}


@pytest.mark.parametrize("case", list(TABLES))
def test_cron_due_times_across_dst_follow_the_written_table(case: str) -> None:
    cron, tz, start, expected = TABLES[case]
    entry = _entry(cron, tz)
    got = next_dues(entry, dt.datetime.fromisoformat(start).timestamp(), len(expected))
    assert [_show(t, tz) for t in got] == [local for _, local in expected]
    assert got == [_utc(utc) for utc, _ in expected]


def test_from_inside_the_repeated_hour_the_repeated_time_does_not_fire_again() -> None:
    # A scheduler that (re)computes at 01:10 EST, in New York's second 01:xx, after
    # 01:30 EDT fired: the second 01:30 is not due; the next day's is.
    entry = _entry("30 1 * * *", NEW_YORK)
    assert next_due(entry, _utc("2026-11-01T06:10:00")) == _utc("2026-11-02T06:30:00")


def test_from_inside_the_gap_the_skipped_time_fires_right_after_it() -> None:
    # Computed at 02:59:59 CET-that-never-was, i.e. 01:59:59 UTC+1 on 29 March.
    entry = _entry("30 2 * * *", PARIS)
    assert next_due(entry, _utc("2026-03-29T00:59:59")) == _utc("2026-03-29T01:00:00")
    # Once it fired at 03:00, nothing else that day.
    assert next_due(entry, _utc("2026-03-29T01:00:00")) == _utc("2026-03-30T00:30:00")
