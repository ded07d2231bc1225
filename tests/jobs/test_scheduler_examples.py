"""The scheduling examples run as a user would run them, and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import paths

EXAMPLES = paths.EXAMPLES


def _run(name: str) -> str:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_the_delayed_jobs_example_runs_each_job_when_asked() -> None:
    out = _run("delayed_jobs.py")
    assert "status right after enqueue: scheduled" in out
    ran = [float(x) for x in re.findall(r"ran (\d+\.\d)s after the enqueue", out)]
    assert len(ran) == 2
    assert 1.0 <= ran[0] <= 2.0
    assert 2.0 <= ran[1] <= 3.0
    assert "hello later at" in out
    assert "naive datetime refused: ConfigError" in out


def test_the_cron_jobs_example_runs_two_reports_and_cleans_up() -> None:
    out = _run("cron_jobs.py")
    assert "schedules: ['sales']" in out
    assert out.count("sales report at") == 2
    assert "daily paused: True next runs: []" in out
    assert "daily resumed, next run (UTC):" in out
    assert "left: []" in out


def test_the_dependent_jobs_example_releases_and_fails_dependents() -> None:
    out = _run("dependent_jobs.py")
    assert "merge waits: waiting" in out
    assert "published report" in out
    assert "dependent of a failed job: dependency failed" in out
    assert "refused: job" in out
