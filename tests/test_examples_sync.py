"""examples/sync_send.py sends a job to a running runtime and prints its result."""

from __future__ import annotations

import os
import sys

import pytest
import trio

from tests.helpers import paths
from tests.helpers.jobs_harness import open_runtime

EXAMPLES = paths.EXAMPLES


async def test_the_sync_send_example_prints_the_result_and_exits(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-process workers unpickle `tasks.add` by name, as real workers would.
    monkeypatch.syspath_prepend(str(EXAMPLES))
    with trio.fail_after(40):
        async with open_runtime(nats_url) as rt:
            env = {**os.environ, "ACTORQ_NATS_URL": rt.url, "ACTORQ_NAMESPACE": rt.namespace}
            done = await trio.run_process(
                [sys.executable, str(EXAMPLES / "sync_send.py"), "20", "22", "--timeout", "20"],
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "sent job " in out
    assert out.strip().endswith("result: 42")
    assert done.stderr == b""
