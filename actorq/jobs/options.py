"""How a job is enqueued: :class:`EnqueueOptions`, and ``client.options(...)``.

Example::

    opts = EnqueueOptions(queue="emails", max_retries=5, timeout=30)
    await client.enqueue_with(opts, send_mail, ("ann",), {})
    await client.options(queue="emails", max_retries=5).enqueue(send_mail, "ann")
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from actorq.constants import DEFAULT_QUEUE
from actorq.exceptions import ConfigError
from actorq.jobs.streams import MAX_DELIVER
from actorq.wire.messages import JobOptions, RetryBackoff

if TYPE_CHECKING:
    from actorq.jobs.client import Client, Job

__all__ = ["MAX_RETRIES", "BoundEnqueue", "EnqueueOptions", "check_max_retries", "due_in"]

#: The most retries a job may ask for: attempts (retries + 1) stay below the queue
#: consumer's delivery limit, whose last delivery is kept for the dead letter.
MAX_RETRIES = MAX_DELIVER - 2


class EnqueueOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to enqueue: which queue, which id, retries, timeout, result TTL, metadata.

    ``job_id``: give one to make the enqueue idempotent: a second enqueue with the same
    id returns the first job (``Job.deduplicated`` is true) and never runs it twice.
    ``depends_on``: ids of jobs that must all succeed first; the job waits (status
    ``waiting``) and fails with "dependency failed" if one of them fails for good.
    """

    queue: str = DEFAULT_QUEUE
    job_id: str | None = None
    max_retries: int = 3
    backoff: RetryBackoff = RetryBackoff()
    timeout: float | None = None
    result_ttl: float | None = None
    metadata: dict[str, str] = {}
    depends_on: list[str] = []

    def job_options(self) -> JobOptions:
        """The per-job options carried in the envelope."""
        check_max_retries(self.max_retries)
        return JobOptions(
            max_retries=self.max_retries,
            backoff=self.backoff,
            timeout=self.timeout,
            result_ttl=self.result_ttl,
            metadata=dict(self.metadata),
            depends_on=list(self.depends_on),
        )


def check_max_retries(max_retries: int) -> int:
    """Return ``max_retries`` if the queue's delivery limit leaves room for it, else
    raise :class:`~actorq.ConfigError` (the last delivery is kept for dead-lettering)."""
    if not 0 <= max_retries <= MAX_RETRIES:
        raise ConfigError(
            f"max_retries={max_retries} is out of range: a job is delivered at most "
            f"{MAX_DELIVER} times, so it may be retried at most {MAX_RETRIES} times; "
            "for longer, let the job re-enqueue itself or use a schedule"
        )
    return max_retries


class BoundEnqueue:
    """``client.options(...)``: enqueue with fixed options."""

    def __init__(self, client: Client, opts: EnqueueOptions) -> None:
        self._client = client
        self._opts = opts

    async def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``fn(*args, **kwargs)`` with the bound options."""
        return await self._client.enqueue_with(self._opts, fn, args, kwargs)

    async def enqueue_at(
        self, when: dt.datetime | float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Job:
        """Enqueue with the bound options, to run at ``when`` (see :meth:`Client.enqueue_at`)."""
        return await self._client.enqueue_with(self._opts, fn, args, kwargs, at=when)

    async def enqueue_in(
        self, delay: dt.timedelta | float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Job:
        """Enqueue with the bound options, to run after ``delay``."""
        return await self._client.enqueue_with(self._opts, fn, args, kwargs, at=due_in(delay))

    async def enqueue_many(
        self, calls: Sequence[tuple[Callable[..., Any], Sequence[Any], Mapping[str, Any]]]
    ) -> list[Job]:
        """Enqueue many ``(fn, args, kwargs)`` calls with the bound options, pipelined."""
        return await self._client.enqueue_many(calls, self._opts)


def due_in(delay: dt.timedelta | float) -> float:
    """The unix time ``delay`` (timedelta or seconds) from now."""
    seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else float(delay)
    return time.time() + seconds
