"""No orphans: children die with their supervising process, however it dies."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from typing import Any

import psutil
import pytest
import trio
from conftest import HERE, ROOT, PidRegistry, gone
from sup_specs import pspec

from supervisors import open_supervisor, trio_popen
from supervisors.child_runtime import CONTROL_FD_ENV, PARENT_PID_ENV


def child_env() -> dict[str, str]:
    """Our environment with the repository and the test targets importable."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, HERE])}


async def read_line(stream: trio.abc.ReceiveStream) -> bytes:
    """Read up to the first newline of ``stream``."""
    data = b""
    while b"\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise EOFError(f"stream ended before a line: {data!r}")
        data += chunk
    return data.split(b"\n", 1)[0]


async def wait_all_gone(pids: list[int]) -> None:
    """Return once every pid is gone (or a zombie); the caller bounds the wait."""
    # Polling psutil is the only way to watch processes that are not our children.
    while True:
        if all(gone(pid) for pid in pids):
            return
        await trio.sleep(0.02)


async def test_kill_9_of_the_supervisor_process_takes_every_descendant_within_2_s(
    pids: PidRegistry,
) -> None:
    tree = await trio.lowlevel.open_process(
        [sys.executable, "-m", "supervisors.child_runtime", "sup_targets:tree_main", "1"],
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    pids.add(tree.pid)
    try:
        assert tree.stdout is not None
        with trio.fail_after(20):
            line = await read_line(tree.stdout)
        assert json.loads(line)["pid"] == tree.pid
        descendants = [p.pid for p in psutil.Process(tree.pid).children(recursive=True)]
        pids.add(*descendants)
        # p1, p2, p3, subtree, and the subtree's own p1, p2, p3.
        assert len(descendants) == 7
        tree.kill()
        with trio.fail_after(2):
            await wait_all_gone(descendants)
    finally:
        tree.kill()
        with trio.move_on_after(2):
            await tree.wait()


async def test_child_dies_on_control_socket_eof_and_resets_signals_and_arms_pdeathsig(
    tmp_path: object, pids: PidRegistry
) -> None:
    report = os.path.join(str(tmp_path), "report.json")
    ours, theirs = socket.socketpair()
    env = {
        **child_env(),
        CONTROL_FD_ENV: str(theirs.fileno()),
        PARENT_PID_ENV: str(os.getpid()),
    }

    def ignore_signals() -> None:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    child = await trio.lowlevel.open_process(
        [sys.executable, "-m", "supervisors.child_runtime", "sup_targets:report_signals", report],
        env=env,
        pass_fds=(theirs.fileno(),),
        preexec_fn=ignore_signals,
    )
    theirs.close()
    pids.add(child.pid)
    try:
        control = trio.socket.from_stdlib_socket(ours)
        with trio.fail_after(10):
            assert await control.recv(1) == b"R"
        state = json.loads(await trio.Path(report).read_text())
        assert state == {"sigint": True, "sigterm": True, "pdeathsig": 9}
        # This process stays alive, so only the socket's EOF can stop the child.
        ours.close()
        with trio.fail_after(2):
            await child.wait()
        assert child.returncode == -9
    finally:
        ours.close()
        child.kill()


async def test_process_children_are_forked_from_the_trio_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* exits; a worker thread of Trio's
    # cache exits after 10 s idle, which would kill a child forked from it.
    threads: list[threading.Thread] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        threads.append(threading.current_thread())
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(trio_popen.subprocess, "Popen", recording_popen)
    with trio.fail_after(10):
        async with open_supervisor([pspec("p", "serve_forever")]):
            pass
    assert threads == [threading.main_thread()]
