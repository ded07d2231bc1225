"""examples/async_jobs.py runs as a user would run it, and prints what it promises."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import paths

EXAMPLES = paths.EXAMPLES


def test_the_async_jobs_example_prints_results_and_the_remote_failure() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "async_jobs.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "add(2, 3) = 5" in out
    assert "squares: [0, 1, 4, 9, 16]" in out
    assert "divide(1, 0) failed remotely: ZeroDivisionError - division by zero" in out
    assert "status: failed" in out
