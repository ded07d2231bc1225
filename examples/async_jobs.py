"""Enqueue jobs from Trio code and wait for their results — everything in one process.

Starts an embedded nats-server, the result actor and one queue actor as Trio tasks,
then enqueues a sync function, a Trio coroutine and one that fails. In production the
actors run as supervised processes (``actorq up``); the client code is the same.

Run it: ``python examples/async_jobs.py``
"""

from __future__ import annotations

import functools

import trio

import actorq
from actorq.jobs.queue_actor import QueueActorSettings, serve_queue_actor
from actorq.jobs.result_actor import serve_result_actor


def add(a: int, b: int) -> int:
    return a + b


async def slow_square(x: int) -> int:
    await trio.sleep(0.1)
    return x * x


def divide(a: int, b: int) -> float:
    return a / b


async def main() -> None:
    async with actorq.open_nats_server() as server, trio.open_nursery() as actors:
        await actors.start(functools.partial(serve_result_actor, server.url))
        settings = QueueActorSettings(queue="default", url=[server.url], concurrency=4)
        await actors.start(functools.partial(serve_queue_actor, settings))

        async with actorq.open_client(server.url) as client:
            job = await client.enqueue(add, 2, 3)
            print("add(2, 3) =", await job.result(timeout=10))

            squares = [await client.enqueue(slow_square, i) for i in range(5)]
            print("squares:", [await j.result(timeout=10) for j in squares])

            # Options never mix with the function's own arguments:
            failing = await client.options(max_retries=0, timeout=5).enqueue(divide, 1, 0)
            try:
                await failing.result(timeout=10)
            except actorq.JobFailed as exc:
                print("divide(1, 0) failed remotely:", exc.exc_type, "-", exc.exc_message)
            print("status:", await failing.status())

        actors.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
