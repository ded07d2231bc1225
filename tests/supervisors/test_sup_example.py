"""examples/supervisor_tree.py runs, restarts a killed worker, and stops on signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import trio
from conftest import ROOT, PidRegistry, gone

EXAMPLE = os.path.join(ROOT, "examples", "supervisor_tree.py")


class Lines:
    """Reads a byte stream line by line."""

    def __init__(self, stream: trio.abc.ReceiveStream | None) -> None:
        assert stream is not None
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str:
        """The next line, without its newline; EOFError at the end of the stream."""
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise EOFError(f"stream ended; unterminated: {self._buffer!r}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    async def until(self, text: str) -> str:
        """Skip lines until one contains ``text``; return it."""
        while True:
            line = await self.next()
            if text in line:
                return line


async def start_example(pids: PidRegistry, *args: str) -> trio.Process:
    """Start the example as a user would, with stdout and stderr piped."""
    process = await trio.lowlevel.open_process(
        [sys.executable, EXAMPLE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    pids.add(process.pid)
    return process


def process_pids(snapshot: dict[str, Any]) -> dict[str, int]:
    """Child id -> pid for every process in a snapshot tree."""
    found = {}
    for child in snapshot["children"]:
        if child["kind"] == "process":
            found[child["id"]] = child["pid"]
        found.update(process_pids(child))
    return found


async def test_the_example_restarts_a_killed_worker_and_stops_on_ctrl_c(
    pids: PidRegistry,
) -> None:
    process = await start_example(pids)
    try:
        out = Lines(process.stdout)
        with trio.fail_after(20):
            ready = json.loads(await out.until('"ready"'))
        workers = process_pids(ready["snapshot"])
        assert set(workers) == {"w1", "w2"}
        pids.add(*workers.values())

        os.kill(workers["w1"], signal.SIGKILL)
        with trio.fail_after(10):
            restarted = json.loads(await out.until('"restarted"'))
        assert restarted["child_id"] == "w1"
        assert restarted["pid"] != workers["w1"]
        pids.add(restarted["pid"])

        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            await process.wait()
        assert process.returncode == 128 + signal.SIGINT
        assert all(gone(pid) for pid in [restarted["pid"], workers["w2"]])
    finally:
        process.kill()


async def test_a_second_signal_kills_a_child_that_ignores_the_first(pids: PidRegistry) -> None:
    process = await start_example(pids, "--stubborn")
    try:
        out, err = Lines(process.stdout), Lines(process.stderr)
        with trio.fail_after(20):
            ready = json.loads(await out.until('"ready"'))
        children = process_pids(ready["snapshot"])
        pids.add(*children.values())

        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            await err.until("stopping gracefully")
        # The stubborn child has a 60 s shutdown timeout; only the second signal ends it.
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(3):
            await process.wait()
        assert process.returncode == 128 + signal.SIGTERM
        assert all(gone(pid) for pid in children.values())
    finally:
        process.kill()
