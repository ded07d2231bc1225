"""A queue actor stopped while its NATS server is gone exits within seconds, and the
job whose outcome it could not publish is not lost: it comes back once a server is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from actorq.jobs.queue_actor import serve_queue_actor
from actorq.nats.embedded_server import NatsServerProcess, free_port
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime, wait_for_status


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    """A server of this test's own on a fixed port, so it can come back where it was."""
    proc = NatsServerProcess(port=free_port(), data_dir=tmp_path / "nats")
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


async def test_a_queue_actor_stopped_with_its_server_gone_exits_in_seconds_losing_no_job(
    server: NatsServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "calls"
    with trio.fail_after(55):
        async with open_runtime(server.url, queues={}) as rt:
            stop = trio.Event()
            returned = trio.Event()
            settings = rt.queue_settings("default", 2, ack_wait=2.0)

            async def actor(task_status: trio.TaskStatus[None]) -> None:
                await serve_queue_actor(settings, stop=stop, task_status=task_status)
                returned.set()

            await rt.nursery.start(actor)
            # The first run sleeps 1 s: it finishes with the server gone, so its
            # outcome cannot be published when the actor stops.
            job = await rt.client.enqueue(jobfuncs.trio_slow_first_time, str(marker), 1.0)
            await wait_for_status(rt.client, job.id, "running")
            server.kill()
            stop.set()
            stopping = trio.current_time()
            await returned.wait()
            took = trio.current_time() - stopping
            # ~1 s for the job, then at most 3 s for its outcome (no server to answer
            # the cancel watch's or the heartbeat's delete); it was ~16 s before.
            assert took < 8.0, f"the queue actor took {took:.1f}s to stop with no server"
            assert sorted(p.name.split("-")[0] for p in marker.iterdir()) == ["1"]

            # Its job was never acked without its outcome: it comes back and runs again.
            await trio.to_thread.run_sync(server.start)
            await rt.start_queue_actor("default", 2, ack_wait=2.0)
            assert await job.result(timeout=40) == 2
