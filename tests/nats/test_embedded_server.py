"""The embedded nats-server: binary discovery, start/stop, restart with data, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from actorq import open_nats_server
from actorq.exceptions import PortInUse, ServerBinaryNotFound
from actorq.nats import NatsServerProcess, find_nats_server, open_nats
from actorq.nats.provisioning import StreamSpec, ensure_stream


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_binary_from_the_wheel_is_found() -> None:
    path = find_nats_server()
    assert path.name == "nats-server"
    assert os.access(path, os.X_OK)


def test_a_bad_override_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORQ_NATS_SERVER", "/nonexistent/nats-server")
    with pytest.raises(ServerBinaryNotFound, match="ACTORQ_NATS_SERVER"):
        find_nats_server()


def test_a_taken_port_is_refused_with_a_clear_error(nats_server: NatsServerProcess) -> None:
    with pytest.raises(PortInUse, match=str(nats_server.port)):
        NatsServerProcess(port=nats_server.port).start()


async def test_streams_survive_a_restart_on_the_same_data_dir(tmp_path: Path) -> None:
    server = NatsServerProcess(data_dir=tmp_path / "data")
    try:
        server.start()
        port = server.port
        async with open_nats(server.url) as nc:
            await ensure_stream(nc, StreamSpec(name="KEEP", subjects=["keep.>"]))
            for i in range(3):
                await nc.js_publish("keep.x", f"m{i}".encode())
        old_pid = server.pid
        server.stop()
        assert _gone(old_pid)
        server = NatsServerProcess(data_dir=tmp_path / "data", port=port)
        server.start()
        async with open_nats(server.url) as nc:
            info = await nc.jsm("stream_info", "KEEP")
            assert info.state.messages == 3
    finally:
        server.close()


async def test_the_trio_server_stops_when_its_block_ends() -> None:
    with trio.fail_after(20):
        async with open_nats_server() as server:
            pid = server.pid
            async with open_nats(server.url) as nc:
                await nc.publish("ping", b"")
                await nc.flush()
        assert _gone(pid)


async def test_the_trio_server_stops_when_cancelled() -> None:
    with trio.fail_after(20):
        pids: list[int] = []
        with trio.move_on_after(0.5):
            async with open_nats_server() as server:
                pids.append(server.pid)
                await trio.sleep_forever()
        assert pids
        assert _gone(pids[0])


def test_actorq_server_prints_a_usable_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorq", "server", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("nats://127.0.0.1:")
        server_pids = [c.pid for c in psutil.Process(proc.pid).children()]

        async def use() -> None:
            with trio.fail_after(10):
                async with open_nats(url) as nc:
                    await nc.publish("hello", b"world")
                    await nc.flush()

        trio.run(use)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert all(_gone(pid) for pid in server_pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def test_the_trio_server_is_forked_from_the_trio_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Linux ties the parent-death signal to the forking thread; Trio's worker threads
    # retire after 10 s idle, which would SIGKILL a server forked from one of them.
    threads: list[threading.Thread] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    with trio.fail_after(20):
        async with open_nats_server():
            pass
    assert threads == [threading.current_thread()]
