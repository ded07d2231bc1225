"""``actorq ps``: every reporting process, host -> role/queue -> process, from heartbeats
(see :mod:`actorq.heartbeat`)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import typer

from .cli_common import (
    ConfigOpt,
    JsonOpt,
    NamespaceOpt,
    UrlOpt,
    age,
    print_json,
    resolve,
    run_async,
    sync_client,
)
from .exceptions import ActorqError
from .heartbeat import ProcReport, procs_bucket, state_of


async def read_reports(client: Any) -> list[ProcReport]:
    """Every report in the namespace's heartbeat bucket (none if it does not exist yet)."""
    try:
        kv = await client.conn.kv(procs_bucket(client.streams.ns.name))
        keys = await kv.keys()
    except ActorqError:
        return []
    reports = []
    for key in keys:
        entry = await kv.get(key)
        if entry is not None and entry.value:
            reports.append(msgspec.json.decode(entry.value, type=ProcReport))
    return reports


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f}MB"


def ps(
    json_: JsonOpt = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Every process that reports heartbeats: pid, state, uptime, CPU, RSS, jobs.

    A process whose reports stopped (killed, frozen, cut off) shows as ``lost``.
    """
    with sync_client(resolve(url, config, namespace)) as client:
        reports = run_async(client, read_reports)
    now = time.time()
    reports.sort(key=lambda r: (r.host, r.role, r.queue or "", r.name, r.pid))
    if json_:
        rows = []
        for r in reports:
            row = msgspec.to_builtins(r)
            row["state"] = state_of(r, now)
            row["uptime"] = now - r.started_at
            row["last_seen"] = now - r.at
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
        this = f"{r.role} {r.queue}" if r.queue else r.role
        if this != group:
            group = this
            typer.echo(f"  {group}")
        typer.echo(
            f"    {r.name or '-':<12} pid {r.pid:<7} {state_of(r, now):<8} "
            f"up {age(now - r.started_at):<7} cpu {r.cpu_percent:5.1f}% rss {_mb(r.rss_bytes):>6} "
            f"thr {r.threads:<3} active {len(r.active_jobs)} done {r.processed} "
            f"failed {r.failed} retried {r.retried}"
            + (f"  last error: {r.last_error[:60]}" if r.last_error else "")
        )


def register(app: typer.Typer) -> None:
    """Add ``ps`` to the ``actorq`` app."""
    app.command("ps")(ps)
