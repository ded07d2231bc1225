"""The sync send helper, driven from plain threads against in-process actors."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import trio

import actorq
import actorq.jobs.default_client
import actorq.jobs.sync_client
from actorq import ConnectionFailed, JobCancelled, JobFailed, JobTimeout, SyncClient
from actorq.exceptions import ClientClosed, UsageError
from actorq.jobs.options import BoundEnqueue
from actorq.jobs.sync_client import SyncBoundEnqueue
from tests.helpers import jobfuncs
from tests.helpers.jobs_harness import Runtime, open_runtime

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking code in a plain worker thread, as a user's sync code would."""
    return await trio.to_thread.run_sync(fn, *args)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll from a plain thread (the state lives in another thread, with no event)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(0.005)


@contextlib.asynccontextmanager
async def open_sync_client(rt: Runtime) -> AsyncIterator[SyncClient]:
    client = await in_thread(lambda: SyncClient(rt.url, namespace=rt.namespace))
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await in_thread(client.close)


async def test_a_plain_thread_enqueues_and_gets_the_result(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt, open_sync_client(rt) as client:

            def work() -> tuple[Any, ...]:
                job = client.enqueue(jobfuncs.add, 2, 3)
                sent = client.send("default", jobfuncs.add, 4, 5)
                opted = client.options(max_retries=0).enqueue(jobfuncs.add, 1, 1)
                record = job.record() if job.result(timeout=10) else None
                return (
                    job.result(timeout=10), sent.result(timeout=10), opted.result(timeout=10),
                    job.status(), record is not None and record.status, job.queue,
                )  # fmt: skip

            assert await in_thread(work) == (5, 9, 2, "succeeded", "succeeded", "default")


async def test_twenty_threads_share_one_client_and_each_gets_its_own_result(
    nats_url: str,
) -> None:
    results: dict[int, int] = {}
    errors: list[BaseException] = []

    with trio.fail_after(40):
        async with (
            open_runtime(nats_url, queues={"default": 8}) as rt,
            open_sync_client(rt) as client,
        ):

            def work(i: int) -> None:
                try:
                    for k in range(3):
                        job = client.enqueue(jobfuncs.add, i, k * 100)
                        results[i * 10 + k] = job.result(timeout=20)
                except BaseException as exc:  # asserted below
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(in_thread, work, i)
    assert errors == []
    assert results == {i * 10 + k: i + k * 100 for i in range(20) for k in range(3)}


async def test_a_caller_inside_a_running_asyncio_loop_is_served(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt, open_sync_client(rt) as client:

            async def sync_handler_under_a_loop() -> tuple[int, bool]:
                loop = asyncio.get_running_loop()
                # What a sync FastAPI handler or a notebook cell does: block the loop.
                value = client.enqueue(jobfuncs.add, 20, 22).result(timeout=10)
                return value, asyncio.get_running_loop() is loop and loop.is_running()

            assert await in_thread(asyncio.run, sync_handler_under_a_loop()) == (42, True)


async def test_a_failed_job_raises_job_failed_in_the_calling_thread(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt, open_sync_client(rt) as client:
            job = await in_thread(
                lambda: client.options(max_retries=0).enqueue(jobfuncs.boom, "kaput")
            )
            with pytest.raises(JobFailed) as info:
                await in_thread(job.result, 10)
    assert info.value.exc_type == "ValueError"
    assert "in boom" in info.value.traceback


async def test_waiting_past_the_timeout_raises_job_timeout(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt, open_sync_client(rt) as client:
            job = await in_thread(client.enqueue, jobfuncs.add, 1, 1)
            with pytest.raises(JobTimeout):
                await in_thread(job.result, 0.2)
            assert await in_thread(job.status) == "queued"


async def test_cancel_purge_and_batches_work_from_a_thread(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt, open_sync_client(rt) as client:

            def work() -> tuple[Any, ...]:
                job = client.enqueue(jobfuncs.add, 1, 1)
                job.cancel()
                batch = client.options(queue="bulk").enqueue_many([(jobfuncs.noop, (), {})] * 5)
                return (
                    job.id, client.job(job.id).status(), len(batch), {j.queue for j in batch},
                    client.purge("bulk"), client.dead_letters(),
                )  # fmt: skip

            job_id, *rest = await in_thread(work)
            assert rest == ["cancelled", 5, {"bulk"}, 5, []]
            await rt.start_queue_actor("default")
            with pytest.raises(JobCancelled):
                await in_thread(lambda: client.job(job_id).result(10))


async def test_close_stops_the_owner_thread_and_later_calls_raise_a_clear_error(
    nats_url: str,
) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            client = await in_thread(lambda: SyncClient(rt.url, namespace=rt.namespace))
            owner = client._thread
            assert owner.is_alive()
            job = await in_thread(client.enqueue, jobfuncs.add, 1, 1)
            waiter_error: list[BaseException] = []

            def wait_forever() -> None:
                try:
                    job.result()
                except BaseException as exc:
                    waiter_error.append(exc)

            waiter = threading.Thread(target=wait_forever)
            waiter.start()
            await in_thread(wait_until, lambda: bool(client._inflight))
            await in_thread(client.close)
            assert not owner.is_alive()
            await in_thread(waiter.join, 5)
            assert not waiter.is_alive()
            with pytest.raises(ClientClosed, match="closed"):
                await in_thread(client.enqueue, jobfuncs.add, 1, 1)
            await in_thread(client.close)  # idempotent
    assert len(waiter_error) == 1
    assert isinstance(waiter_error[0], ClientClosed)
    assert "closed while this call waited" in str(waiter_error[0])


async def test_a_call_from_the_owner_thread_raises_instead_of_deadlocking(
    nats_url: str,
) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt, open_sync_client(rt) as client:
            def from_owner() -> str:
                try:
                    client.status("nope")
                except UsageError as exc:
                    return str(exc)
                return "no error"

            assert client._token is not None
            token = client._token
            message = await in_thread(
                lambda: trio.from_thread.run_sync(from_owner, trio_token=token)
            )
            assert "its own owner thread" in message


async def test_an_unreachable_server_raises_connection_failed_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    with trio.fail_after(20), pytest.raises(ConnectionFailed):
        await in_thread(
            lambda: SyncClient("nats://127.0.0.1:1", connect_timeout=0.5, max_reconnect_attempts=0)
        )
    assert not [t for t in set(threading.enumerate()) - before if t.name == "actorq-sync-client"]


async def test_a_server_that_never_answers_raises_connection_failed_within_the_start_timeout(
) -> None:
    # A TCP port that accepts and then says nothing: no NATS INFO ever comes, so the
    # connect hangs and only the SyncClient's own start timeout can end it.
    listener = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener[0].socket.getsockname()[1]
    try:
        with trio.fail_after(20), pytest.raises(ConnectionFailed, match="within 1"):
            await in_thread(
                lambda: SyncClient(
                    f"nats://127.0.0.1:{port}", start_timeout=1, connect_timeout=10,
                    max_reconnect_attempts=0,
                )
            )  # fmt: skip
    finally:
        for each in listener:
            await each.aclose()


async def test_misuse_raises_usage_error_naming_the_fix(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt, open_sync_client(rt) as client:
            with pytest.raises(UsageError, match="drop job_id"):
                await in_thread(
                    lambda: client.options(job_id="x").enqueue_many([(jobfuncs.add, (1, 2), {})])
                )
            with pytest.raises(UsageError, match="invalid enqueue option"):
                await in_thread(lambda: client.options(max_retrys=3))


async def test_actorq_send_uses_the_default_client_set_by_configure(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url) as rt:
            try:
                await in_thread(lambda: actorq.configure(url=rt.url, namespace=rt.namespace))

                def work() -> tuple[Any, ...]:
                    job = actorq.send("default", jobfuncs.add, 3, 4)
                    return job.result(timeout=10), actorq.jobs.default_client.default_client()

                value, first = await in_thread(work)
                assert value == 7
                assert first.namespace == rt.namespace
                assert await in_thread(actorq.jobs.default_client.default_client) is first
                # Configuring again closes the old default; the next send reconnects.
                await in_thread(lambda: actorq.configure(url=rt.url, namespace=rt.namespace))
                assert first.closed
                again = await in_thread(lambda: actorq.send("default", jobfuncs.add, 1, 1))
                assert await in_thread(again.result, 10) == 2
                assert again.client is not first
            finally:
                with trio.CancelScope(shield=True):
                    await in_thread(actorq.configure)  # closes the default client


async def test_the_exit_handler_closes_every_client_still_open(nats_url: str) -> None:
    with trio.fail_after(30):
        async with open_runtime(nats_url, queues={}) as rt:
            clients = [
                await in_thread(lambda: SyncClient(rt.url, namespace=rt.namespace))
                for _ in range(2)
            ]
            assert all(c._thread.is_alive() for c in clients)
            await in_thread(actorq.jobs.sync_client._close_all)
    assert all(c.closed and not c._thread.is_alive() for c in clients)


# -- the sync surface mirrors the async one ------------------------------------------------

#: Async-only: bucket handles and the envelope encoder, plumbing for the async side.
ASYNC_ONLY = {"results", "deps", "schedules_kv", "build_envelope"}
#: Sync-only: the lifecycle (async code uses the open_client block) and the runner.
SYNC_ONLY = {"close", "closed", "run"}


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def _params(fn: Any) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


@pytest.mark.parametrize(
    ("async_cls", "sync_cls", "async_only", "sync_only"),
    [
        (actorq.Client, SyncClient, ASYNC_ONLY, SYNC_ONLY),
        (actorq.Job, actorq.SyncJob, set(), set()),
        (BoundEnqueue, SyncBoundEnqueue, set(), set()),
    ],
)
def test_the_sync_surface_matches_the_async_one_name_for_name(
    async_cls: type, sync_cls: type, async_only: set[str], sync_only: set[str]
) -> None:
    a, s = _public(async_cls), _public(sync_cls)
    assert a - s == async_only, f"missing from {sync_cls.__name__}: {sorted(a - s - async_only)}"
    assert s - a == sync_only, f"missing from {async_cls.__name__}: {sorted(s - a - sync_only)}"
    for name in a & s:
        afn, sfn = getattr(async_cls, name), getattr(sync_cls, name)
        if callable(afn) and not isinstance(afn, type):
            assert _params(afn) == _params(sfn), f"{name}: parameters differ"
