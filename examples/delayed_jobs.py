"""Delayed jobs: run a job in a while, or at a given time — the server holds it until then.

Starts an embedded nats-server, the result actor and one queue actor as Trio tasks.
No scheduler actor is needed for delayed jobs. Run it: ``python examples/delayed_jobs.py``
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta

import trio

import actorq
from actorq.jobs.queue_actor import QueueActorSettings, serve_queue_actor
from actorq.jobs.result_actor import serve_result_actor


def greet(name: str) -> str:
    return f"hello {name} at {time.strftime('%H:%M:%S')}"


async def main() -> None:
    async with actorq.open_nats_server() as server, trio.open_nursery() as actors:
        await actors.start(functools.partial(serve_result_actor, server.url))
        settings = QueueActorSettings(queue="default", url=[server.url], concurrency=4)
        await actors.start(functools.partial(serve_queue_actor, settings))

        async with actorq.open_client(server.url) as client:
            start = time.time()
            soon = await client.enqueue_in(timedelta(seconds=1), greet, "soon")
            print("status right after enqueue:", await soon.status())
            at = datetime.now(UTC) + timedelta(seconds=2)
            later = await client.options(job_id="greet-later").enqueue_at(at, greet, "later")

            print(await soon.result(timeout=10))
            print(f"  ran {time.time() - start:.1f}s after the enqueue (asked: 1s)")
            print(await later.result(timeout=10))
            print(f"  ran {time.time() - start:.1f}s after the enqueue (asked: 2s)")

            try:
                await client.enqueue_at(datetime(2030, 1, 1, 9), greet, "naive")
            except actorq.ConfigError as exc:
                print("naive datetime refused:", type(exc).__name__)

        actors.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
