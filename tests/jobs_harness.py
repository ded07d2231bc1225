"""Starts the job-queue actors as Trio tasks in the test process, on a unique namespace."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trio

from actorq.client import Client, open_client
from actorq.queue_actor import QueueActor, QueueActorSettings, serve_queue_actor
from actorq.result_actor import ResultActor, serve_result_actor


@dataclass
class Runtime:
    url: str
    namespace: str
    client: Client
    result_actor: ResultActor
    queue_actors: list[QueueActor] = field(default_factory=list)
    stop: trio.Event = field(default_factory=trio.Event)


@contextlib.asynccontextmanager
async def open_runtime(
    url: str,
    *,
    queues: dict[str, int] | None = None,
    signing_key: bytes | None = None,
    **settings: object,
) -> AsyncIterator[Runtime]:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    async with trio.open_nursery() as nursery:
        result_actor = await nursery.start(
            lambda task_status: serve_result_actor(
                url, namespace=namespace, task_status=task_status
            )
        )
        async with open_client(url, namespace=namespace, signing_key=signing_key) as client:
            rt = Runtime(url, namespace, client, result_actor)
            for queue, concurrency in (queues or {"default": 4}).items():
                qs = QueueActorSettings(
                    queue=queue,
                    url=[url],
                    namespace=namespace,
                    concurrency=concurrency,
                    signing_key_hex=signing_key.hex() if signing_key else None,
                    **settings,  # type: ignore[arg-type]
                )
                actor = await nursery.start(
                    lambda task_status, qs=qs: serve_queue_actor(
                        qs, stop=rt.stop, task_status=task_status
                    )
                )
                rt.queue_actors.append(actor)
            yield rt
            rt.stop.set()
        nursery.cancel_scope.cancel()
