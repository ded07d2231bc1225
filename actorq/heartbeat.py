"""Process heartbeats: each queue actor process reports what it is doing to a KV bucket.

Every :data:`INTERVAL` seconds a process puts one :class:`ProcReport` under key
``<host>.<pid>`` of bucket ``<ns>_procs``. The bucket's TTL drops the reports of
processes gone for good; before that, ``actorq ps`` shows a report older than
:data:`LOST_AFTER` seconds as ``lost``: the process stopped reporting (killed, frozen,
cut off) and must not pass for running. A process that stops cleanly deletes its key.

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
from typing import Any

import msgspec
import psutil
import trio

from .provision import KvSpec, Namespace, ensure_kv

__all__ = ["INTERVAL", "LOST_AFTER", "ProcReport", "procs_bucket", "publish_heartbeats", "state_of"]

log = logging.getLogger("actorq.heartbeat")

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
    active_jobs: list[str] = []
    processed: int = 0
    failed: int = 0
    retried: int = 0
    last_error: str = ""


def procs_bucket(namespace: str) -> str:
    """The heartbeat bucket of ``namespace``: ``<ns>_procs``."""
    return Namespace(namespace).bucket("procs")


def state_of(report: ProcReport, now: float | None = None) -> str:
    """The state to show: the reported one, or ``lost`` once beats stopped coming."""
    now = time.time() if now is None else now
    return "lost" if now - report.at > LOST_AFTER else report.state


def _key(host: str, pid: int) -> str:
    # KV keys allow letters, digits and -_=/. only; dots separate host and pid.
    return f"{re.sub(r'[^A-Za-z0-9_=-]', '-', host)}.{pid}"


async def publish_heartbeats(conn: Any, namespace: str, actor: Any) -> None:
    """Report ``actor`` (a :class:`~actorq.queue_actor.QueueActor`) until cancelled."""
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
        return
    first = True
    try:
        while True:
            try:
                report = _report(actor, proc, host, pid, started, measure_cpu=not first)
                first = False
                await kv.put(key, msgspec.json.encode(report))
            except Exception as exc:  # a missed beat only makes the process look lost
                log.warning("heartbeat not published: %s", exc)
            await trio.sleep(INTERVAL)
    finally:
        # A clean stop removes the entry, so ps does not show it as lost.
        with trio.CancelScope(shield=True), trio.move_on_after(2), contextlib.suppress(Exception):
            await kv.delete(key)


def _report(
    actor: Any, proc: psutil.Process, host: str, pid: int, started: float, *, measure_cpu: bool
) -> ProcReport:
    with proc.oneshot():
        # The first beat follows the priming call by milliseconds: a percentage over
        # so short a span is noise (seen: 326% on 2 cores), so it reports 0.
        cpu = proc.cpu_percent(None) if measure_cpu else 0.0
        rss = proc.memory_info().rss
        threads = proc.num_threads()
    settings = actor.settings
    return ProcReport(
        pid=pid,
        host=host,
        role="queue",
        queue=settings.queue,
        name=settings.name or "",
        state="stopping" if actor.stop_fetching.is_set() else "running",
        at=time.time(),
        started_at=started,
        cpu_percent=cpu,
        rss_bytes=rss,
        threads=threads,
        active_jobs=sorted(actor.running),
        processed=actor.jobs_done,
        failed=getattr(actor, "jobs_failed", 0),
        retried=getattr(actor, "jobs_retried", 0),
        last_error=getattr(actor, "last_error", ""),
    )
