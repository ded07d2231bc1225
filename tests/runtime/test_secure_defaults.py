"""`actorq up` is private with nothing configured: the embedded server wants a password,
jobs are signed, both generated once into the data dir (0600), and the example script
and `actorq send` still just work next to it; a public bind is refused."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import trio

from actorq import ConnectionFailed
from actorq.cli.main import RET_CONFIG, RET_OK
from actorq.nats import open_nats
from actorq.nats.embedded_server import free_port
from tests.helpers.up_harness import ROOT, run_up, up_env, wait_gone

pytestmark = pytest.mark.timeout(180)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user who configured nothing actorq-related."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORQ_")}
    return {**env, **extra}


async def _connects(url: str, **options: str) -> bool:
    try:
        async with open_nats(url, connect_timeout=2, max_reconnect_attempts=0, **options):
            return True
    except ConnectionFailed:
        return False


def test_the_examples_and_actorq_send_work_with_nothing_configured_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [v for v in os.environ if v.startswith("ACTORQ_")]:
        monkeypatch.delenv(var)
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples", project / "examples")
    # Only the port is chosen (4222 may be taken on a test machine).
    env = {"ACTORQ_NATS_PORT": str(free_port())}
    config = Path("examples/config.toml")  # relative: run from the project, as a user does
    with run_up(tmp_path, env, config=config, cwd=project) as up:
        up.ready()
        creds = project / ".actorq" / "nats" / "credentials.json"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        stored = json.loads(creds.read_text())
        assert {"url", "user", "password", "signing_key"} <= set(stored)
        # The server is not open: no credentials, no connection.
        assert not trio.run(_connects, up.url)
        script = subprocess.run(
            [sys.executable, "examples/sync_send.py", "2", "3"],
            cwd=project, env=_clean_env(), capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert script.returncode == 0, script.stderr
        assert script.stdout.strip().endswith("result: 5")
        send = subprocess.run(
            [sys.executable, "-m", "actorq", "send", "default", "tasks:add", "4", "5", "--wait"],
            cwd=project, env=_clean_env(PYTHONPATH="examples"), capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert send.returncode == 0, send.stderr
        assert send.stdout.strip().endswith("9")
        # From a subdirectory too: the file is looked for up the tree.
        queues = subprocess.run(
            [sys.executable, "-m", "actorq", "queues", "--json"],
            cwd=project / "examples", env=_clean_env(), capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert queues.returncode == 0, queues.stderr
        for pid in up.descendants() | {up.proc.pid}:
            argv = " ".join(psutil.Process(pid).cmdline())
            assert stored["password"] not in argv
            assert stored["signing_key"] not in argv
        up.signal(15)
        assert up.wait() == RET_OK, up.stderr()
        assert wait_gone(up.seen) == set()
    # The second start keeps the same secrets (jobs signed before still run).
    with run_up(tmp_path, env, config=config, cwd=project, name="again") as up:
        up.ready()
        assert json.loads(creds.read_text())["signing_key"] == stored["signing_key"]


def test_config_credentials_reach_the_embedded_server(tmp_path: Path) -> None:
    env = up_env(tmp_path / "nats", ACTORQ_NATS_USER="app", ACTORQ_NATS_PASSWORD="app-pw")
    with run_up(tmp_path, env) as up:
        up.ready()
        assert trio.run(lambda: _connects(up.url, user="app", password="app-pw"))
        assert not trio.run(lambda: _connects(up.url, user="actorq", password="app-pw"))
        assert not trio.run(_connects, up.url)


def test_a_public_bind_without_tls_is_refused_with_the_fix_named(tmp_path: Path) -> None:
    env = up_env(tmp_path / "nats", ACTORQ_NATS_HOST="0.0.0.0")
    with run_up(tmp_path, env) as up:
        assert up.wait(60) == RET_CONFIG, up.stderr()
    err = up.stderr()
    assert "0.0.0.0" in err
    assert "server_tls_cert" in err
    assert "allow_insecure_bind" in err
