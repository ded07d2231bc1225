"""Jobs that wait for other jobs: ``depends_on=[parent, ...]`` (fan-in and chains).

How a dependent job travels::

    client:        check every parent exists (else DependencyError), no cycle
                   -> deps bucket ``w.<child>`` = WaitingJob(envelope, parents)
                   -> WaitForParents on the outcomes stream
    result actor:  (in order with the parents' outcomes, so no race)
                   parent already succeeded  -> drop it from the child's list
                   parent already failed     -> child fails: "dependency failed"
                   else                      -> ``p.<parent>`` lists the child;
                                                child's record says "waiting"
    parent's final record written by the result actor:
                   succeeded and no parent left -> the held envelope is published to
                                                   its queue (Nats-Msg-Id = child id)
                   failed / dead / cancelled    -> the child (and its own children)
                                                   fail with "dependency failed"

All state is in the deps bucket, so a restarted result actor carries on; every step
is idempotent (a redelivered batch repeats it harmlessly). The result actor only
looks at this when a finished job is in its set of known parents (loaded from the
``p.*`` keys at start), so jobs without dependents pay one set lookup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio

from actorq.exceptions import Conflict, DependencyError, NotFound
from actorq.jobs.streams import JobStreams
from actorq.nats.loop import LoopKv, LoopSide
from actorq.wire.messages import (
    ErrorInfo,
    JobRecord,
    WaitForParents,
    WaitingJob,
    decode_envelope,
    decode_record,
    decode_waiting_job,
    encode,
)

__all__ = ["DependencyTracker", "check_parents"]

log = logging.getLogger("actorq.deps")

_CHILDREN: msgspec.msgpack.Decoder[list[str]] = msgspec.msgpack.Decoder(list[str])
#: Seconds an apparently unknown parent gets for its record to appear.
_RECORD_GRACE = 2.0
#: How deep a chain of waiting jobs is walked looking for a cycle.
_MAX_DEPTH = 1000


async def check_parents(client: Any, job_id: str, parents: list[str]) -> None:
    """Refuse unknown parents and cycles, with a :class:`DependencyError` saying which.

    A parent exists when it has a record, is held waiting, sits in a queue or is
    delayed. Since every parent must exist first, a cycle can only run through jobs
    that are themselves waiting: those are walked up from each parent.
    """
    if len(set(parents)) != len(parents):
        raise DependencyError(f"depends_on of job {job_id} lists a parent twice: {parents}")
    for parent in parents:
        if parent == job_id:
            raise DependencyError(
                f"job {job_id} cannot depend on itself (a cycle); drop it from depends_on"
            )
        if not await _exists(client, parent):
            raise DependencyError(
                f"job {job_id} depends on {parent!r}, which is unknown in namespace "
                f"{client.streams.ns.name!r}: enqueue the parent first (its result may "
                "also have expired)."
            )
    # Walk the ancestors that are still waiting; reaching job_id closes a cycle.
    seen: set[str] = set()
    todo = list(parents)
    while todo and len(seen) < _MAX_DEPTH:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        entry = await client.deps.get(f"w.{current}")
        if entry is None:
            continue
        for grand in decode_waiting_job(entry.value).parents:
            if grand == job_id:
                raise DependencyError(
                    f"job {job_id} depends on {current!r}, which (through its own "
                    f"parents) depends on {job_id}: a cycle; break it."
                )
            todo.append(grand)


async def _exists(client: Any, job_id: str) -> bool:
    streams = client.streams
    for subject in (streams.job_subject("*", job_id), streams.delayed_subject("*", job_id)):
        try:
            await client.conn.jsm("get_last_msg", streams.jobs_stream, subject)
        except NotFound:
            continue
        return True
    if await client.deps.get(f"w.{job_id}") is not None:
        return True
    if await client.results.get(job_id) is not None:
        return True
    # A job just run has left its queue before the result actor stored its record
    # (the outcome is on its way): give that a moment before calling the id unknown.
    with trio.move_on_after(_RECORD_GRACE):
        async with client.results.watch(job_id) as updates:
            async for entry in updates:
                if entry is not None and entry.operation == "PUT":
                    return True
    return False


RecordUpdate = Callable[[str, Callable[[JobRecord | None], JobRecord | None]], Awaitable[Any]]


class DependencyTracker:
    """The result actor's side of dependencies (runs on its asyncio loop).

    ``update_record(job_id, change)`` is the result actor's conditional record write;
    ``notify(record)`` wakes the enqueuer's waiters when a child ends.
    """

    def __init__(
        self,
        side: LoopSide,
        kv: LoopKv,
        results_kv: LoopKv,
        streams: JobStreams,
        update_record: RecordUpdate,
        notify: Callable[[JobRecord, str | None], Awaitable[None]],
    ) -> None:
        self.side = side
        self.kv = kv
        self._results = results_kv
        self.streams = streams
        self._update_record = update_record
        self._notify = notify
        #: Jobs some waiting job depends on: the only finished jobs worth a look.
        self.parents: set[str] = set()
        self.released = 0
        self.failed = 0

    async def load(self) -> None:
        """Read the known parents from the bucket (after a restart)."""
        self.parents = {key[2:] for key in await self.kv.keys("p.>")}

    # -- registrations -----------------------------------------------------------------

    async def register(self, wait: WaitForParents, records: dict[str, JobRecord]) -> None:
        """Hold ``wait.job_id`` until its parents succeed (or fail it at once).

        ``records`` holds the final records written in the same batch, fresher than KV.
        """
        held = await self._get(f"w.{wait.job_id}")
        if held is None:
            return  # released or failed already (a redelivered notice)
        waiting, revision = decode_waiting_job(held[0]), held[1]
        remaining: list[str] = []
        for parent in waiting.parents:
            record = records.get(parent) or await self._record(parent)
            if record is None or not record.done:
                remaining.append(parent)
            elif record.status != "succeeded":
                await self._fail_tree(wait.job_id, parent, record.status)
                return
        if not remaining:
            await self._release(wait.job_id, waiting.envelope)
            return
        for parent in remaining:
            await self._add_child(parent, wait.job_id)
        if remaining != waiting.parents:
            await self._cas(f"w.{wait.job_id}", encode(WaitingJob(
                envelope=waiting.envelope, parents=remaining)), revision)  # fmt: skip
        env = decode_envelope(waiting.envelope)

        def waiting_record(current: JobRecord | None) -> JobRecord | None:
            if current is not None:
                return None  # already has a record (a redelivered notice)
            return JobRecord.from_envelope(env, status="waiting", at=time.time())

        await self._update_record(wait.job_id, waiting_record)

    # -- parents finishing ---------------------------------------------------------------

    async def parent_done(self, record: JobRecord) -> None:
        """A parent has its final record: release or fail the children waiting on it."""
        entry = await self._get(f"p.{record.id}")
        children = _CHILDREN.decode(entry[0]) if entry is not None else []
        for child in children:
            if record.status == "succeeded":
                await self._parent_succeeded(child, record.id)
            else:
                await self._fail_tree(child, record.id, record.status)
        await self._delete(f"p.{record.id}")
        self.parents.discard(record.id)

    async def _parent_succeeded(self, child: str, parent: str) -> None:
        for _ in range(10):
            held = await self._get(f"w.{child}")
            if held is None:
                return
            waiting, revision = decode_waiting_job(held[0]), held[1]
            remaining = [p for p in waiting.parents if p != parent]
            if not remaining:
                await self._release(child, waiting.envelope)
                return
            update = WaitingJob(envelope=waiting.envelope, parents=remaining)
            if await self._cas(f"w.{child}", encode(update), revision):
                return

    async def _release(self, child: str, envelope: bytes) -> None:
        env = decode_envelope(envelope)
        # The id as Nats-Msg-Id: a repeated release (redelivered batch) is stored once.
        await self.side.js_publish(
            self.streams.job_subject(env.queue, env.id), envelope, headers={"Nats-Msg-Id": env.id}
        )

        def queued(current: JobRecord | None) -> JobRecord | None:
            if current is not None and current.status != "waiting":
                return None  # the queue actor got there first
            base = current or JobRecord.from_envelope(env, status="waiting")
            return base.with_status("queued", time.time())

        await self._update_record(child, queued)
        await self._delete(f"w.{child}")
        self.released += 1

    async def _fail_tree(self, child: str, parent: str, status: str) -> None:
        """Fail ``child`` and, transitively, every job waiting on it."""
        todo = [(child, parent, status)]
        while todo:
            job, cause, cause_status = todo.pop()
            held = await self._get(f"w.{job}")
            if held is None:
                continue
            env = decode_envelope(decode_waiting_job(held[0]).envelope)
            error = ErrorInfo(
                type="actorq.DependencyFailed",
                message=f"dependency failed: job {cause} ended {cause_status}",
            )
            now = time.time()

            def failed(current: JobRecord | None, env: Any = env, error: ErrorInfo = error,
                       now: float = now) -> JobRecord | None:  # fmt: skip
                base = current or JobRecord.from_envelope(env, status="waiting")
                if base.done:
                    return None
                out = base.with_status("failed", now)
                return msgspec.structs.replace(out, error=error, finished_at=now)

            record = await self._update_record(job, failed)
            await self._delete(f"w.{job}")
            self.failed += 1
            if isinstance(record, JobRecord):
                await self._notify(record, env.reply_to)
            if job in self.parents:
                entry = await self._get(f"p.{job}")
                for grandchild in _CHILDREN.decode(entry[0]) if entry else []:
                    todo.append((grandchild, job, "failed"))
                await self._delete(f"p.{job}")
                self.parents.discard(job)

    # -- bucket access -------------------------------------------------------------------

    async def _add_child(self, parent: str, child: str) -> None:
        key = f"p.{parent}"
        for _ in range(20):
            entry = await self._get(key)
            children = _CHILDREN.decode(entry[0]) if entry is not None else []
            if child in children:
                break
            value = msgspec.msgpack.encode([*children, child])
            if await self._cas(key, value, entry[1] if entry is not None else 0):
                break
        self.parents.add(parent)

    async def _record(self, job_id: str) -> JobRecord | None:
        found = await self._results.get(job_id)
        return None if found is None else decode_record(found.value)

    async def _get(self, key: str) -> tuple[bytes, int] | None:
        entry = await self.kv.get(key)
        return None if entry is None else (entry.value, entry.revision)

    async def _cas(self, key: str, value: bytes, revision: int) -> bool:
        try:
            if revision:
                await self.kv.update(key, value, revision)
            else:
                await self.kv.create(key, value)
        except Conflict:
            return False
        return True

    async def _delete(self, key: str) -> None:
        await self.kv.delete(key)
