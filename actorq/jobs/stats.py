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

__all__ = ["QueueStats", "TreeNode", "queue_stats", "read_all", "read_reports", "tree_nodes"]


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
            start = (info.delivered.stream_seq or 0) + 1
            try:
                msg = await conn.jsm(
                    "get_msg",
                    streams.jobs_stream,
                    seq=start,
                    subject=streams.queue_filter(queue),
                    next=True,
                )
            except NotFound:
                pass
            else:
                if msg.time is not None:
                    oldest = time.time() - msg.time.timestamp()
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
    return out
