"""`actorq up`'s Prometheus endpoint, scraped with prometheus_client's own text parser
while jobs run: per-function job counters, the duration histogram, queue figures,
restarts and process figures; off by default."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actorq import JobFailed, RetryBackoff, SyncClient
from actorq.config.schema import loads_config
from actorq.nats.embedded_server import free_port
from tests.helpers import jobfuncs
from tests.helpers.up_harness import Up, run_up, up_env, wait_gone

pytestmark = pytest.mark.timeout(180)

ADD = "tests.helpers.jobfuncs:add"
BOOM = "tests.helpers.jobfuncs:boom"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("metrics_up")
    port = free_port()
    with run_up(tmp, up_env(tmp / "nats", ACTORQ_METRICS_PORT=str(port))) as running:
        running.ready()
        running.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
        yield running
        running.close()
    assert wait_gone(running.seen) == set()


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = reply.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_until(url: str, done: Callable[[Samples], bool], timeout: float = 30.0) -> Samples:
    """Scrape until ``done`` holds: counters move with the processes' heartbeats (2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.25)


def test_a_scrape_counts_the_jobs_run_by_queue_and_function(up: Up) -> None:
    url: str = up.metrics_url  # type: ignore[attr-defined]
    before = scrape(url)
    fast = RetryBackoff(kind="fixed", base=0.05, jitter=False)
    with SyncClient(up.url) as client:
        slow = client.enqueue(jobfuncs.trio_sleep, 30.0)  # runs while we scrape
        oks = [client.enqueue(jobfuncs.add, i, 1) for i in range(10)]
        bads = [client.options(max_retries=1, backoff=fast).enqueue(jobfuncs.boom, "x")
                for _ in range(3)]  # fmt: skip
        assert [j.result(timeout=60) for j in oks] == [i + 1 for i in range(10)]
        for job in bads:
            with pytest.raises(JobFailed):
                job.result(timeout=60)

        def counted(s: Samples) -> bool:
            return (
                value(s, "actorq_jobs_succeeded_total", queue="default", function=ADD)
                - value(before, "actorq_jobs_succeeded_total", queue="default", function=ADD)
                >= 10
                and value(s, "actorq_jobs_failed_total", queue="default", function=BOOM) >= 3
                and value(s, "actorq_jobs_in_flight", queue="default") >= 1
            )

        after = scrape_until(url, counted)
        client.cancel(slow.id)

    def delta(name: str, function: str) -> float:
        labels = {"queue": "default", "function": function}
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("actorq_jobs_succeeded_total", ADD) == 10
    assert delta("actorq_jobs_started_total", ADD) == 10
    assert delta("actorq_jobs_retried_total", BOOM) == 3
    assert delta("actorq_jobs_failed_total", BOOM) == 3
    assert delta("actorq_jobs_started_total", BOOM) == 6
    assert delta("actorq_job_duration_seconds_count", ADD) == 10
    assert value(after, "actorq_job_duration_seconds_bucket", queue="default", function=ADD,
                 le="+Inf") == value(after, "actorq_job_duration_seconds_count", queue="default",
                                     function=ADD)  # fmt: skip
    # The slow job holds a slot while we scrape.
    assert value(after, "actorq_jobs_in_flight", queue="default") >= 1
    assert ("actorq_queue_depth", frozenset({("queue", "default")})) in after
    assert value(after, "actorq_jobs_enqueued_total", queue="default") >= 14
    # Two queue processes, each with its CPU time and memory; every child's restarts.
    rss = [
        v for (name, labels), v in after.items()
        if name == "actorq_process_resident_memory_bytes" and ("role", "queue") in labels
    ]  # fmt: skip
    assert len(rss) == 2
    assert all(v > 0 for v in rss)
    restarts = {dict(labels)["child"] for (name, labels) in after
                if name == "actorq_child_restarts_total"}  # fmt: skip
    assert "actorq/queue-default/default-0" in restarts


def test_a_scrape_has_the_scheduler_lag_of_recurring_schedules(up: Up) -> None:
    url: str = up.metrics_url  # type: ignore[attr-defined]
    before = value(scrape(url), "actorq_scheduler_lag_seconds_count")
    with SyncClient(up.url) as client:
        client.schedule("lag-probe", jobfuncs.add, 1, 2, every=1)
        try:
            after = scrape_until(
                url, lambda s: value(s, "actorq_scheduler_lag_seconds_count") >= before + 2
            )
        finally:
            client.delete_schedule("lag-probe")
    count = value(after, "actorq_scheduler_lag_seconds_count")
    assert count >= before + 2, "no fire of a 1 s schedule counted within 30 s"
    # A histogram by Prometheus's rules: cumulative buckets, +Inf holds them all; a
    # running scheduler handles a fire within seconds of its due time (30: a loaded
    # machine's bound, well under what a scheduler's absence would show).
    bounds = sorted(
        (float(dict(labels)["le"]), v) for (name, labels), v in after.items()
        if name == "actorq_scheduler_lag_seconds_bucket"
    )  # fmt: skip
    assert [v for _, v in bounds] == sorted(v for _, v in bounds)
    assert bounds[-1] == (float("inf"), count)
    assert value(after, "actorq_scheduler_lag_seconds_bucket", le="30.0") == count
    assert 0 <= value(after, "actorq_scheduler_lag_seconds_sum") < 30 * count


def test_anything_but_get_metrics_is_not_found(up: Up) -> None:
    url: str = up.metrics_url  # type: ignore[attr-defined]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url.replace("/metrics", "/"), timeout=10)
    info.value.close()
    assert info.value.code == 404


def test_metrics_are_off_unless_a_port_is_set_and_on_loopback_when_it_is(tmp_path: Path) -> None:
    assert loads_config("", check_imports=False).metrics.port is None
    on = loads_config("[metrics]\nport = 9464\n", check_imports=False).metrics
    assert (on.port, on.host) == (9464, "127.0.0.1")
