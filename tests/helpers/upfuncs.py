"""Job functions and a start-up hook for tests/runtime/test_up.py (workers import them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path

#: When the file this names exists, importing this module fails: a worker that
#: imports it at start then crash-loops (set by the test, inherited by the workers).
CRASH_MARKER_ENV = "ACTORQ_TEST_CRASH_MARKER"

_marker = os.environ.get(CRASH_MARKER_ENV)
if _marker and Path(_marker).exists():
    raise RuntimeError("upfuncs: crashing at start-up on purpose (test)")


def nap(marker_dir: str, seconds: float) -> int:
    """Leave ``started``, sleep, leave ``done``; returns the worker's pid."""
    d = Path(marker_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "started").touch()
    time.sleep(seconds)
    (d / "done").touch()
    return os.getpid()


def pid() -> int:
    """The pid of the worker that ran the job."""
    return os.getpid()
