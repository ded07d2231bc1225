"""One log line per finished job: INFO on success, WARNING per retry, ERROR on the
final failure with the exception's one-line summary; JSON lines carry the fields."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from actorq import JobFailed, RetryBackoff
from actorq.jobs.job_log import JobLines
from actorq.runtime.child import JsonFormatter, TextFormatter
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import open_runtime

pytestmark = pytest.mark.timeout(60)


def _lines(caplog: pytest.LogCaptureFixture, job_id: str) -> list[logging.LogRecord]:
    """The job's records; a batch record of finished jobs counts for each of its jobs."""
    return [
        r for r in caplog.records
        if r.name == "actorq.job"
        and (job_id in str(r.msg) if isinstance(r.msg, JobLines) else r.job_id == job_id)  # type: ignore[attr-defined]
    ]  # fmt: skip


def _job_line(record: logging.LogRecord, job_id: str) -> tuple[str, dict[str, Any]]:
    assert isinstance(record.msg, JobLines)
    (line,) = [(text, fields) for text, fields in record.msg.each() if fields["job_id"] == job_id]
    return line


async def test_each_finished_job_logs_one_line_and_retries_and_failures_say_why(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="actorq.job")
    async with open_runtime(nats_url) as rt:
        ok = await rt.client.enqueue(jobfuncs.add, 2, 3)
        assert await ok.result(timeout=30) == 5
        fast = RetryBackoff(kind="fixed", base=0.05, jitter=False)
        bad = await rt.client.options(max_retries=1, backoff=fast).enqueue(jobfuncs.boom, "kaput")
        with pytest.raises(JobFailed):
            await bad.result(timeout=30)
    (done,) = _lines(caplog, ok.id)
    assert done.levelno == logging.INFO
    text, fields = _job_line(done, ok.id)
    assert text.startswith(f"default {ok.id} tests.helpers.jobfuncs")
    assert "add attempt 1 succeeded in " in text
    assert (fields["queue"], fields["attempt"], fields["outcome"]) == ("default", 1, "succeeded")
    assert fields["duration"] >= 0
    # The text format: one line per job, each with its time, level and logger.
    (shown,) = [x for x in TextFormatter().format(done).splitlines() if ok.id in x]
    assert " INFO    actorq.job[" in shown
    assert shown.endswith(text)
    (as_json,) = [json.loads(x) for x in JsonFormatter().format(done).splitlines() if ok.id in x]
    assert (as_json["job_id"], as_json["queue"], as_json["msg"]) == (ok.id, "default", text)
    retry, final = _lines(caplog, bad.id)
    assert retry.levelno == logging.WARNING
    assert "attempt 1 failed in" in retry.getMessage()
    assert ", retry in " in retry.getMessage()
    assert retry.getMessage().endswith("s: ValueError: kaput")
    assert final.levelno == logging.ERROR
    assert "attempt 2 failed in" in final.getMessage()
    assert final.getMessage().endswith("giving up: ValueError: kaput")
    # JSON lines: the job's figures are fields, not only words in the message.
    entry = json.loads(JsonFormatter().format(final))
    assert entry["job_id"] == bad.id
    assert entry["queue"] == "default"
    assert entry["outcome"] == "failed"
    assert entry["attempt"] == 2
    assert entry["level"] == "ERROR"


async def test_no_job_line_is_made_when_info_is_off(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="actorq.job")
    async with open_runtime(nats_url) as rt:
        job = await rt.client.enqueue(jobfuncs.add, 1, 1)
        assert await job.result(timeout=30) == 2
    assert _lines(caplog, job.id) == []
