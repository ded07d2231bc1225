"""``actorq up``'s Prometheus endpoint: one ``/metrics`` for the whole runtime.

Gathered from what the processes already publish, not from a metrics library in
each of them: every queue actor's heartbeat (:mod:`actorq.process.heartbeat`, every 2 s)
carries its per-function job counters and duration histogram
(:mod:`actorq.process.job_counts`), its CPU time and RSS; the scheduler's carries how
late it handled each recurring schedule's fire (``actorq_scheduler_lag_seconds``,
the time from a fire's due time to its handling); the queues' figures come
from their consumers; restarts from this ``actorq up``'s own supervision tree. A scrape
reads them then (a KV read per process, one consumer listing), so nothing runs
between scrapes and a job costs its processes a few dict increments.

``prometheus_client``'s multiprocess mode was the other way: it writes every
increment of every process to a memory-mapped file in a shared directory, which
``actorq up`` would then have to create, hand to each child, and clean of dead
processes' files, and it sees only one host. The heartbeats already cross hosts.

Counters must only grow, while processes come and go: the endpoint keeps the last
report of every process it has seen (by host and pid) and sums them all, so a
process that stopped still counts what it did. prometheus_client provides the text
format (:func:`prometheus_client.generate_latest`); the HTTP side is a few lines of
Trio, so the endpoint lives in ``actorq up``'s own loop, not in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from actorq.exceptions import ActorqError
from actorq.jobs.stats import unserved_queues
from actorq.jobs.streams import JobStreams
from actorq.nats.connection import Connection, open_nats
from actorq.process.heartbeat import ProcReport, is_tree_key, procs_bucket, state_of
from actorq.process.job_counts import DURATION_BUCKETS, LAG_BUCKETS
from supervisors import ChildSnapshot

__all__ = ["MetricsState", "serve_metrics"]

log = logging.getLogger("actorq.up.metrics")

#: Longest request head read from a scraper.
_MAX_REQUEST = 8192
#: Bound on one scrape's reads from NATS and its reply.
_SCRAPE_TIMEOUT = 10.0

_COUNTERS = ("started", "succeeded", "retried", "failed", "dead", "cancelled")


class _QueueFigures(msgspec.Struct, frozen=True):
    pending: int
    in_flight: int
    redelivered: int


class MetricsState(Collector):
    """What the last scrape read, and every process report seen so far."""

    def __init__(self, conn: Connection, namespace: str, tree: Callable[[], ChildSnapshot]):
        self.conn = conn
        self.namespace = namespace
        self.streams = JobStreams(namespace)
        self.tree = tree
        #: The last report of every process ever seen, by (host, pid).
        self.reports: dict[tuple[str, int], ProcReport] = {}
        self.queues: dict[str, _QueueFigures] = {}

    async def refresh(self) -> None:
        """Read every process's heartbeat and every queue's consumer."""
        try:
            kv = await self.conn.kv(procs_bucket(self.namespace))
            for key in await kv.keys():
                if is_tree_key(key):
                    continue
                entry = await kv.get(key)
                if entry is None or not entry.value:
                    continue
                report = msgspec.json.decode(entry.value, type=ProcReport)
                seen = self.reports.get((report.host, report.pid))
                if seen is None or report.at >= seen.at:
                    self.reports[(report.host, report.pid)] = report
        except ActorqError as exc:  # no bucket yet (no process reported), or NATS away
            log.debug("heartbeats not read: %s", exc)
        prefix = "q-"
        queues: dict[str, _QueueFigures] = {}
        infos = await self.conn.jsm("consumers_info", self.streams.jobs_stream)
        for info in infos:
            if info.name.startswith(prefix):
                queues[info.name[len(prefix) :]] = _QueueFigures(
                    pending=int(info.num_pending or 0),
                    in_flight=int(info.num_ack_pending or 0),
                    redelivered=int(info.num_redelivered or 0),
                )
        # Queues holding jobs nobody serves have no consumer, but a depth all the same.
        for queue, count in (await unserved_queues(self.conn, self.streams, infos)).items():
            queues[queue] = _QueueFigures(pending=count, in_flight=0, redelivered=0)
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        """The metric families, from what :meth:`refresh` read (prometheus_client's
        collector interface)."""
        labels = ["queue", "function"]
        counters = {
            name: CounterMetricFamily(
                f"actorq_jobs_{name}", f"Job attempts {name}, by queue and function.", labels=labels
            )
            for name in _COUNTERS
        }
        hist = HistogramMetricFamily(
            "actorq_job_duration_seconds", "Duration of finished job attempts.", labels=labels
        )
        sums: dict[tuple[str, str], dict[str, float]] = {}
        buckets: dict[tuple[str, str], list[int]] = {}
        durations: dict[tuple[str, str], float] = {}
        finished: dict[str, float] = {}
        for report in self.reports.values():
            for function, counts in report.jobs.items():
                key = (counts.queue, function)
                into = sums.setdefault(key, dict.fromkeys(_COUNTERS, 0.0))
                for name in _COUNTERS:
                    into[name] += getattr(counts, name)
                have = buckets.setdefault(key, [0] * (len(DURATION_BUCKETS) + 1))
                for i, n in enumerate(counts.buckets[: len(have)]):
                    have[i] += n
                durations[key] = durations.get(key, 0.0) + counts.duration_sum
                finished[counts.queue] = finished.get(counts.queue, 0.0) + (
                    counts.succeeded + counts.failed + counts.dead + counts.cancelled
                )
        for key, values in sorted(sums.items()):
            for name in _COUNTERS:
                counters[name].add_metric(list(key), values[name])
            cumulative, running = [], 0
            for bound, n in zip((*map(str, DURATION_BUCKETS), "+Inf"), buckets[key], strict=True):
                running += n
                cumulative.append((bound, float(running)))
            hist.add_metric(list(key), cumulative, durations[key])
        yield from counters.values()
        yield hist
        yield from self._queue_metrics(finished)
        yield self._scheduler_lag()
        yield self._restarts()
        yield from self._processes()

    def _queue_metrics(self, finished: dict[str, float]) -> Iterator[Metric]:
        depth = GaugeMetricFamily("actorq_queue_depth", "Jobs waiting.", labels=["queue"])
        flight = GaugeMetricFamily(
            "actorq_jobs_in_flight", "Jobs delivered, not yet acked.", labels=["queue"]
        )
        redelivered = GaugeMetricFamily(
            "actorq_jobs_redelivered",
            "Jobs delivered more than once, not yet acked.",
            labels=["queue"],
        )
        enqueued = CounterMetricFamily(
            "actorq_jobs_enqueued",
            "Jobs that reached the queue: waiting, in flight or finished for good.",
            labels=["queue"],
        )
        for queue, q in sorted(self.queues.items()):
            depth.add_metric([queue], q.pending)
            flight.add_metric([queue], q.in_flight)
            redelivered.add_metric([queue], q.redelivered)
            enqueued.add_metric([queue], q.pending + q.in_flight + finished.get(queue, 0.0))
        yield from (depth, flight, redelivered, enqueued)

    def _scheduler_lag(self) -> Metric:
        """How late recurring schedules fired: every scheduler's histogram, summed
        (only the leader handles fires; a standby's stays empty)."""
        family = HistogramMetricFamily(
            "actorq_scheduler_lag_seconds",
            "Seconds from a recurring schedule's due time to its scheduler handling the fire.",
        )
        counts = [0] * (len(LAG_BUCKETS) + 1)
        total = 0.0
        for report in self.reports.values():
            if report.schedule_lag is not None:
                for i, n in enumerate(report.schedule_lag.buckets[: len(counts)]):
                    counts[i] += n
                total += report.schedule_lag.total
        cumulative, running = [], 0
        for bound, n in zip((*map(str, LAG_BUCKETS), "+Inf"), counts, strict=True):
            running += n
            cumulative.append((bound, float(running)))
        family.add_metric([], cumulative, total)
        return family

    def _restarts(self) -> Metric:
        family = CounterMetricFamily(
            "actorq_child_restarts", "Restarts of each child of the tree.", labels=["child"]
        )

        def walk(node: ChildSnapshot, parent: str) -> None:
            path = f"{parent}/{node.id}" if parent else node.id
            if parent:
                family.add_metric([path], node.restarts)
            for child in node.children:
                walk(child, path)

        walk(self.tree(), "")
        return family

    def _processes(self) -> Iterator[Metric]:
        labels = ["role", "queue", "name", "host", "pid"]
        cpu = CounterMetricFamily(
            "actorq_process_cpu_seconds", "CPU time of each live process.", labels=labels
        )
        rss = GaugeMetricFamily(
            "actorq_process_resident_memory_bytes", "RSS of each live process.", labels=labels
        )
        for report in sorted(self.reports.values(), key=lambda r: (r.host, r.pid)):
            if state_of(report) == "lost":
                continue
            values = [report.role, report.queue or "", report.name, report.host, str(report.pid)]
            cpu.add_metric(values, report.cpu_seconds)
            rss.add_metric(values, report.rss_bytes)
        yield from (cpu, rss)


async def serve_metrics(
    urls: list[str],
    connect: dict[str, Any],
    namespace: str,
    tree: Callable[[], ChildSnapshot],
    *,
    host: str,
    port: int,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``GET /metrics`` on ``host:port`` until cancelled."""
    async with open_nats(urls, name="actorq-metrics", **connect) as conn:
        state = MetricsState(conn, namespace, tree)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(state)
        lock = trio.Lock()  # one scrape reads at a time: the state is shared

        async def handle(stream: trio.SocketStream) -> None:
            async with stream:
                with trio.move_on_after(_SCRAPE_TIMEOUT):
                    head = b""
                    while b"\r\n\r\n" not in head and len(head) < _MAX_REQUEST:
                        chunk = await stream.receive_some(4096)
                        if not chunk:
                            return
                        head += chunk
                    method, _, rest = head.partition(b" ")
                    path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
                    if method != b"GET" or path != b"/metrics":
                        await stream.send_all(_reply(404, b"try /metrics\n", "text/plain"))
                        return
                    try:
                        async with lock:
                            await state.refresh()
                            body = generate_latest(registry)
                    except ActorqError as exc:
                        await stream.send_all(_reply(503, f"{exc}\n".encode(), "text/plain"))
                        return
                    await stream.send_all(
                        _reply(200, body, "text/plain; version=0.0.4; charset=utf-8")
                    )

        listeners = await trio.open_tcp_listeners(port, host=host)
        log.info("metrics at http://%s:%d/metrics", host, port)
        task_status.started()
        await trio.serve_listeners(handle, listeners)


def _reply(status: int, body: bytes, content_type: str) -> bytes:
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
