"""Fault points: off unless armed, fire as often as asked, inherited by child processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actorq.process import faults
from tests.helpers import paths


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    faults.disarm()
    yield
    faults.disarm()


def test_an_unarmed_point_carries_on() -> None:
    assert faults.hit("result.store") is False
    assert faults.fired("result.store") == 0


def test_an_armed_point_fires_as_often_as_asked_then_carries_on() -> None:
    faults.arm("a=raise:2,b=timeout,c=drop:*")
    for _ in range(2):
        with pytest.raises(faults.FaultInjected, match="fault injected at a"):
            faults.hit("a")
    assert faults.hit("a") is False
    with pytest.raises(TimeoutError):
        faults.hit("b")
    assert faults.hit("b") is False
    assert all(faults.hit("c") for _ in range(5))
    assert (faults.fired("a"), faults.fired("b"), faults.fired("c")) == (2, 1, 5)


def test_injected_disarms_everything_when_the_block_ends() -> None:
    with faults.injected("x=drop:*"):
        assert faults.hit("x")
    assert faults.hit("x") is False


def test_a_bad_entry_names_the_syntax() -> None:
    with pytest.raises(ValueError, match=r"point=kind\[:count\]"):
        faults.arm("result.store=explode")


def test_a_child_process_inherits_its_faults_from_the_environment() -> None:
    code = (
        "from actorq.process import faults\n"
        "assert faults.hit('p.drop') and not faults.hit('p.drop')\n"
        "faults.hit('p.exit')\n"
        "raise SystemExit('p.exit did not fire')\n"
    )
    env = {**os.environ, faults.ENV_VAR: "p.drop=drop:1,p.exit=exit"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=paths.ROOT, env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 70, done.stderr


def test_a_point_with_a_trigger_fires_once_per_creation_of_its_file(tmp_path: Path) -> None:
    trigger = tmp_path / "pull"
    faults.arm(f"t=drop:*@{trigger}")
    assert faults.hit("t") is False  # armed, but no trigger yet
    trigger.touch()
    assert faults.hit("t") is True
    assert not trigger.exists()
    assert faults.hit("t") is False
    trigger.touch()
    assert faults.hit("t") is True
    assert faults.fired("t") == 2


def test_a_trigger_fires_in_one_process_of_all_that_inherited_it(tmp_path: Path) -> None:
    trigger = tmp_path / "pull"
    trigger.touch()
    code = "from actorq.process import faults\nfaults.hit('p.exit')\n"
    env = {**os.environ, faults.ENV_VAR: f"p.exit=exit:*@{trigger}"}
    codes = [
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=paths.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).returncode
        for _ in range(3)
    ]
    assert codes == [70, 0, 0]
