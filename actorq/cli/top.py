"""``actorq top``: ``queues`` and ``ps`` together, live, with per-queue and per-process
job rates, refreshed in place until Ctrl-C."""

from __future__ import annotations

import signal
import time
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Table

from actorq.cli.common import ConfigOpt, NamespaceOpt, UrlOpt, age, resolve, sync_client
from actorq.cli.ops import QueueStats, queue_stats
from actorq.cli.ps import read_all, tree_nodes
from actorq.process.heartbeat import ProcReport, state_of


async def _snapshot(client: Any) -> tuple[list[QueueStats], list[ProcReport], dict[int, str]]:
    reports, trees = await read_all(client)
    # Unnamed processes go by their child id in the tree, as in `actorq ps`.
    names = {pid: node.path.rsplit("/", 1)[-1] for pid, node in tree_nodes(trees).items()}
    return await queue_stats(client), reports, names


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


def _table(title: str, headers: tuple[str, ...], left: tuple[str, ...]) -> Table:
    # Headers never shrink below their own width (at 80 columns rich would cut them to
    # "re…"); short ones keep a frame of twelve columns on an 80-column terminal.
    table = Table(title=title, expand=True, box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
    for col in headers:
        table.add_column(
            col, justify="left" if col in left else "right", min_width=len(col), no_wrap=True
        )
    return table


def render(
    queues: list[QueueStats],
    reports: list[ProcReport],
    rates: dict[tuple[str, int], float],
    names: dict[int, str] | None = None,
) -> Group:
    """One frame: the queues table above the processes table."""
    names = names or {}
    now = time.time()
    per_queue: dict[str, float] = {}
    for r in reports:
        if r.queue:
            per_queue[r.queue] = per_queue.get(r.queue, 0.0) + rates.get((r.host, r.pid), 0.0)
    qt = _table(
        "queues", ("queue", "pending", "in flight", "redeliv", "workers", "jobs/s", "oldest"),
        ("queue",),
    )  # fmt: skip
    for q in queues:
        qt.add_row(
            q.queue, str(q.pending), str(q.in_flight), str(q.redelivered), str(q.workers),
            f"{per_queue.get(q.queue, 0.0):.1f}", age(q.oldest_pending_age),
        )  # fmt: skip
    hosts = {r.host for r in reports}
    # The host column only when there is more than one (the title names a single one).
    many = len(hosts) > 1
    pt = _table(
        "processes" if many or not hosts else f"processes on {next(iter(hosts))}",
        # Uptime is in `actorq ps`; here the columns fit an 80-column terminal.
        (*(("host",) if many else ()), "role/queue", "name", "pid", "state", "cpu%",
         "rssMB", "active", "done", "failed", "jobs/s"),
        ("host", "role/queue", "name"),
    )  # fmt: skip
    for r in sorted(reports, key=lambda r: (r.host, r.queue or "", r.name, r.pid)):
        state = state_of(r, now)
        pt.add_row(
            *((r.host,) if many else ()),
            r.queue or r.role, r.name or names.get(r.pid, "-"), str(r.pid),
            f"[red]{state}[/red]" if state == "lost" else state,
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
                    queues, reports, names = client.run(_snapshot)
                    frame = render(queues, reports, rates.update(reports), names)
                    live.update(frame, refresh=True)
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    """Add ``top`` to the ``actorq`` app."""
    app.command("top")(top)
