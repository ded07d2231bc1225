"""``actorq ps``: every reporting process, host -> role/queue -> process, from heartbeats
(see :mod:`actorq.process.heartbeat`)."""

from __future__ import annotations

import time

import msgspec
import typer

from actorq.cli.common import (
    ConfigOpt,
    JsonOpt,
    NamespaceOpt,
    UrlOpt,
    age,
    print_json,
    resolve,
    sync_client,
)
from actorq.jobs.stats import TreeNode as TreeNode
from actorq.jobs.stats import read_all as read_all
from actorq.jobs.stats import read_reports as read_reports
from actorq.jobs.stats import standbys
from actorq.jobs.stats import tree_nodes as tree_nodes
from actorq.process.heartbeat import state_of


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f}MB"


def ps(
    json_: JsonOpt = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Every process that reports heartbeats: pid, state, uptime, restarts, CPU, RSS,
    open files, jobs.

    A process whose reports stopped (killed, frozen, cut off) shows as ``lost``.
    Parked warm standbys (spare queue actor processes, not serving) are listed last.
    """
    with sync_client(resolve(url, config, namespace)) as client:
        reports, trees = client.run(read_all)
    nodes = tree_nodes(trees)
    now = time.time()
    reports.sort(key=lambda r: (r.host, r.role, r.queue or "", r.name, r.pid))
    if json_:
        rows = []
        for r in reports:
            row = msgspec.to_builtins(r)
            row["state"] = state_of(r, now)
            row["uptime"] = now - r.started_at
            row["last_seen"] = now - r.at
            node = nodes.get(r.pid)
            row["restarts"] = node.restarts if node else None
            row["path"] = node.path if node else None
            row["supervisor"] = node.supervisor if node else None
            rows.append(row)
        print_json(rows)
        return
    if not reports:
        typer.echo("no process reports (is `actorq up` running in this namespace?)")
        return
    host = group = None
    for r in reports:
        if r.host != host:
            host, group = r.host, None
            typer.echo(host)
        node = nodes.get(r.pid)
        this = f"{r.role} {r.queue}" if r.queue else r.role
        if node:
            this += f"  ({node.supervisor})"
        if this != group:
            group = this
            typer.echo(f"  {group}")
        restarts = node.restarts if node else "?"
        # Unnamed processes go by their child id in the tree (default-0, results).
        name = r.name or (node.path.rsplit("/", 1)[-1] if node else "-")
        jobs = (
            f" active {len(r.active_jobs)} done {r.processed} failed {r.failed}"
            f" retried {r.retried}"
            if r.role == "queue"
            else ""
        )
        typer.echo(
            f"    {name:<12} pid {r.pid:<7} {state_of(r, now):<8} "
            f"up {age(now - r.started_at):<7} restarts {restarts:<2} "
            f"cpu {r.cpu_percent:5.1f}% rss {_mb(r.rss_bytes):>6} "
            + (
                f"thr {r.threads:<3} fds {r.open_files:<4}{jobs}"
                + (f"  last error: {r.last_error[:60]}" if r.last_error else "")
            ).rstrip()
        )
    for pid, supervisor in sorted(standbys(trees).items()):
        typer.echo(f"  standby pid {pid:<7} parked (a spare of {supervisor}, not serving)")


def register(app: typer.Typer) -> None:
    """Add ``ps`` to the ``actorq`` app."""
    app.command("ps")(ps)
