"""Process heartbeats: each queue actor process reports what it is doing to a KV bucket.

Every :data:`INTERVAL` seconds a process puts one :class:`ProcReport` under key
``<host>.<pid>`` of bucket ``<ns>_procs``. The bucket's TTL drops the reports of
processes gone for good; before that, ``actorq ps`` shows a report older than
:data:`LOST_AFTER` seconds as ``lost``: the process stopped reporting (killed, frozen,
cut off) and must not pass for running. A process that stops cleanly deletes its key.

``actorq up`` also puts its supervision tree (a
:class:`~supervisors.ChildSnapshot`, msgspec JSON) under ``<host>.tree.<pid>`` of the same
bucket (see :func:`publish_tree`), so ``ps`` can show each process's restarts and
supervisor path, joined by pid.

Heartbeats are best effort: a failed put is logged and retried next time, never allowed
to stop the actor doing real work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import msgspec
import psutil
import trio

from actorq.nats.connection import Connection
from actorq.nats.provisioning import KvSpec, Namespace, ensure_kv
from actorq.process.job_counts import FunctionCounts, LagCounts

__all__ = [
    "INTERVAL",
    "LOST_AFTER",
    "ProcReport",
    "is_tree_key",
    "procs_bucket",
    "provision_procs",
    "publish_heartbeats",
    "publish_tree",
    "state_of",
    "tree_key",
]

log = logging.getLogger("actorq.process.heartbeat")

#: Seconds between two reports of a process.
INTERVAL = 2.0
#: A report older than this (three missed beats) means the process is lost.
LOST_AFTER = 3 * INTERVAL
#: Reports of processes that stopped reporting are kept this long, shown as lost.
TTL = 120.0


class ProcReport(msgspec.Struct, frozen=True, kw_only=True):
    """One process's figures at time ``at`` (unix seconds)."""

    pid: int
    host: str
    role: str
    queue: str | None = None
    name: str = ""
    state: str = "running"
    at: float
    started_at: float
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    threads: int = 0
    open_files: int = 0
    active_jobs: list[str] = []
    processed: int = 0
    #: Jobs finished per second since the previous beat.
    jobs_per_s: float = 0.0
    failed: int = 0
    retried: int = 0
    last_error: str = ""
    #: CPU seconds (user + system) since the process started.
    cpu_seconds: float = 0.0
    #: A queue actor's counters by job function (see :mod:`actorq.process.job_counts`).
    jobs: dict[str, FunctionCounts] = {}
    #: A scheduler's lateness in handling recurring schedules' fires.
    schedule_lag: LagCounts | None = None


def procs_bucket(namespace: str) -> str:
    """The heartbeat bucket of ``namespace``: ``<ns>_procs``."""
    return Namespace(namespace).bucket("procs")


async def provision_procs(conn: Connection, namespace: str, replicas: int | None) -> None:
    """Create the heartbeat bucket with ``replicas`` copies (the runtime's ``[nats]
    replicas``), or move an existing one to that count; the processes' own
    :func:`ensure_kv` then keeps it as it is. On a cluster an R1 bucket would stop
    ``actorq ps`` and the heartbeats whenever its one node is down."""
    await ensure_kv(conn, KvSpec(bucket=procs_bucket(namespace), ttl=TTL, replicas=replicas))


def state_of(report: ProcReport, now: float | None = None) -> str:
    """The state to show: the reported one, or ``lost`` once beats stopped coming."""
    now = time.time() if now is None else now
    return "lost" if now - report.at > LOST_AFTER else report.state


def _host_key(host: str) -> str:
    # KV keys allow letters, digits and -_=/. only; dots separate host and pid.
    return re.sub(r"[^A-Za-z0-9_=-]", "-", host)


def _key(host: str, pid: int) -> str:
    return f"{_host_key(host)}.{pid}"


def tree_key(host: str, pid: int) -> str:
    """The key of the supervision tree published by ``actorq up`` process ``pid``."""
    return f"{_host_key(host)}.tree.{pid}"


def is_tree_key(key: str) -> bool:
    """Whether ``key`` holds a supervision tree rather than a :class:`ProcReport`."""
    return ".tree." in key


def queue_stats(actor: Any) -> dict[str, Any]:
    """The fields of a :class:`~actorq.jobs.queue_actor.QueueActor`'s report."""
    settings = actor.settings
    return {
        "queue": settings.queue,
        "name": settings.name or "",
        "state": "stopping" if actor.stop_fetching.is_set() else "running",
        "active_jobs": sorted(actor.running),
        "processed": actor.jobs_done,
        "failed": getattr(actor, "jobs_failed", 0),
        "retried": getattr(actor, "jobs_retried", 0),
        "last_error": getattr(actor, "last_error", ""),
        "jobs": actor.reporter.counts.by_function if hasattr(actor, "reporter") else {},
    }


async def publish_heartbeats(
    conn: Any,
    namespace: str,
    actor: Any = None,
    *,
    role: str = "queue",
    stats: Callable[[], dict[str, Any]] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Report this process until cancelled; started once the first report was put, so
    a process that reports ready after it is already listed by ``actorq ps``.

    ``actor`` is a :class:`~actorq.jobs.queue_actor.QueueActor` (role ``queue``); other
    processes pass their ``role`` and optionally ``stats``, returning further
    :class:`ProcReport` fields (default: none, so no job counters).
    """
    if stats is None:
        stats = (lambda: queue_stats(actor)) if actor is not None else dict
    host = socket.gethostname()
    pid = os.getpid()
    key = _key(host, pid)
    proc = psutil.Process()
    proc.cpu_percent(None)  # the first call only starts the measure
    started = proc.create_time()
    try:
        kv = await ensure_kv(conn, KvSpec(bucket=procs_bucket(namespace), ttl=TTL))
    except Exception:
        log.exception("heartbeats disabled: cannot open bucket %s", procs_bucket(namespace))
        task_status.started()
        return
    first = True
    previous: ProcReport | None = None
    try:
        while True:
            try:
                report = _report(stats(), role, proc, host, pid, started, measure_cpu=not first)
                if previous is not None and report.at > previous.at:
                    rate = (report.processed - previous.processed) / (report.at - previous.at)
                    report = msgspec.structs.replace(report, jobs_per_s=round(rate, 2))
                previous = report
                first = False
                await kv.put(key, msgspec.json.encode(report))
            except Exception as exc:  # a missed beat only makes the process look lost
                log.warning("heartbeat not published: %s", exc)
            task_status.started()  # the first time; later calls are not made
            task_status = trio.TASK_STATUS_IGNORED
            await trio.sleep(INTERVAL)
    finally:
        # A clean stop removes the entry, so ps does not show it as lost.
        await _remove(kv, key)


async def _remove(kv: Any, key: str) -> None:
    """Delete ``key`` on the way out, bounded: with the server gone (the connection is
    down) nobody could take the delete, so it is not tried; the entry then shows
    ``lost`` and the bucket's TTL drops it, as for a killed process."""
    if not kv.connected:
        return
    with trio.CancelScope(shield=True), trio.move_on_after(2), contextlib.suppress(Exception):
        await kv.delete(key)


def _report(
    fields: dict[str, Any],
    role: str,
    proc: psutil.Process,
    host: str,
    pid: int,
    started: float,
    *,
    measure_cpu: bool,
) -> ProcReport:
    with proc.oneshot():
        # The first beat follows the priming call by milliseconds: a percentage over
        # so short a span is noise (seen: 326% on 2 cores), so it reports 0.
        cpu = proc.cpu_percent(None) if measure_cpu else 0.0
        times = proc.cpu_times()
        rss = proc.memory_info().rss
        threads = proc.num_threads()
        try:
            open_files = proc.num_fds()
        except (AttributeError, psutil.Error):  # not on Windows
            open_files = 0
    return ProcReport(
        pid=pid,
        host=host,
        role=role,
        at=time.time(),
        started_at=started,
        cpu_percent=cpu,
        rss_bytes=rss,
        threads=threads,
        open_files=open_files,
        cpu_seconds=round(times.user + times.system, 3),
        **fields,
    )


async def publish_tree(
    conn: Any,
    namespace: str,
    snapshot: Callable[[], Any],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Put ``snapshot()`` (a supervisor's :class:`~supervisors.ChildSnapshot`) every
    :data:`INTERVAL` seconds under ``<host>.tree.<pid>`` until cancelled; then delete it.
    Started once the first snapshot was put."""
    key = tree_key(socket.gethostname(), os.getpid())
    try:
        kv = await ensure_kv(conn, KvSpec(bucket=procs_bucket(namespace), ttl=TTL))
    except Exception:
        log.exception("tree snapshots disabled: cannot open bucket %s", procs_bucket(namespace))
        task_status.started()
        return
    try:
        while True:
            try:
                await kv.put(key, msgspec.json.encode(snapshot()))
            except Exception as exc:
                log.warning("tree snapshot not published: %s", exc)
            task_status.started()  # the first time; later calls are not made
            task_status = trio.TASK_STATUS_IGNORED
            await trio.sleep(INTERVAL)
    finally:
        await _remove(kv, key)
