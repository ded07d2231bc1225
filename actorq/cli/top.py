"""``actorq top``: ``queues`` and ``ps`` together, live, with per-queue and per-process
job rates, refreshed in place until Ctrl-C."""

from __future__ import annotations

import signal
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from actorq.cli.common import ConfigOpt, NamespaceOpt, UrlOpt, age, resolve, sync_client
from actorq.cli.ops import QueueStats, queue_stats
from actorq.cli.ps import read_reports
from actorq.process.heartbeat import ProcReport, state_of


async def _snapshot(client: Any) -> tuple[list[QueueStats], list[ProcReport]]:
    return await queue_stats(client), await read_reports(client)


class _Rates:
    """Jobs/s per process from the change of its ``processed`` count between frames."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], tuple[float, int]] = {}
        self._rate: dict[tuple[str, int], float] = {}

    def update(self, reports: list[ProcReport]) -> dict[tuple[str, int], float]:
        for r in reports:
            key = (r.host, r.pid)
            before = self._last.get(key)
            # Only a newer report moves the rate; between beats the last one stands.
            if before is not None and r.at > before[0]:
                self._rate[key] = (r.processed - before[1]) / (r.at - before[0])
            if before is None or r.at > before[0]:
                self._last[key] = (r.at, r.processed)
        return dict(self._rate)


def render(
    queues: list[QueueStats], reports: list[ProcReport], rates: dict[tuple[str, int], float]
) -> Group:
    """One frame: the queues table above the processes table."""
    now = time.time()
    per_queue: dict[str, float] = {}
    for r in reports:
        if r.queue:
            per_queue[r.queue] = per_queue.get(r.queue, 0.0) + rates.get((r.host, r.pid), 0.0)
    qt = Table(title="queues", expand=True)
    for col in ("queue", "pending", "in flight", "redelivered", "consumers", "jobs/s", "oldest"):
        qt.add_column(col, justify="left" if col == "queue" else "right")
    for q in queues:
        qt.add_row(
            q.queue, str(q.pending), str(q.in_flight), str(q.redelivered), str(q.consumers),
            f"{per_queue.get(q.queue, 0.0):.1f}", age(q.oldest_pending_age),
        )  # fmt: skip
    pt = Table(title="processes", expand=True)
    for col in ("host", "role/queue", "name", "pid", "state", "up", "cpu %", "rss MB",
                "active", "done", "failed", "jobs/s"):  # fmt: skip
        pt.add_column(col, justify="right" if col not in ("host", "role/queue", "name") else "left")
    for r in sorted(reports, key=lambda r: (r.host, r.queue or "", r.name, r.pid)):
        state = state_of(r, now)
        pt.add_row(
            r.host, f"{r.role} {r.queue}" if r.queue else r.role, r.name or "-", str(r.pid),
            f"[red]{state}[/red]" if state == "lost" else state, age(now - r.started_at),
            f"{r.cpu_percent:.1f}", f"{r.rss_bytes / 2**20:.0f}", str(len(r.active_jobs)),
            str(r.processed), str(r.failed), f"{rates.get((r.host, r.pid), 0.0):.1f}",
        )  # fmt: skip
    return Group(qt, pt)


def top(
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Queues and processes, live, with job rates; refreshes in place until Ctrl-C."""
    # A process started from a background shell inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rates = _Rates()
    with sync_client(resolve(url, config, namespace)) as client:
        try:
            with Live(auto_refresh=False, screen=False) as live:
                while True:
                    queues, reports = client.run(_snapshot)
                    live.update(render(queues, reports, rates.update(reports)), refresh=True)
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    """Add ``top`` to the ``actorq`` app."""
    app.command("top")(top)
