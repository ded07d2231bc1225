"""Backoff between consecutive restarts of one child, so a crash loop idles."""

from __future__ import annotations

import trio
from sup_control import crash_after_start

from supervisors import Backoff, ChildRestarted, SupervisorEvent, TaskSpec, open_supervisor


def test_delays_start_immediate_then_grow_exponentially_to_the_cap() -> None:
    backoff = Backoff(initial=0.1, factor=2, max=0.5)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5]


async def test_a_crash_loop_is_spaced_out_by_the_backoff(autojump_clock: trio.abc.Clock) -> None:
    backoff = Backoff(initial=1.0, factor=2, max=4.0)
    send, receive = trio.open_memory_channel[SupervisorEvent](100)
    times: list[float] = []
    with trio.fail_after(60):
        async with open_supervisor(
            [TaskSpec(id="crasher", target=crash_after_start)],
            max_restarts=100,
            within=1000,
            backoff=backoff,
            events=send,
        ):
            start = trio.current_time()
            async for event in receive:
                if isinstance(event, ChildRestarted):
                    times.append(trio.current_time() - start)
                if len(times) == 5:
                    break
    gaps = [round(b - a, 3) for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps == [0.0, 1.0, 2.0, 4.0, 4.0]
