"""One log line per finished job attempt, on the ``actorq.job`` logger.

A job that succeeded (or was cancelled) logs at INFO, an attempt that will be retried
at WARNING, a job that failed for good at ERROR, each with its queue, id, function,
attempt, duration and outcome, and a failure's one-line summary::

    default 3f1a… tasks.add attempt 1 succeeded in 0.004s
    default 3f1a… tasks.fetch attempt 1 failed in 0.120s, retry in 1.0s: OSError: refused
    default 3f1a… tasks.fetch attempt 4 failed in 0.118s, giving up: OSError: refused

The lines are written once the outcomes are durable (after the report batch is
published), off the job's own path. A retry's or failure's record carries ``queue``,
``job_id``, ``function``, ``attempt``, ``duration`` and ``outcome`` as attributes
(the JSON log format prints them as fields). The INFO lines of a batch are one record
(:class:`JobLines`) formatted only if a handler emits it, one line per job: a log
record costs ~10 us to make, as much as a tenth of a short job's whole cost, and a
disabled INFO costs one level check per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from actorq.wire.messages import JobOutcome

__all__ = ["JOB_FIELDS", "JobLines", "log_outcomes", "summary"]

log = logging.getLogger("actorq.job")

#: The attributes a job's log record carries (what the JSON format adds as fields).
JOB_FIELDS = ("queue", "job_id", "function", "attempt", "duration", "outcome")

#: Longest exception summary in a line.
_SUMMARY = 300


def summary(outcome: JobOutcome) -> str:
    """The failure of ``outcome`` on one line: ``ValueError: bad input``."""
    err = outcome.error
    if err is None:
        return ""
    first = err.message.strip().splitlines()[0] if err.message.strip() else ""
    text = f"{err.type}: {first}" if first else err.type
    return text if len(text) <= _SUMMARY else text[: _SUMMARY - 1] + "…"


class JobLines:
    """The INFO lines of a batch's finished jobs, as one log record's message.

    Nothing is formatted until a handler emits the record; ``str()`` gives one line
    per job. actorq's own formatters (``actorq up``'s text and JSON, see
    :mod:`actorq.runtime.child`) write each line as a record of its own, with its
    prefix or as a JSON object with the job's fields (:meth:`each`).
    """

    __slots__ = ("outcomes",)

    def __init__(self, outcomes: list[JobOutcome]) -> None:
        self.outcomes = outcomes

    def each(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(text, fields)`` of every job's line."""
        for out in self.outcomes:
            yield _line(out, out.status, "")

    def __str__(self) -> str:
        return "\n".join(text for text, _ in self.each())


def _line(out: JobOutcome, shown: str, tail: str) -> tuple[str, dict[str, Any]]:
    duration = max(0.0, out.finished_at - out.started_at)
    text = (
        f"{out.queue} {out.job_id} {out.function} attempt {out.attempt} {shown} "
        f"in {duration:.3f}s{tail}"
    )
    fields = {
        "queue": out.queue, "job_id": out.job_id, "function": out.function,
        "attempt": out.attempt, "duration": round(duration, 6), "outcome": out.status,
    }  # fmt: skip
    return text, fields


def log_outcomes(outcomes: Iterable[JobOutcome]) -> None:
    """Log the final outcomes of a settled batch (``running`` reports are skipped):
    one record per retry (WARNING) and failure (ERROR), one for the batch's other
    finished jobs (INFO, a :class:`JobLines`), made only when INFO is enabled."""
    info = log.isEnabledFor(logging.INFO)
    done: list[JobOutcome] = []
    for out in outcomes:
        status = out.status
        if status == "running":
            continue
        if status == "retrying":
            tail = f", retry in {out.retry_in or 0:.1f}s: {summary(out)}"
            text, fields = _line(out, "failed", tail)
            log.warning("%s", text, extra=fields)
        elif status in ("failed", "dead"):
            tail = f", {'giving up' if status == 'failed' else 'dead-lettered'}: {summary(out)}"
            text, fields = _line(out, status, tail)
            log.error("%s", text, extra=fields)
        elif info:
            done.append(out)
    if done:
        log.info(JobLines(done), extra={"jobs": len(done)})
