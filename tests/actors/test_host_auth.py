"""Actor processes spawned by ``actorq.open_actor_supervisor`` reach a server that wants a
password: its credentials travel to them through their environment, never on their
command line."""

from __future__ import annotations

import uuid
from pathlib import Path

import psutil
import pytest
import trio

import actorq
from actorq.nats import NatsServerProcess
from actorq.nats.embedded_server import ServerAuth
from actorq.nats.options import ConnectOptions
from tests.helpers import upactors

pytestmark = pytest.mark.timeout(90)


async def test_process_actors_connect_with_the_supervisors_credentials(tmp_path: Path) -> None:
    auth = ServerAuth(user="app", password="s3cret-pw")
    with NatsServerProcess(data_dir=tmp_path / "nats", auth=auth) as server:
        connect = ConnectOptions(user="app", password="s3cret-pw")
        ns = f"t{uuid.uuid4().hex[:10]}"
        with trio.fail_after(40):
            async with actorq.open_actor_supervisor(
                server.url, namespace=ns, connect=connect, local_credentials=False
            ) as sup:
                echo = await sup.spawn(upactors.Echo, name="echo", process=True)
                n, pid = await echo.ask(upactors.Ping(41), timeout=20)
                assert n == 42
                assert "s3cret-pw" not in " ".join(psutil.Process(pid).cmdline())
