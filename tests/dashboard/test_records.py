"""The job index behind the jobs page: counts, filters, pages, speed at 100k records."""

from __future__ import annotations

import time

from actorq.dashboard.records import RecordIndex
from actorq.dashboard.summary import LIMIT, summarize
from actorq.wire.codec import get_codec
from actorq.wire.messages import ErrorInfo, JobRecord, encode


def _record(i: int, status: str = "succeeded", queue: str = "default") -> bytes:
    error = ErrorInfo(type="ValueError", message=f"bad {i}") if status == "failed" else None
    return encode(
        JobRecord(
            id=f"job-{i:06d}", queue=queue, function="app:work", status=status,
            enqueued_at=1_000_000.0 + i, attempts=1, error=error,
        )
    )  # fmt: skip


def test_updates_keep_counts_and_a_jobs_place() -> None:
    index = RecordIndex()
    for i in range(5):
        index.apply(f"job-{i:06d}", _record(i, "queued"))
    index.apply("job-000002", _record(2, "failed"))
    index.apply("job-000003", None)
    assert index.status_counts() == {"failed": 1, "queued": 3}
    page = index.query(per_page=2)
    assert page.total == 4
    assert [r.id for r in page.rows] == ["job-000004", "job-000002"]
    assert page.rows[1].error == "ValueError: bad 2"
    index.apply("bad", b"\x00not msgpack")
    assert len(index.rows) == 4


def test_a_page_of_100k_records_is_found_in_milliseconds() -> None:
    index = RecordIndex()
    for i in range(100_000):
        status = "failed" if i % 100 == 0 else "succeeded"
        index.apply(f"job-{i:06d}", _record(i, status, "q" + str(i % 3)))
    index.sort()
    worst = 0.0
    for kwargs in (
        {}, {"page": 1500}, {"status": "failed"}, {"queue": "q1", "status": "failed", "page": 3},
        {"search": "job-050000"}, {"search": "0500"},
    ):  # fmt: skip
        start = time.perf_counter()
        page = index.query(**kwargs)  # type: ignore[arg-type]
        worst = max(worst, time.perf_counter() - start)
        assert page.rows or page.total == 0
    assert index.query(status="failed").total == 1000
    assert index.query(search="job-050000").rows[0].id == "job-050000"
    assert worst < 0.1


def test_summaries_are_bounded_and_never_unpickle() -> None:
    pickled = get_codec("pickle").encode_call(print, ("<b>x</b>", 7), {"flag": True})
    text = summarize("pickle", pickled)
    assert "'<b>x</b>'" in text
    assert "7" in text
    assert "builtins" not in text  # the function reference is left out
    safe = get_codec("safe").encode_call(print, ("a" * 1000,), {})
    assert len(summarize("safe", safe)) == LIMIT
    # A pickle that would run code when loaded is only parsed.
    evil = b"cos\nsystem\n(S'touch /tmp/actorq-pwned'\ntR."
    assert "touch" in summarize("pickle", evil)
    assert summarize("pickle", b"\x80\x05garbage").startswith("pickle, ")


def test_runtime_actor_names_are_the_ones_the_runtime_serves() -> None:
    from actorq.dashboard.gather import runtime_actor_name
    from actorq.process.heartbeat import ProcReport
    from actorq.runtime.probes import RESULTS_PROBE, SCHEDULER_PROBE, queue_probe

    def report(role: str, queue: str | None = None) -> ProcReport:
        return ProcReport(pid=1, host="h", role=role, queue=queue, at=0.0, started_at=0.0)

    assert runtime_actor_name(report("queue", "emails")) == queue_probe("emails")
    assert runtime_actor_name(report("results")) == RESULTS_PROBE
    assert runtime_actor_name(report("scheduler")) == SCHEDULER_PROBE
    assert runtime_actor_name(report("actor")) is None
