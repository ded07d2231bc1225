"""What the dashboard shows, read from what the runtime already publishes.

Process reports and supervision trees (heartbeat bucket), queue figures (consumer
info), job records (the :class:`~actorq.dashboard.records.RecordIndex`), dead
letters, schedules and named actors (each answers ``introspect``). Every function
returns plain data (dicts, lists, msgspec structs) that the JSON API sends as is.
Payloads are only ever summarized (:mod:`actorq.dashboard.summary`); signatures,
keys and raw payload bytes never leave this module.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import msgspec
import trio

from actorq.actors.refs import mailbox_stream, ref
from actorq.dashboard.procs import ProcessIndex
from actorq.dashboard.records import RecordIndex
from actorq.dashboard.summary import summarize
from actorq.exceptions import ActorqError, CodecError, NotFound
from actorq.jobs.client import Client
from actorq.jobs.stats import queue_stats, read_all
from actorq.jobs.streams import check_job_id
from actorq.process.heartbeat import ProcReport, state_of
from actorq.wire.messages import DeadLetter, decode_dead_letter, decode_envelope
from supervisors import ChildSnapshot

__all__ = [
    "actors",
    "dead_letters",
    "job_detail",
    "overview",
    "processes",
    "queues",
    "runtime_actor_name",
    "schedules",
    "tree",
]

#: How long one actor may take to answer ``introspect`` before it shows as silent.
ACTOR_TIMEOUT = 1.0


def _report(r: ProcReport, now: float) -> dict[str, Any]:
    return {
        "pid": r.pid,
        "host": r.host,
        "role": r.role,
        "queue": r.queue,
        "name": r.name,
        "state": state_of(r, now),
        "uptime": max(0.0, now - r.started_at),
        "last_seen": max(0.0, now - r.at),
        "cpu_percent": r.cpu_percent,
        "rss_bytes": r.rss_bytes,
        "threads": r.threads,
        "open_files": r.open_files,
        "active_jobs": len(r.active_jobs),
        "processed": r.processed,
        "failed": r.failed,
        "retried": r.retried,
        "jobs_per_s": r.jobs_per_s,
        "last_error": r.last_error[:300],
    }


async def processes(
    client: Client, procs: ProcessIndex | None = None
) -> tuple[list[ProcReport], list[ChildSnapshot]]:
    """Every process report and published supervision tree of the namespace: from
    ``procs`` (the dashboard's watch of the heartbeat bucket) when given, else read now."""
    if procs is not None:
        return procs.reports(), procs.trees()
    return await read_all(client)


async def leader(client: Client) -> str | None:
    """Who holds the scheduler lease, or ``None``."""
    with contextlib.suppress(ActorqError):
        kv = await client.conn.kv(client.streams.leader_bucket)
        entry = await kv.get("scheduler")
        if entry is not None:
            return entry.value.decode(errors="replace")[:200]
    return None


async def dead_count(client: Client) -> int:
    """How many dead letters are stored."""
    try:
        info = await client.conn.jsm("stream_info", client.streams.dead_stream)
    except ActorqError:
        return 0
    return int(info.state.messages or 0)


async def queues(client: Client, procs: ProcessIndex | None = None) -> list[Any]:
    """Each queue's figures (:class:`~actorq.jobs.stats.QueueStats`)."""
    reports = procs.reports() if procs is not None else None
    return list(await queue_stats(client, reports))


async def overview(
    client: Client, index: RecordIndex, procs: ProcessIndex | None = None
) -> dict[str, Any]:
    """The overview page: queues, job counts, rates, failures, leader and health."""
    now = time.time()
    reports, _trees = await processes(client, procs)
    states = [state_of(r, now) for r in reports]
    stats = list(await queue_stats(client, reports))
    return {
        "at": now,
        "namespace": client.streams.ns.name,
        "nats": {"url": client.conn.url, "connected": client.conn.connected},
        "index_ready": index.ready.is_set(),
        "jobs_total": len(index.rows),
        "status_counts": index.status_counts(),
        "version": index.version,
        "queues": msgspec.to_builtins(stats),
        "jobs_per_s": round(sum(s.jobs_per_s for s in stats), 2),
        "processes": {
            "total": len(reports),
            "running": sum(1 for s in states if s == "running"),
            "lost": sum(1 for s in states if s == "lost"),
        },
        "failed_recently": sum(r.failed for r in reports),
        "dead_letters": await dead_count(client),
        "scheduler_leader": await leader(client),
    }


def _node(node: ChildSnapshot, by_pid: dict[int, dict[str, Any]], now: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": node.id,
        "kind": node.kind,
        "pid": node.pid,
        "state": node.state,
        "restarts": node.restarts,
        "uptime": (now - node.started_at) if node.started_at else None,
        "last_exit": node.last_exit.describe()[:300] if node.last_exit else None,
        "report": by_pid.pop(node.pid, None) if node.pid is not None else None,
        "children": [],
    }
    out["children"] = [_node(c, by_pid, now) for c in node.children]
    return out


async def tree(client: Client, procs: ProcessIndex | None = None) -> dict[str, Any]:
    """The supervision tree page: each published tree, every process with its report
    (pid, state, restarts, CPU, RSS, uptime), and processes outside any tree."""
    now = time.time()
    reports, trees = await processes(client, procs)
    by_pid = {r.pid: _report(r, now) for r in reports}
    nodes = [_node(t, by_pid, now) for t in trees]
    return {"trees": nodes, "other": sorted(by_pid.values(), key=lambda r: r["pid"])}


async def _envelope_summary(client: Client, job_id: str) -> dict[str, Any] | None:
    """The waiting envelope of a job, summarized, or ``None`` if none is queued."""
    streams = client.streams
    try:
        msg = await client.conn.jsm(
            "get_last_msg", streams.jobs_stream, streams.job_subject("*", job_id)
        )
        env = decode_envelope(msg.data)
    except (NotFound, CodecError):
        return None
    return {
        "queue": env.queue,
        "function": env.function[:200],
        "codec": env.codec,
        "arguments": summarize(env.codec, env.payload),
        "attempt": env.attempt,
        "enqueued_at": env.enqueued_at,
        "metadata": dict(env.options.metadata),
        "max_retries": env.options.max_retries,
        "timeout": env.options.timeout,
    }


def _letter(letter: DeadLetter) -> dict[str, Any]:
    out: dict[str, Any] = {
        "job_id": letter.job_id,
        "queue": letter.queue,
        "reason": letter.reason,
        "detail": letter.detail[:5000],
        "failed_at": letter.failed_at,
        "function": "",
        "arguments": "",
        "attempt": None,
    }
    try:
        env = decode_envelope(letter.original)
    except CodecError:
        out["arguments"] = f"({len(letter.original)} bytes, not a job envelope)"
        return out
    out.update(
        function=env.function[:200],
        arguments=summarize(env.codec, env.payload),
        attempt=env.attempt,
    )
    return out


async def _dead_letter_of(client: Client, job_id: str) -> dict[str, Any] | None:
    streams = client.streams
    try:
        msg = await client.conn.jsm(
            "get_last_msg", streams.dead_stream, streams.dead_subject(job_id)
        )
        return _letter(decode_dead_letter(msg.data))
    except (NotFound, CodecError):
        return None


async def job_detail(client: Client, job_id: str) -> dict[str, Any]:
    """The job page: status, history, attempts, timings, arguments summary, result
    summary or traceback, and its dead letter if it has one; :class:`NotFound`
    when nothing is known of the job."""
    check_job_id(job_id)  # ConfigError (400) for what cannot be a job id
    record = await client.get_record(job_id)
    status = await client.status(job_id)  # NotFound for an unknown id
    out: dict[str, Any] = {
        "id": job_id,
        "status": status,
        "record": None,
        "queued": await _envelope_summary(client, job_id),
        "dead_letter": await _dead_letter_of(client, job_id),
    }
    if record is not None:
        out["record"] = {
            "queue": record.queue,
            "function": record.function[:200],
            "status": record.status,
            "codec": record.codec,
            "attempts": record.attempts,
            "enqueued_at": record.enqueued_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "worker": record.worker[:200],
            "metadata": dict(record.metadata),
            "history": [{"status": h.status, "at": h.at} for h in record.history],
            "result": summarize(record.codec, record.result, call=False),
            "error": None
            if record.error is None
            else {
                "type": record.error.type[:200],
                "message": record.error.message[:2000],
                "traceback": record.error.traceback[:20000],
            },
        }
    return out


async def dead_letters(client: Client, limit: int = 200) -> list[dict[str, Any]]:
    """Up to ``limit`` dead letters, oldest first: reason, detail, arguments summary."""
    try:
        letters = await client.dead_letters(limit=limit)
    except NotFound:
        return []
    return [_letter(letter) for letter in letters]


async def schedules(client: Client) -> list[dict[str, Any]]:
    """Every schedule: plan, paused, runs, last run and the next ones."""
    return [msgspec.to_builtins(s) for s in await client.schedules()]


def runtime_actor_name(report: ProcReport) -> str | None:
    """The actor a runtime process serves beside its work (``actorq actor NAME``):
    ``_queue-<queue>``, ``_results`` or ``_scheduler``; ``None`` for other roles."""
    if report.role == "queue" and report.queue:
        return f"_queue-{report.queue}"
    if report.role in ("results", "scheduler"):
        return f"_{report.role}"
    return None


async def actors(client: Client, procs: ProcessIndex | None = None) -> list[dict[str, Any]]:
    """Every named actor that reports heartbeats — user actors, and the actors the
    runtime's processes serve (``_queue-<queue>``, ``_results``, ``_scheduler``) — with
    what it answers to ``introspect`` and its durable mailbox's depth (``None``:
    at-most-once mailbox)."""
    now = time.time()
    reports, _ = await processes(client, procs)
    names: dict[str, list[ProcReport]] = {}
    for r in reports:
        name = runtime_actor_name(r) if r.role != "actor" else r.name
        if name:
            names.setdefault(name, []).append(r)
    ns = client.streams.ns.name
    out: dict[str, dict[str, Any]] = {}

    async def look(name: str, members: list[ProcReport]) -> None:
        row: dict[str, Any] = {
            "name": name,
            "kind": "runtime" if name.startswith("_") else "user",
            "processes": [
                {"pid": p.pid, "host": p.host, "state": state_of(p, now)} for p in members
            ],
            "answers": False,
            "role": None,
            "stats": {},
            "mailbox": "at_most_once",
            "mailbox_depth": None,
        }
        with trio.move_on_after(ACTOR_TIMEOUT), contextlib.suppress(ActorqError):
            info = await ref(name, conn=client.conn, namespace=ns).introspect(timeout=ACTOR_TIMEOUT)
            row.update(answers=True, role=info.role, stats=dict(info.stats))
        with contextlib.suppress(ActorqError):
            info_ = await client.conn.jsm("stream_info", mailbox_stream(ns, name))
            row.update(mailbox="durable", mailbox_depth=int(info_.state.messages or 0))
        out[name] = row

    async with trio.open_nursery() as nursery:
        for name, members in names.items():
            nursery.start_soon(look, name, members)
    return [out[n] for n in sorted(out)]
