"""The dead-letter and queue-clearing verbs of :class:`actorq.Client`.

A job that cannot run or be reported ends in the ``<ns>_dead`` stream as a
:class:`~actorq.DeadLetter` with its reason; these list, requeue and delete them, and
purge a queue's waiting jobs.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from actorq.constants import DEFAULT_QUEUE
from actorq.exceptions import NotFound
from actorq.jobs.streams import JobStreams, check_queue_name
from actorq.nats.connection import Connection
from actorq.nats.kv import KeyValueStore
from actorq.wire.messages import (
    DeadLetter,
    JobRecord,
    decode_dead_letter,
    decode_envelope,
    encode,
)

if TYPE_CHECKING:
    from actorq.jobs.client import Job

__all__ = ["DeadLetterVerbs"]


class DeadLetterVerbs:
    """Dead letters and purges, for :class:`actorq.Client` (kept here, together)."""

    conn: Connection
    streams: JobStreams
    _cancels: KeyValueStore | None

    @property
    def results(self) -> KeyValueStore:
        """The results bucket (the client's)."""
        raise NotImplementedError

    async def get_record(self, job_id: str) -> JobRecord | None:
        """The job's record (the client's)."""
        raise NotImplementedError

    def job(self, job_id: str, queue: str = DEFAULT_QUEUE) -> Job:
        """A handle on a job by id (the client's)."""
        raise NotImplementedError

    async def _last_letter(self, job_id: str) -> Any:
        try:
            return await self.conn.jsm(
                "get_last_msg", self.streams.dead_stream, self.streams.dead_subject(job_id)
            )
        except NotFound:
            raise NotFound(
                f"no dead letter for job {job_id!r}; list them with `actorq jobs dead`"
            ) from None

    async def requeue(self, job_id: str) -> Job:
        """Enqueue a dead-lettered job again, as it was; removes its dead letter."""
        msg = await self._last_letter(job_id)
        letter = decode_dead_letter(msg.data)
        env = decode_envelope(letter.original)
        assert self._cancels is not None
        with contextlib.suppress(NotFound):
            await self._cancels.delete(job_id)
        record = await self.get_record(env.id)
        if record is not None:
            # Back to queued before the job is out again (its new result must not be
            # overwritten), so waiters wait for the new run, not the old failure.
            await self.results.put(env.id, encode(record.with_status("queued", time.time())))
        await self.conn.js_publish(
            self.streams.job_subject(env.queue, env.id),
            letter.original,
            msg_id=f"{env.id}-requeue-{msg.seq}",
        )
        await self.conn.jsm("delete_msg", self.streams.dead_stream, msg.seq)
        return self.job(env.id, env.queue)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first (:class:`~actorq.DeadLetter`)."""
        info = await self.conn.jsm("stream_info", self.streams.dead_stream)
        out: list[DeadLetter] = []
        seq = info.state.first_seq
        while seq and seq <= info.state.last_seq and len(out) < limit:
            try:
                msg = await self.conn.jsm("get_msg", self.streams.dead_stream, seq)
            except NotFound:
                seq += 1
                continue
            out.append(decode_dead_letter(msg.data))
            seq += 1
        return out

    async def delete_dead_letter(self, job_id: str) -> None:
        """Delete the dead letter of ``job_id`` without running the job again;
        raises :class:`~actorq.NotFound` when there is none."""
        msg = await self._last_letter(job_id)
        await self.conn.jsm("delete_msg", self.streams.dead_stream, msg.seq)

    async def purge(self, queue: str) -> int:
        """Remove every waiting job of ``queue``; returns how many were removed."""
        check_queue_name(queue)
        subject = self.streams.queue_filter(queue)
        info = await self.conn.jsm("stream_info", self.streams.jobs_stream, subjects_filter=subject)
        count = sum((info.state.subjects or {}).values())
        await self.conn.jsm("purge_stream", self.streams.jobs_stream, subject=subject)
        return int(count)
