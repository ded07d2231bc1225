"""The job lifecycle end to end, actors as Trio tasks against a real nats-server."""

from __future__ import annotations

import pytest
import trio

from actorq import JobFailed

from . import jobfuncs
from .jobs_harness import open_runtime


async def test_a_sync_function_returns_its_result(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.enqueue(jobfuncs.add, 2, 3)
            assert await job.result(timeout=10) == 5
            assert await job.status() == "succeeded"


async def test_trio_and_asyncio_coroutines_run(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            a = await rt.client.enqueue(jobfuncs.trio_mul, 6, 7)
            b = await rt.client.enqueue(jobfuncs.asyncio_echo, "hi")
            assert await a.result(timeout=10) == 42
            assert await b.result(timeout=10) == "asyncio:hi"


async def test_an_exception_comes_back_with_the_remote_traceback(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_runtime(nats_url) as rt:
            job = await rt.client.options(max_retries=0).enqueue(jobfuncs.boom, "kaput")
            with pytest.raises(JobFailed) as info:
                await job.result(timeout=10)
    assert info.value.exc_type == "ValueError"
    assert info.value.exc_message == "kaput"
    assert "in boom" in info.value.traceback
