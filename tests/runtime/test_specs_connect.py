"""Actor processes connect with the options in their settings: the result actor, the
scheduler and the queue actors, started from their specs against a server that wants a
password, pass ``connect`` to ``open_nats`` themselves (nothing is patched in them)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import trio

from actorq.jobs.client import open_client
from actorq.jobs.queue_actor import QueueActorSettings
from actorq.nats import NatsServerProcess
from actorq.nats.embedded_server import ServerAuth
from actorq.nats.options import ConnectOptions
from actorq.runtime.specs import queue_supervisor_spec, result_actor_spec, scheduler_actor_spec
from supervisors import open_supervisor
from tests.helpers import jobfuncs, paths

pytestmark = pytest.mark.timeout(120)


async def test_process_actors_connect_with_the_options_in_their_settings(tmp_path: Path) -> None:
    auth = ServerAuth(user="rt", password="rt-pw")
    connect = ConnectOptions(user="rt", password="rt-pw")
    namespace = f"t{uuid.uuid4().hex[:10]}"
    with NatsServerProcess(data_dir=tmp_path / "nats", auth=auth) as server:
        url = server.url
        settings = QueueActorSettings(
            queue="default", url=[url], namespace=namespace, sys_path=[str(paths.ROOT)],
            connect=connect,
        )  # fmt: skip
        children = [
            result_actor_spec([url], namespace, connect=connect),
            scheduler_actor_spec([url], namespace, connect=connect),
            queue_supervisor_spec(settings, 1),
        ]
        with trio.fail_after(60):
            async with (
                open_client(url, namespace=namespace, local_credentials=False,
                            **connect.kwargs()) as client,
                open_supervisor(children, max_restarts=0),
            ):  # fmt: skip
                job = await client.enqueue(jobfuncs.add, 40, 2)
                assert await job.result(timeout=30) == 42
