"""Warm standbys (``ProcessSpec(standby=True)``): a parked spare takes over a killed
child, is replaced when it dies itself, and never outlives its supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import trio
from conftest import PidRegistry, gone
from sup_specs import pspec
from test_sup_orphans import child_env, read_line, wait_all_gone

from supervisors import (
    ChildRestarted,
    RestartIntensityExceeded,
    StandbyParked,
    Supervisor,
    SupervisorEvent,
    open_supervisor,
)

Events = trio.MemoryReceiveChannel[SupervisorEvent]


async def parked(sup: Supervisor, events: Events, other_than: int | None = None) -> int:
    """The pid of ``sup``'s parked standby (not ``other_than``), once there is one."""
    for pid in sup.snapshot().standby_pids:
        if pid != other_than:
            return pid
    async for event in events:
        if isinstance(event, StandbyParked) and event.pid != other_than:
            return event.pid
    raise AssertionError("the event stream ended")


async def restarted(events: Events) -> int | None:
    """The pid of the next restarted child (``None`` if the tree stopped first)."""
    async for event in events:
        if isinstance(event, ChildRestarted):
            return event.pid
    return None


async def test_a_parked_standby_takes_over_a_killed_child_and_another_is_parked(
    tmp_path: Path, pids: PidRegistry
) -> None:
    path = tmp_path / "w"
    spec = pspec("w", "standby_serve", str(path), standby=True)
    with trio.fail_after(30):
        async with open_supervisor([spec], max_restarts=5) as sup, sup.subscribe() as events:
            first = sup.snapshot().find("w").pid
            assert first is not None
            spare = await parked(sup, events)
            pids.add(first, spare)
            # Parked: imported and prepared, but not running the target yet.
            assert (tmp_path / f"w.{spare}.prepared").exists()
            assert not (tmp_path / f"w.{spare}.run").exists()
            assert sup.snapshot().find("w").state == "running"
            os.kill(first, signal.SIGKILL)
            assert await restarted(events) == spare  # the spare became the child
            assert (tmp_path / f"w.{spare}.run").exists()
            assert sup.snapshot().find("w").restarts == 1
            # A fresh spare is parked once the replacement is ready.
            second = await parked(sup, events, other_than=spare)
            pids.add(second)
            assert second not in (first, spare)
            assert not (tmp_path / f"w.{second}.run").exists()
        # Stopped with the tree: the child and the parked spare, by pid.
        for pid in (first, spare, second):
            assert gone(pid)


async def test_children_that_differ_only_in_id_share_one_standby(
    tmp_path: Path, pids: PidRegistry
) -> None:
    specs = [pspec(f"w{i}", "standby_serve", str(tmp_path / "w"), standby=True) for i in range(3)]
    with trio.fail_after(30):
        async with open_supervisor(specs) as sup, sup.subscribe() as events:
            spare = await parked(sup, events)
            pids.add(spare)
            # Every child's start asked for one; a second would park within this time.
            with trio.move_on_after(1.0):
                await parked(sup, events, other_than=spare)
            assert sup.snapshot().standby_pids == (spare,)
            # The one spare replaces whichever child dies.
            victim = sup.snapshot().find("w2").pid
            assert victim is not None
            os.kill(victim, signal.SIGKILL)
            assert await restarted(events) == spare
            assert sup.snapshot().find("w2").pid == spare
        assert gone(spare)


async def test_a_standby_that_dies_while_parked_is_replaced_and_the_child_untouched(
    tmp_path: Path, pids: PidRegistry
) -> None:
    spec = pspec("w", "standby_serve", str(tmp_path / "w"), standby=True)
    with trio.fail_after(30):
        async with open_supervisor([spec], max_restarts=0) as sup, sup.subscribe() as events:
            child = sup.snapshot().find("w").pid
            spare = await parked(sup, events)
            pids.add(spare)
            os.kill(spare, signal.SIGKILL)
            replacement = await parked(sup, events, other_than=spare)
            pids.add(replacement)
            node = sup.snapshot().find("w")
            # Not a restart: the child runs on, and max_restarts=0 was not touched.
            assert (node.pid, node.restarts, node.state) == (child, 0, "running")
            assert sup.snapshot().standby_pids == (replacement,)
        assert gone(replacement)


async def _kill_twice(spec: object, pids: PidRegistry) -> None:
    async with open_supervisor([spec], max_restarts=1, within=60) as sup:  # type: ignore[list-item]
        with sup.subscribe() as events:
            spare = None
            for _ in range(2):
                spare = await parked(sup, events, other_than=spare)
                victim = sup.snapshot().find("w").pid
                assert victim is not None
                pids.add(victim, spare)
                os.kill(victim, signal.SIGKILL)
                pid = await restarted(events)
                if pid is not None and pid != spare:
                    raise AssertionError(f"restarted as {pid}, not through its standby {spare}")
        await trio.sleep_forever()


async def test_restarts_through_a_standby_still_count_against_the_intensity(
    tmp_path: Path, pids: PidRegistry
) -> None:
    spec = pspec("w", "standby_serve", str(tmp_path / "w"), standby=True)
    with trio.fail_after(30):
        # The first kill is restarted through the spare; the second exceeds max_restarts=1.
        with pytest.raises(RestartIntensityExceeded):
            await _kill_twice(spec, pids)
    # The escalation stopped the child and its spares.
    assert pids.pids
    assert all(gone(pid) for pid in pids.pids)


async def test_kill_9_of_the_supervising_process_takes_the_parked_standby_too(
    tmp_path: Path, pids: PidRegistry
) -> None:
    tree = await trio.lowlevel.open_process(
        [
            sys.executable, "-m", "supervisors.child_runtime", "sup_targets:standby_tree_main",
            str(tmp_path / "w"),
        ],
        stdout=subprocess.PIPE,
        env=child_env(),
    )  # fmt: skip
    pids.add(tree.pid)
    try:
        assert tree.stdout is not None
        with trio.fail_after(30):
            reported = json.loads(await read_line(tree.stdout))
        family = [reported["child"], reported["standby"]]
        pids.add(*family)
        assert set(family) <= {p.pid for p in psutil.Process(tree.pid).children()}
        tree.kill()
        with trio.fail_after(2):
            await wait_all_gone(family)
    finally:
        tree.kill()
        with trio.move_on_after(2):
            await tree.wait()
