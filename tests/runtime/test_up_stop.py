"""`actorq up` stopping: every queue actor stops fetching at the first signal (issue 12)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from actorq import SyncClient
from actorq.cli.main import RET_OK
from tests.helpers import upfuncs
from tests.helpers.up_harness import run_up, up_env, wait_gone

pytestmark = pytest.mark.timeout(180)


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_a_stopping_runtime_fetches_nothing_more_on_any_queue_actor(tmp_path: Path) -> None:
    running, late = tmp_path / "running", tmp_path / "late"
    with run_up(tmp_path, up_env(tmp_path / "nats")) as up:
        up.ready()
        with SyncClient(up.url) as client:
            client.enqueue(upfuncs.nap, str(running), 4.0)
            _wait_for((running / "started").exists, 30, "the job to start")
            up.signal(signal.SIGTERM)
            # Both queue actors (examples/config.toml runs two) stop fetching at once,
            # while one of them still drains the running job.
            _wait_for(
                lambda: up.stderr().count("SIGTERM, fetching no more") == 2, 10,
                "both queue actors to stop fetching",
            )  # fmt: skip
            assert not (running / "done").exists()
            late_id = client.enqueue(upfuncs.nap, str(late), 0.0).id
        assert up.wait() == RET_OK, up.stderr()
        assert (running / "done").exists(), "the running job was cut short"
        assert not (late / "started").exists(), "a stopping runtime ran a new job"
        assert wait_gone(up.seen) == set(), f"left running: {up.seen}"
    # The late job is still queued, for the next start.
    with run_up(tmp_path, up_env(tmp_path / "nats"), name="second") as up:
        up.ready()
        with SyncClient(up.url) as client:
            assert client.result(late_id, timeout=30) is not None


def test_an_idle_runtime_stops_at_once_every_process_on_its_own(tmp_path: Path) -> None:
    # The result actor and the scheduler used to wait out a 5 s flush of their probe's
    # link each (its reader already cancelled), to be killed for ignoring SIGTERM.
    with run_up(tmp_path, up_env(tmp_path / "nats")) as up:
        up.ready()
        started = time.monotonic()
        up.signal(signal.SIGTERM)
        assert up.wait() == RET_OK, up.stderr()
        took = time.monotonic() - started
        assert "ignored SIGTERM" not in up.stderr(), up.stderr()[-3000:]
        assert took < 5.0, f"an idle actorq up took {took:.1f}s to stop"
        assert wait_gone(up.seen) == set(), f"left running: {up.seen}"
