"""`actorq up`'s log of its children: a line per exit and restart with the child's
name, pid, reason and restart count; a crash is one record with its traceback."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import trio

from actorq.constants import ENV_CHILD
from actorq.runtime.child import JsonFormatter
from actorq.runtime.child_log import log_child_events
from supervisors import ChildRestarted, SupervisorEvent, TaskSpec, open_supervisor
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.timeout(60)


async def test_each_exit_and_restart_is_one_line_with_name_pid_reason_and_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="actorq.up.children")
    runs = 0
    subscribed = trio.Event()  # the first run fails only once the test listens

    async def flaky(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        if runs == 1:
            await subscribed.wait()
            raise RuntimeError("lost the connection")
        await trio.sleep_forever()

    # The tree's events up to the restart, then logged as `actorq up` logs them.
    send, receive = trio.open_memory_channel[SupervisorEvent](100)
    with trio.fail_after(20):
        async with open_supervisor([TaskSpec(id="flaky", target=flaky)], id="root") as tree:
            with tree.subscribe() as events:
                subscribed.set()
                async for event in events:
                    send.send_nowait(event)
                    if isinstance(event, ChildRestarted):
                        break
        send.close()
        await log_child_events(receive)
    exited, again = [r for r in caplog.records if r.name == "actorq.up.children"][:2]
    assert exited.levelno == logging.ERROR
    assert exited.getMessage() == (
        "child root/flaky exited: exception: RuntimeError: lost the connection; "
        "restarts so far 0"
    )  # a task child: no pid to show (not "pid None")
    assert again.getMessage() == "child root/flaky restarted, restart 1"
    entry = json.loads(JsonFormatter().format(exited))
    assert entry["child"] == "root/flaky"
    assert entry["restarts"] == 0
    assert "RuntimeError" in entry["reason"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_crash_is_one_record_with_its_traceback_not_a_cascade(fmt: str) -> None:
    env = {**os.environ, ENV_CHILD: json.dumps({"logging": {"level": "INFO", "format": fmt}})}
    code = (
        "import sys\n"
        "from actorq.runtime.child import main\n"
        "sys.exit(main(lambda: None, 'tests.helpers.crashers:nested'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "ExceptionGroup" not in out.stderr
    assert out.stderr.count("Traceback") == 1
    if fmt == "json":
        (line,) = out.stderr.splitlines()
        entry = json.loads(line)
        assert entry["level"] == "ERROR"
        assert entry["msg"].endswith("crashed: ValueError: the database went away")
        assert "raise ValueError" in entry["exc"]
    else:
        first = out.stderr.splitlines()[0]
        assert " ERROR " in first
        assert first.endswith("crashed: ValueError: the database went away")
