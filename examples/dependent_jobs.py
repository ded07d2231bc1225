"""Jobs that wait for others: fan-in, a chain, and what happens when a parent fails.

Starts an embedded nats-server, the result actor and one queue actor as Trio tasks
(the result actor releases dependent jobs). Run it: ``python examples/dependent_jobs.py``
"""

from __future__ import annotations

import functools

import trio

import actorq
import actorq.exceptions
from actorq.jobs.queue_actor import QueueActorSettings, serve_queue_actor
from actorq.jobs.result_actor import serve_result_actor


async def fetch(source: str) -> list[int]:
    await trio.sleep(0.2)
    return [len(source), 2 * len(source)]


def merge() -> str:
    return "merged"


def publish(what: str) -> str:
    return f"published {what}"


def broken() -> None:
    raise RuntimeError("source unavailable")


async def main() -> None:
    async with actorq.open_nats_server() as server, trio.open_nursery() as actors:
        await actors.start(functools.partial(serve_result_actor, server.url))
        settings = QueueActorSettings(queue="default", url=[server.url], concurrency=4)
        await actors.start(functools.partial(serve_queue_actor, settings))

        async with actorq.open_client(server.url) as client:
            a = await client.enqueue(fetch, "alpha")
            b = await client.enqueue(fetch, "beta")
            merged = await client.options(depends_on=[a.id, b.id]).enqueue(merge)  # fan-in
            final = await client.options(depends_on=[merged.id]).enqueue(publish, "report")
            print("merge waits:", await merged.status())
            print(await final.result(timeout=15))

            bad = await client.options(max_retries=0).enqueue(broken)
            after_bad = await client.options(depends_on=[bad.id]).enqueue(publish, "never")
            try:
                await after_bad.result(timeout=15)
            except actorq.JobFailed as exc:
                print("dependent of a failed job:", exc.exc_message.split(":")[0])

            try:
                await client.options(depends_on=["no-such-job"]).enqueue(merge)
            except actorq.exceptions.DependencyError as exc:
                print("refused:", str(exc).split(",")[0])

        actors.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
