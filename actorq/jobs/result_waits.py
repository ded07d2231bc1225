"""Waiting for a job's final record: push-woken through the client's inbox, or a KV watch.

A job enqueued by this client names the client's inbox (``reply_to``); the result
actor sends the job's final record there once it is stored, so ``result()`` returns
only what the results bucket holds (a ``status()`` right after it shows the final
status). The wake-up is one core message, at most once: a record that arrives before
anyone waits is kept (:data:`_UNCLAIMED_BYTES`, the newest first); one that is lost or
forgotten is found by reading the record after :data:`_FIRST_READ` without a wake-up,
then every :data:`_RECHECK_FIRST` seconds or more. Jobs enqueued elsewhere are waited
for with a watch on their record.

Part of :class:`actorq.Client` (:class:`ResultWaits` is one of its bases).
"""

from __future__ import annotations

import collections

import trio

from actorq.exceptions import BrokerError, CodecError, JobTimeout
from actorq.jobs.large_payloads import LargePayloads
from actorq.nats.errors import is_transient
from actorq.nats.kv import KeyValueStore
from actorq.wire.messages import JobRecord, decode_record

__all__ = ["ResultWaits"]


class ResultWaits:
    """The waiting half of :class:`actorq.Client`."""

    large: LargePayloads
    _results: KeyValueStore | None
    _inbox: str | None

    def _init_waits(self) -> None:
        self._waiters: dict[str, list[_Waiter]] = {}
        #: Final records sent to this client's inbox before anyone waited (bytes).
        self._unclaimed: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._unclaimed_bytes = 0

    @property
    def results(self) -> KeyValueStore:
        """The results bucket (job id -> :class:`JobRecord`)."""
        assert self._results is not None
        return self._results

    async def get_record(self, job_id: str) -> JobRecord | None:
        """The stored record of a job, or ``None`` if there is none (yet, or any more)."""
        entry = await self.results.get(job_id)
        return None if entry is None else decode_record(entry.value)

    def _on_notice(self, data: bytes) -> None:
        try:
            record = decode_record(data)
        except CodecError:
            return
        waiters = self._waiters.get(record.id)
        if not waiters:
            self._keep_unclaimed(record.id, data)
            return
        for waiter in waiters:
            waiter.record = record
            waiter.event.set()

    def _keep_unclaimed(self, job_id: str, data: bytes) -> None:
        """Keep a final record nobody waits for yet (``result()`` is often called after
        the job is done), the latest ones first, within _UNCLAIMED_BYTES."""
        unclaimed = self._unclaimed
        old = unclaimed.pop(job_id, None)
        if old is not None:
            self._unclaimed_bytes -= len(old)
        unclaimed[job_id] = data
        self._unclaimed_bytes += len(data)
        while self._unclaimed_bytes > _UNCLAIMED_BYTES and unclaimed:
            _, dropped = unclaimed.popitem(last=False)
            self._unclaimed_bytes -= len(dropped)

    async def wait(
        self,
        job_id: str,
        timeout: float | None = None,  # noqa: ASYNC109
        *,
        via_inbox: bool = False,
    ) -> JobRecord:
        """Wait until the job has a final record and return it (see :meth:`Job.result`).

        ``via_inbox``: the job was enqueued by this client, so its final record comes
        to this client's inbox; otherwise the job's record is watched (push). A
        result kept in the object store is read into the record's ``result``.
        """
        record = await self._wait_final(job_id, timeout, via_inbox=via_inbox)
        return await self.large.load_result(record)

    async def _wait_final(
        self,
        job_id: str,
        timeout: float | None,  # noqa: ASYNC109
        *,
        via_inbox: bool,
    ) -> JobRecord:
        if via_inbox and self._inbox is not None:
            return await self._wait_inbox(job_id, timeout)
        with trio.move_on_after(timeout if timeout is not None else float("inf")) as scope:
            # A watch delivers the current record first, then every change.
            async with self.results.watch(job_id) as updates:
                async for entry in updates:
                    if entry is None or entry.operation != "PUT":
                        continue
                    record = decode_record(entry.value)
                    if record.done:
                        return record
        assert scope.cancelled_caught
        raise _no_result(job_id, timeout)

    async def _wait_inbox(self, job_id: str, timeout: float | None) -> JobRecord:  # noqa: ASYNC109
        waiter = _Waiter()
        waiters = self._waiters.setdefault(job_id, [])
        waiters.append(waiter)
        try:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                # Registered first, then looked up: a result stored in between is not
                # missed. A record that came before anyone waited is kept (_unclaimed).
                # The wake-up is one core message (at most once): should it be lost or
                # forgotten, the record is read after _FIRST_READ, then again every so
                # often, so a stored final record is always seen. Not read at once: a
                # read while a short job runs slowed its round trip by ~15% (the
                # bridge's thread hop, a server request, at the busiest moment).
                early = self._unclaimed.get(job_id)
                if early is not None:
                    return decode_record(early)
                with trio.move_on_after(_FIRST_READ):
                    await waiter.event.wait()
                if waiter.record is not None:
                    return waiter.record
                pause = _RECHECK_FIRST
                while True:
                    try:
                        record = await self.get_record(job_id)
                    except BrokerError as exc:
                        # NATS in trouble (reconnecting, a cluster electing a leader):
                        # keep waiting; the wake-up or the next read will tell.
                        if not is_transient(exc):
                            raise
                        record = None
                    if record is not None and record.done:
                        return record
                    with trio.move_on_after(pause):
                        await waiter.event.wait()
                    if waiter.record is not None:
                        return waiter.record
                    pause = min(pause * 2, _RECHECK_MAX)
        finally:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[job_id]
        raise _no_result(job_id, timeout)


#: A waiter re-reads its job's record after this long without a wake-up, then
#: doubles the pause up to ``_RECHECK_MAX``.
_RECHECK_FIRST = 1.0
_RECHECK_MAX = 10.0
#: A waiter first reads its job's record after this long without a wake-up.
_FIRST_READ = 0.02
#: Bytes of final records kept for jobs nobody waits for yet (oldest dropped first).
_UNCLAIMED_BYTES = 8 * 1024 * 1024


class _Waiter:
    """One caller waiting for a job's final record."""

    __slots__ = ("event", "record")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.record: JobRecord | None = None


def _no_result(job_id: str, timeout: float | None) -> JobTimeout:
    # Read by Python callers and CLI users alike: name both ways to look.
    return JobTimeout(
        f"job {job_id} has no result after {timeout}s; it may still be queued or running: "
        f"see its status() or `actorq jobs show {job_id}`, or wait longer."
    )
