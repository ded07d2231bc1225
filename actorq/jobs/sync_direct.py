"""The sync helper's direct enqueue: from the calling thread, on a pooled blocking socket.

:class:`actorq.SyncClient` runs its client on a Trio loop in a thread of its own. Handing
it an enqueue costs two thread wake-ups (there and back) on top of the enqueue, about
half of the sync helper's time per call. An ordinary enqueue is one JetStream publish
and its ack, so the calling thread does it itself on a socket of
:class:`~actorq.nats.blocking_js.BlockingJsPool`: the envelope is built (and signed)
in that thread, an explicit id is claimed with a KV create (one publish with
``Nats-Expected-Last-Subject-Sequence: 0``), then the job is published with the
same subject, headers and fault point (``client.publish_job``) as the async client's.

Whatever this path does not take goes through the owner loop, which handles
everything: no socket free or usable, a payload for the object store, a claim that
finds the key there (taken, or a purge marker of a released claim, which only the
KV ``create`` tells apart). A publish that fails after its id was claimed releases
the claim, as the async client does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from actorq.exceptions import Conflict, ConnectionFailed
from actorq.jobs.client import Client, Job
from actorq.jobs.options import EnqueueOptions
from actorq.jobs.tracing import enqueue_span
from actorq.nats.blocking_js import BlockingJsPool
from actorq.process import faults
from actorq.wire.messages import JobEnvelope, encode

__all__ = ["direct_enqueue"]

def direct_enqueue(
    pool: BlockingJsPool,
    client: Client,
    env: JobEnvelope,
    opts: EnqueueOptions,
    run: Callable[..., Any],
) -> bool | Job | None:
    """Enqueue ``env`` (no delay, no parents) from this thread: whether the server
    found it a duplicate; a :class:`Job` when it went through ``run`` after all
    (``run(afn, *args)`` awaits ``afn(client, *args)`` on the owner loop); or ``None``
    when nothing was sent and the caller should take the owner loop."""
    if not client.large.fits(env.payload):
        return None
    js = pool.acquire()
    if js is None:
        return None
    broken = True  # unless the publish got its answer
    claimed = False
    try:
        if opts.job_id is not None:
            try:
                js.publish(*client._claim_message(env.id, env.queue))
            except Conflict:
                broken = False
                return None  # taken, or a released claim: the loop's create() tells
            claimed = True
        faults.hit("client.publish_job")
        with enqueue_span(env.queue, env.id, env.function) as trace_headers:
            headers = dict(trace_headers) if trace_headers else {}
            if claimed:
                headers["Nats-Msg-Id"] = env.id
            subject = client.streams.job_subject(env.queue, env.id)
            ack = js.publish(subject, encode(env), headers or None)
        broken = False
    except ConnectionFailed:
        # Not sent (the socket broke first): the owner loop sends it instead.
        if claimed:
            job: Job = run(_publish_claimed, env)
            return job
        return None
    except BaseException:
        if claimed:
            # Nothing enqueued as far as we know: give the id back, as the async
            # client does (a retry must not be "deduplicated" against nothing).
            run(_release_claim, env.id)
        raise
    finally:
        pool.release(js, broken=broken)
    return ack.duplicate


def _publish_claimed(client: Client, env: JobEnvelope) -> Awaitable[Job]:
    return client._publish_claimed(env, None)


def _release_claim(client: Client, job_id: str) -> Awaitable[None]:
    return client._release_claim(job_id)
