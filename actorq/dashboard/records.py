"""The dashboard's index of job records: one watch of the results bucket, kept in memory.

The results bucket (``<ns>_results``: job id -> :class:`~actorq.wire.messages.JobRecord`)
is watched once per dashboard (push: the current records first, then every change),
and each record's headline fields are kept here. The jobs page is a query of this
index (filter by queue, status and id, newest first, one page at a time), so a page
of 100,000 stored records answers in milliseconds and opening it costs NATS nothing.

Records whose TTL expired vanish from the bucket without a deletion marker; the index
forgets them when the dashboard restarts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

import msgspec
import trio

from actorq.nats.kv import KeyValueStore

__all__ = ["JobRow", "RecordIndex", "RecordPage"]

log = logging.getLogger("actorq.dashboard")

#: Room for the whole bucket's catch-up in the watch's channel (a dropped entry would
#: be a record missing from the index).
_WATCH_PENDING = 2_000_000


class _Error(msgspec.Struct, kw_only=True):
    type: str = ""
    message: str = ""


class _Head(msgspec.Struct, kw_only=True):
    """The fields of a :class:`~actorq.wire.messages.JobRecord` the index keeps
    (decoding only these is faster than the whole record)."""

    id: str
    queue: str
    function: str = ""
    status: str
    attempts: int = 0
    enqueued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    error: _Error | None = None


_HEAD = msgspec.msgpack.Decoder(_Head)


class JobRow(msgspec.Struct, frozen=True, kw_only=True):
    """One job as the jobs page lists it."""

    id: str
    queue: str
    function: str
    status: str
    attempts: int
    enqueued_at: float
    started_at: float | None
    finished_at: float | None
    #: ``Type: message`` of a failure, cut to 200 characters.
    error: str = ""


class RecordPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a query: the rows and how many records match in all."""

    total: int
    page: int
    per_page: int
    rows: list[JobRow]


def _row(head: _Head) -> JobRow:
    error = ""
    if head.error is not None:
        error = f"{head.error.type}: {head.error.message}"[:200]
    return JobRow(
        id=head.id,
        queue=head.queue,
        function=head.function[:200],
        status=head.status,
        attempts=head.attempts,
        enqueued_at=head.enqueued_at,
        started_at=head.started_at,
        finished_at=head.finished_at,
        error=error,
    )


class RecordIndex:
    """Every job record's headline, by id, in order of enqueue (newest last)."""

    def __init__(self) -> None:
        self.rows: dict[str, JobRow] = {}
        self.counts: Counter[str] = Counter()
        #: Bumped on every change: the live views refetch when it moves.
        self.version = 0
        #: Set once the watch delivered every record stored when it began.
        self.ready = trio.Event()

    def apply(self, key: str, value: bytes | None) -> None:
        """Take one change of the bucket: a record stored (``value``) or deleted."""
        old = self.rows.get(key)
        if value is None:
            if old is not None:
                del self.rows[key]
                self.counts[old.status] -= 1
                self.version += 1
            return
        try:
            row = _row(_HEAD.decode(value))
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("job record %s cannot be decoded; not listed", key)
            return
        if old is not None:
            self.counts[old.status] -= 1
        self.counts[row.status] += 1
        self.rows[key] = row  # an update keeps the job's place
        self.version += 1

    def sort(self) -> None:
        """Order the rows by enqueue time (after the catch-up, which comes in order of
        last change)."""
        self.rows = dict(sorted(self.rows.items(), key=lambda kv: kv[1].enqueued_at))

    def status_counts(self) -> dict[str, int]:
        """How many records have each status (statuses with none left out)."""
        return {status: n for status, n in sorted(self.counts.items()) if n > 0}

    def queues(self) -> list[str]:
        """Every queue that has a record."""
        return sorted({row.queue for row in self.rows.values()})

    def query(
        self,
        *,
        queue: str | None = None,
        status: str | None = None,
        search: str | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> RecordPage:
        """Newest first, those matching every filter given (``search``: a part of the
        job id or function name), page ``page`` (from 1) of ``per_page`` rows."""
        page = max(1, page)
        per_page = min(max(1, per_page), 500)
        start = (page - 1) * per_page
        needle = search.lower() if search else None
        rows: Iterable[JobRow] = reversed(self.rows.values())
        if needle is not None and needle in self.rows:
            rows = [self.rows[needle]]
        elif queue or status or needle:
            rows = (
                r for r in rows
                if (not queue or r.queue == queue)
                and (not status or r.status == status)
                and (needle is None or needle in r.id.lower() or needle in r.function.lower())
            )  # fmt: skip
        else:
            total = len(self.rows)
            out = []
            for i, r in enumerate(rows):
                if i >= start + per_page:
                    break
                if i >= start:
                    out.append(r)
            return RecordPage(total=total, page=page, per_page=per_page, rows=out)
        out = []
        total = 0
        for r in rows:
            if start <= total < start + per_page:
                out.append(r)
            total += 1
        return RecordPage(total=total, page=page, per_page=per_page, rows=out)

    async def serve(
        self,
        results: KeyValueStore,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Watch ``results`` until cancelled; started once the watch is open (the
        catch-up may still be running: see :attr:`ready`)."""
        async with results.watch(">", max_pending=_WATCH_PENDING) as updates:
            task_status.started()
            async for entry in updates:
                if entry is None:
                    if not self.ready.is_set():
                        self.sort()
                        self.ready.set()
                        log.info("job index ready: %d records", len(self.rows))
                    continue
                self.apply(entry.key, entry.value if entry.operation == "PUT" else None)
