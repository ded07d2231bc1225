"""What the runtime publishes about itself, read back: process reports and supervision
trees from the heartbeat bucket (see :mod:`actorq.process.heartbeat`), and each queue's
figures from its consumer. ``actorq ps``, ``actorq queues`` and the dashboard read these."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from actorq.exceptions import ActorqError, NotFound
from actorq.process.heartbeat import ProcReport, is_tree_key, procs_bucket, state_of
from supervisors import ChildSnapshot

__all__ = [
    "QueueStats",
    "TreeNode",
    "queue_stats",
    "read_all",
    "read_reports",
    "tree_nodes",
    "unserved_queues",
]


class TreeNode(msgspec.Struct, frozen=True):
    """Where a process sits in a published supervision tree."""

    path: str
    supervisor: str
    restarts: int


async def read_all(client: Any) -> tuple[list[ProcReport], list[ChildSnapshot]]:
    """Every report and supervision tree in the namespace's heartbeat bucket (none if
    it does not exist yet)."""
    try:
        kv = await client.conn.kv(procs_bucket(client.streams.ns.name))
        keys = await kv.keys()
    except ActorqError:
        return [], []
    reports = []
    trees = []
    for key in keys:
        entry = await kv.get(key)
        if entry is None or not entry.value:
            continue
        if is_tree_key(key):
            trees.append(msgspec.json.decode(entry.value, type=ChildSnapshot))
        else:
            reports.append(msgspec.json.decode(entry.value, type=ProcReport))
    return reports, trees


async def read_reports(client: Any) -> list[ProcReport]:
    """Every report in the namespace's heartbeat bucket (none if it does not exist yet)."""
    return (await read_all(client))[0]


def tree_nodes(trees: list[ChildSnapshot]) -> dict[int, TreeNode]:
    """The process children of ``trees`` by pid: path, supervisor path, restarts."""
    nodes: dict[int, TreeNode] = {}

    def add(node: ChildSnapshot, parent: str) -> None:
        path = f"{parent}/{node.id}" if parent else node.id
        if node.kind != "supervisor" and node.pid is not None:
            nodes[node.pid] = TreeNode(path=path, supervisor=parent, restarts=node.restarts)
        for child in node.children:
            add(child, path)

    for tree in trees:
        add(tree, "")
    return nodes


def standbys(trees: list[ChildSnapshot]) -> dict[int, str]:
    """Parked warm standbys of ``trees`` (spare processes, not serving): pid ->
    the path of the supervisor that keeps it."""
    found: dict[int, str] = {}

    def add(node: ChildSnapshot, parent: str) -> None:
        path = f"{parent}/{node.id}" if parent else node.id
        for pid in node.standby_pids:
            found[pid] = path
        for child in node.children:
            add(child, path)

    for tree in trees:
        add(tree, "")
    return found


#: Queues are the durable consumers named ``q-<queue>`` on the jobs stream.
_PREFIX = "q-"


class QueueStats(msgspec.Struct, frozen=True):
    """One queue's figures, from its consumer's info."""

    queue: str
    pending: int
    in_flight: int
    redelivered: int
    #: Live queue actor processes serving it, from their heartbeats (steady, unlike
    #: the consumer's waiting pull requests, which come and go with every fetch).
    workers: int
    oldest_pending_age: float | None
    #: Sum of the live queue actors' rates from their last heartbeats.
    jobs_per_s: float = 0.0


async def queue_stats(client: Any, reports: list[ProcReport] | None = None) -> list[QueueStats]:
    """Figures of every queue of the client's namespace, by name; the rates come from
    ``reports`` (default: read from the heartbeat bucket now)."""
    streams = client.streams
    conn = client.conn
    infos = await conn.jsm("consumers_info", streams.jobs_stream)
    rates: dict[str, float] = {}
    workers: dict[str, int] = {}
    now = time.time()
    if reports is None:
        reports = await read_reports(client)
    for report in reports:
        if report.role == "queue" and report.queue and state_of(report, now) != "lost":
            rates[report.queue] = rates.get(report.queue, 0.0) + report.jobs_per_s
            workers[report.queue] = workers.get(report.queue, 0) + 1
    out: list[QueueStats] = []
    for info in sorted(infos, key=lambda i: i.name):
        if not info.name.startswith(_PREFIX):
            continue
        queue = info.name[len(_PREFIX) :]
        oldest: float | None = None
        if info.num_pending:
            # The first message past what the consumer delivered is the oldest waiting.
            oldest = await _age_of_first(conn, streams, queue, (info.delivered.stream_seq or 0) + 1)
        out.append(
            QueueStats(
                queue=queue,
                pending=int(info.num_pending or 0),
                in_flight=int(info.num_ack_pending or 0),
                redelivered=int(info.num_redelivered or 0),
                workers=workers.get(queue, 0),
                oldest_pending_age=oldest,
                jobs_per_s=round(rates.get(queue, 0.0), 2),
            )
        )
    for queue, count in (await unserved_queues(conn, streams, infos)).items():
        oldest = await _age_of_first(conn, streams, queue, 1)
        out.append(
            QueueStats(queue=queue, pending=count, in_flight=0, redelivered=0, workers=0,
                       oldest_pending_age=oldest)
        )  # fmt: skip
    out.sort(key=lambda s: s.queue)
    return out


async def unserved_queues(conn: Any, streams: Any, infos: list[Any]) -> dict[str, int]:
    """Queues holding jobs that no consumer serves, with their job counts (``infos``:
    the jobs stream's consumers, as read just before).

    A queue has a consumer once a worker served it, or a client warned about it (see
    :meth:`actorq.Client.served`), but jobs can get there otherwise: a recurring
    schedule of a queue nobody serves, a client not allowed to create consumers, a
    raw publish. Listing the stream's subjects costs a line per job, so it is done
    only when the stream holds more messages than its consumers and the scheduler's
    timers account for (two small requests otherwise). A listing is one page of the
    server's (up to 100,000 subjects).
    """
    info = await conn.jsm("stream_info", streams.jobs_stream)
    held = int(info.state.messages or 0)
    for c in infos:
        held -= int(c.num_pending or 0) + int(c.num_ack_pending or 0)
    if held <= 0:
        return {}
    timers = await conn.jsm(
        "stream_info", streams.jobs_stream, subjects_filter=streams.ns.subject("sched.>")
    )
    held -= sum((timers.state.subjects or {}).values())
    if held <= 0:
        return {}
    served = {c.name[len(_PREFIX) :] for c in infos if c.name.startswith(_PREFIX)}
    listed = await conn.jsm(
        "stream_info", streams.jobs_stream, subjects_filter=streams.ns.subject("jobs.*.*")
    )
    counts: dict[str, int] = {}
    cut = len(streams.ns.subject("jobs."))
    for subject, n in (listed.state.subjects or {}).items():
        queue = subject[cut:].split(".", 1)[0]
        if queue not in served:
            counts[queue] = counts.get(queue, 0) + int(n)
    return counts


async def _age_of_first(conn: Any, streams: Any, queue: str, start: int) -> float | None:
    """Seconds since the first job of ``queue`` at or after stream sequence ``start``
    was stored (``None``: there is none)."""
    try:
        msg = await conn.jsm(
            "get_msg",
            streams.jobs_stream,
            seq=start,
            subject=streams.queue_filter(queue),
            next=True,
        )
    except NotFound:
        return None
    return None if msg.time is None else time.time() - msg.time.timestamp()
