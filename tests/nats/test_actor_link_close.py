"""An actor link whose serve task has ended answers a flush at once (no PONG can come),
so an inbox's teardown does not hold a stopping process for the flush timeout."""

from __future__ import annotations

import time

import pytest
import trio

from actorq import ConnectionFailed
from actorq.nats.actor_link import TrioLink

pytestmark = pytest.mark.timeout(30)


async def test_a_flush_waiting_when_the_link_stops_fails_at_once(nats_url: str) -> None:
    host, port = nats_url.removeprefix("nats://").split(":")
    link = await TrioLink.open(host, int(port), {"verbose": False, "pedantic": False})
    failed_after: list[float] = []

    async def flush_on_the_way_out(task_status: trio.TaskStatus[None]) -> None:
        # As an inbox's teardown does when its owner is cancelled: a shielded flush.
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                start = time.monotonic()
                with pytest.raises(ConnectionFailed, match="actor link"):
                    await link.flush(timeout=5)
                failed_after.append(time.monotonic() - start)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.serve)
        await link.flush()  # served: a PONG comes back
        await nursery.start(flush_on_the_way_out)
        nursery.cancel_scope.cancel()  # the link stops with its owner; nothing answers
    assert failed_after
    assert failed_after[0] < 3.0  # not the flush's 5 s
    with pytest.raises(ConnectionFailed, match="is closed"):
        await link.flush(timeout=5)
