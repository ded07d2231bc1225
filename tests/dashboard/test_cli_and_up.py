"""``actorq dashboard`` and ``[dashboard]`` in ``actorq up``, as subprocesses; each is
stopped by its pid in a ``finally``."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from actorq.cli.main import RET_OK
from actorq.nats.embedded_server import free_port
from tests.helpers.up_harness import ROOT, run_up, up_env, wait_gone

pytestmark = pytest.mark.timeout(120)


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _line_with(lines: queue.Queue[str | None], text: str, timeout: float = 30) -> str:
    while True:
        line = lines.get(timeout=timeout)
        assert line is not None, f"the process exited before printing {text!r}"
        if text in line:
            return line


def test_actorq_dashboard_serves_a_runtime_it_finds_by_url_and_stops_on_ctrl_c(
    nats_url: str,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorq", "dashboard", "--url", nats_url, "--namespace",
         "dashcli", "--port", "0"],
        cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "ACTORQ_DASHBOARD_TOKEN"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = _line_with(_lines(proc), "actorq dashboard at ")
        login = line.split(" at ", 1)[1].split(" ")[0]
        assert "/?token=" in login  # no token configured: a random one, in the URL
        base, token = login.split("/?token=")
        assert base.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/api/overview").status_code == 401
            ok = http.get("/api/overview", headers={"authorization": f"Bearer {token}"})
            assert ok.status_code == 200
            assert ok.json()["namespace"] == "dashcli"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == RET_OK
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_up_serves_the_dashboard_when_the_config_enables_it(tmp_path: Path) -> None:
    port = free_port()
    env = up_env(
        tmp_path / "nats",
        ACTORQ_DASHBOARD_ENABLED="true",
        ACTORQ_DASHBOARD_PORT=str(port),
        ACTORQ_DASHBOARD_TOKEN="up-token-123",
    )
    with run_up(tmp_path, env) as up:
        up.ready()
        line = _line_with(up.lines, "dashboard at ")
        assert line.endswith(f"http://127.0.0.1:{port}")  # a configured token is not printed
        headers = {"authorization": "Bearer up-token-123"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.get("/api/overview").status_code == 401
            # The tree `actorq up` publishes (every 2 s; the first may still be on its way).
            deadline = time.monotonic() + 10
            while not http.get("/api/tree", headers=headers).json()["trees"]:
                assert time.monotonic() < deadline, "no supervision tree published"
                time.sleep(0.1)
        # A browser's open event stream does not hold up a graceful stop.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sse:
            sse.sendall(
                f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Authorization: Bearer up-token-123\r\n\r\n".encode()
            )
            received = b""
            while b"event: overview" not in received:
                chunk = sse.recv(65536)
                assert chunk, "the event stream ended early"
                received += chunk
            up.signal(signal.SIGTERM)
            assert up.wait(60) == RET_OK, up.stderr()
        assert wait_gone(up.seen) == set()
