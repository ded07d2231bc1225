"""Run ``actorq up`` in a subprocess for tests: wait for its summary, stop it, and make
sure every process it started is gone, by pid, whatever happens."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from actorq.nats.embedded_server import free_port
from actorq.nats.local_credentials import (
    ENV_CREDENTIALS_FILE,
    credentials_path,
    find_credentials,
)
from actorq.runtime.up import SUMMARY_READY
from tests.helpers import paths

ROOT = paths.ROOT
EXAMPLE = ROOT / "examples" / "config.toml"


class Up:
    """One ``actorq up`` process; read :attr:`url` and :attr:`pids` after :meth:`ready`.

    ``argv`` replaces the command (``make up`` runs ``actorq up`` itself); the lines it
    prints before the summary are kept in :attr:`before`.
    """

    def __init__(
        self,
        config: Path,
        env: dict[str, str],
        stderr_path: Path,
        argv: Sequence[str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self._stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            list(argv) if argv is not None else [sys.executable, "-m", "actorq", "up", str(config)],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            # Its own process group, as a shell job has: killpg() then acts like a
            # terminal's Ctrl-C, and never reaches the test runner.
            start_new_session=True,
        )
        self.stderr_path = stderr_path
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.before: list[str] = []
        self.summary: list[str] = []
        self.url = ""
        self.pids: dict[str, int] = {}
        self.seen: set[int] = {self.proc.pid}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def ready(self, timeout: float = 60.0) -> float:
        """Wait for the whole summary; return seconds from spawn to its first line."""
        start = time.monotonic()
        deadline = start + timeout
        first: float | None = None
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no summary within {timeout}s:\n{self.stderr()}") from None
            if line is None:
                raise AssertionError(
                    f"actorq up exited ({self.proc.wait()}) before ready:\n{self.stderr()}"
                )
            if line.startswith(SUMMARY_READY):
                first = time.monotonic() - start
                self.url = re.search(r"(nats://\S+?)[ ,]", line).group(1)  # type: ignore[union-attr]
                if match := re.search(r"nats-server pid (\d+)", line):
                    self.pids["nats-server"] = int(match.group(1))
            if first is None:
                self.before.append(line)
            else:
                self.summary.append(line)
                if match := re.match(r"\s+(\S+)\s+pid (\d+)$", line):
                    self.pids[match.group(1)] = int(match.group(2))
                if line.startswith("SIGINT/SIGTERM"):
                    self.seen.update(self.pids.values())
                    return first

    def rest_of_stdout(self, timeout: float = 30.0) -> list[str]:
        """The lines printed after the summary, once ``actorq up`` has exited."""
        self.proc.wait(timeout)
        self._reader.join(timeout)
        rest: list[str] = []
        while (line := self.lines.get_nowait()) is not None:
            rest.append(line)
        return rest

    def descendants(self) -> set[int]:
        """Pids of every live descendant, remembered for the final check."""
        with contextlib.suppress(psutil.NoSuchProcess):
            found = {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
            self.seen.update(found)
            return found
        return set()

    def signal(self, signum: int) -> None:
        self.descendants()
        self.proc.send_signal(signum)

    def ctrl_c(self) -> None:
        """SIGINT to the whole process group, as a terminal's Ctrl-C sends it."""
        self.descendants()
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = 90.0) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        """Stop gracefully if still running; then SIGKILL anything left, by pid."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        for pid in self.seen | {self.proc.pid}:
            if not gone(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._reader.join(10)  # EOF once every holder of the pipe is gone
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def local_auth() -> dict[str, str]:
    """The user and password of the running ``actorq up`` (from its credentials file),
    for raw :func:`actorq.nats.open_nats` connections, which never look for them."""
    found = find_credentials()
    assert found is not None, "no credentials file: is actorq up running under run_up?"
    return found.auth()


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie counts: PID 1 here reaps slowly)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: set[int], timeout: float = 30.0) -> set[int]:
    """Wait (bounded) for ``pids`` to exit; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = {p for p in pids if not gone(p)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {p for p in alive if not gone(p)}
    return alive


def up_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment for ``actorq up examples/config.toml`` on a free port and own data."""
    return {
        "ACTORQ_NATS_PORT": str(free_port()),
        "ACTORQ_NATS_DATA_DIR": str(data_dir),
        **overrides,
    }


@contextlib.contextmanager
def run_up(
    tmp_path: Path,
    env: dict[str, str],
    config: Path = EXAMPLE,
    name: str = "up",
    argv: Sequence[str] | None = None,
    cwd: Path | None = None,
) -> Iterator[Up]:
    """Run ``actorq up`` (or ``argv``) from the repository root; its data dir (and
    credentials file) is in ``tmp_path`` unless ``env`` says where. Meanwhile this
    process's clients, and the commands it runs, find its credentials as a user's
    would: through ``ACTORQ_CREDENTIALS_FILE``.

    With ``cwd``, it runs from there with its config's own data dir, and nothing tells
    clients where the credentials are: they must find them as a user's would."""
    saved = os.environ.get(ENV_CREDENTIALS_FILE)
    if cwd is None:
        env = {"ACTORQ_NATS_DATA_DIR": str(tmp_path / "nats"), **env}
        os.environ[ENV_CREDENTIALS_FILE] = str(credentials_path(env["ACTORQ_NATS_DATA_DIR"]))
    up = Up(config, env, tmp_path / f"{name}.stderr", argv=argv, cwd=cwd or ROOT)
    try:
        yield up
    finally:
        up.close()
        if saved is None:
            os.environ.pop(ENV_CREDENTIALS_FILE, None)
        else:
            os.environ[ENV_CREDENTIALS_FILE] = saved


def ps_json(url: str) -> list[dict[str, Any]]:
    """The rows of ``actorq ps --json --url URL`` (asserting it exits 0)."""
    out = subprocess.run(
        [sys.executable, "-m", "actorq", "ps", "--json", "--url", url],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows
