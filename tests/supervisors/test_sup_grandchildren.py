"""Nothing of a process child's group outlives it: its grandchildren go with it (issue 12)."""

from __future__ import annotations

from pathlib import Path

import trio
from conftest import PidRegistry, gone
from sup_specs import pspec

from supervisors import open_supervisor


async def _wait_gone(pid: int) -> None:
    # Polling psutil is the only way to watch a process that is not our child.
    while True:
        if gone(pid):
            return
        await trio.sleep(0.02)


async def test_stopping_a_process_child_stops_its_grandchildren(
    tmp_path: Path, pids: PidRegistry
) -> None:
    path = tmp_path / "grandchild"
    with trio.fail_after(20):
        async with open_supervisor([pspec("parent", "spawn_grandchild", str(path))]):
            grandchild = int(path.read_text())
            pids.add(grandchild)
            assert not gone(grandchild)
        await _wait_gone(grandchild)


async def test_a_process_child_that_exits_leaves_no_grandchild_behind(
    tmp_path: Path, pids: PidRegistry
) -> None:
    path = tmp_path / "grandchild"
    spec = pspec("parent", "spawn_grandchild", str(path), "exit", restart="temporary")
    with trio.fail_after(20):
        async with open_supervisor([spec]):
            # Written before the child reported ready, which opening waited for.
            grandchild = int(path.read_text())
            pids.add(grandchild)
            await _wait_gone(grandchild)
