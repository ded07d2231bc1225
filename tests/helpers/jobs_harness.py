"""Starts the job-queue actors as Trio tasks in the test process, on a unique namespace."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import trio

from actorq.jobs.client import Client, open_client
from actorq.jobs.queue_actor import QueueActor, QueueActorSettings, serve_queue_actor
from actorq.jobs.result_actor import ResultActor, serve_result_actor
from actorq.jobs.streams import JobStreams
from actorq.nats.connection import open_nats
from actorq.wire.messages import decode_record


@dataclass
class Runtime:
    url: str
    namespace: str
    client: Client
    result_actor: ResultActor
    nursery: trio.Nursery
    signing_key: bytes | None
    settings: dict[str, Any]
    queue_actors: list[QueueActor] = field(default_factory=list)
    stop: trio.Event = field(default_factory=trio.Event)
    #: Every server URL (a cluster's nodes); ``url`` is the first.
    urls: list[str] = field(default_factory=list)

    def queue_settings(self, queue: str, concurrency: int, **overrides: Any) -> QueueActorSettings:
        return QueueActorSettings(
            queue=queue,
            url=self.urls or [self.url],
            namespace=self.namespace,
            concurrency=concurrency,
            signing_key_hex=self.signing_key.hex() if self.signing_key else None,
            **{**self.settings, **overrides},
        )

    async def start_queue_actor(
        self,
        queue: str = "default",
        concurrency: int = 4,
        *,
        stop: trio.Event | None = None,
        **overrides: Any,
    ) -> QueueActor:
        qs = self.queue_settings(queue, concurrency, **overrides)
        stop_event = stop if stop is not None else self.stop
        actor: QueueActor = await self.nursery.start(
            lambda task_status: serve_queue_actor(qs, stop=stop_event, task_status=task_status)
        )
        self.queue_actors.append(actor)
        return actor


@contextlib.asynccontextmanager
async def open_runtime(
    url: str | list[str],
    *,
    queues: dict[str, int] | None = None,
    signing_key: bytes | None = None,
    client_signing_key: bytes | None = None,
    result_ttl: float | None = None,
    namespace: str | None = None,
    **settings: Any,
) -> AsyncIterator[Runtime]:
    namespace = namespace or f"t{uuid.uuid4().hex[:10]}"
    urls = [url] if isinstance(url, str) else list(url)
    if result_ttl is not None:
        # As `actorq up` does with `[results] ttl`, before any actor makes the buckets.
        async with open_nats(urls) as conn:
            await JobStreams(namespace).provision(conn, result_ttl=result_ttl)
    async with trio.open_nursery() as nursery:
        result_actor = await nursery.start(
            lambda task_status: serve_result_actor(
                urls, namespace=namespace, task_status=task_status
            )
        )
        key = client_signing_key if client_signing_key is not None else signing_key
        async with open_client(urls, namespace=namespace, signing_key=key) as client:
            rt = Runtime(
                urls[0], namespace, client, result_actor, nursery, signing_key, settings, urls=urls
            )
            for queue, concurrency in ({"default": 4} if queues is None else queues).items():
                await rt.start_queue_actor(queue, concurrency)
            yield rt
            rt.stop.set()
        nursery.cancel_scope.cancel()


async def wait_for_status(client: Client, job_id: str, status: str) -> None:
    """Wait (push, via a KV watch on the job's record) until the job has ``status``."""
    async with client.results.watch(job_id) as updates:
        async for entry in updates:
            if entry is not None and decode_record(entry.value).status == status:
                return
