"""Per-function job counters of one queue actor process, carried by its heartbeats.

A queue actor counts, per job function, the attempts it started and how each ended,
and a histogram of their durations. The counts only grow while the process lives;
every heartbeat (:mod:`actorq.process.heartbeat`) carries them whole, and ``actorq
up``'s metrics endpoint (:mod:`actorq.runtime.metrics`) adds up the last report of
every process it has seen. Counting is a few dict and list operations per job, on
the report batch's path, not the job's.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import msgspec

from actorq.wire.messages import JobOutcome

__all__ = ["DURATION_BUCKETS", "LAG_BUCKETS", "FunctionCounts", "JobCounts", "LagCounts"]

#: Upper bounds (seconds) of the duration histogram's buckets; one more holds the rest.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Upper bounds (seconds) of the scheduler lag histogram's buckets: a fire handled
#: within 10 ms is on time, one a minute late waited out a scheduler's absence.
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class FunctionCounts(msgspec.Struct, kw_only=True):
    """What one process did with one function's jobs (counters since it started)."""

    queue: str
    started: int = 0
    succeeded: int = 0
    #: Failed for good (no retries left).
    failed: int = 0
    retried: int = 0
    dead: int = 0
    cancelled: int = 0
    #: Finished attempts per duration bucket (not cumulative; the last: above all bounds).
    buckets: list[int] = msgspec.field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0


class JobCounts:
    """The counters of a queue actor, by function."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.by_function: dict[str, FunctionCounts] = {}

    def _of(self, function: str) -> FunctionCounts:
        counts = self.by_function.get(function)
        if counts is None:
            counts = self.by_function[function] = FunctionCounts(queue=self.queue)
        return counts

    def start(self, function: str) -> None:
        """An attempt of ``function`` starts."""
        self._of(function).started += 1

    def record(self, outcomes: Iterable[JobOutcome]) -> None:
        """Count the final outcome of each attempt (``running`` reports are skipped)."""
        for out in outcomes:
            status = out.status
            if status == "running":
                continue
            counts = self._of(out.function)
            if status == "succeeded":
                counts.succeeded += 1
            elif status == "retrying":
                counts.retried += 1
            elif status == "failed":
                counts.failed += 1
            elif status == "dead":
                counts.dead += 1
            elif status == "cancelled":
                counts.cancelled += 1
            duration = max(0.0, out.finished_at - out.started_at)
            counts.buckets[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1
            counts.duration_sum += duration


class LagCounts(msgspec.Struct, kw_only=True):
    """How late a scheduler handled the fires of recurring schedules: seconds from a
    fire's due time to its handling, as a histogram (counters since the process
    started; carried by the scheduler's heartbeats, summed by ``actorq up``'s
    ``actorq_scheduler_lag_seconds``)."""

    #: Fires per lag bucket (not cumulative; the last: above all of :data:`LAG_BUCKETS`).
    buckets: list[int] = msgspec.field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, lag: float) -> None:
        """One fire, handled ``lag`` seconds after its due time (clamped at 0: a
        clock a little behind the server's)."""
        lag = max(0.0, lag)
        self.buckets[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        self.total += lag
