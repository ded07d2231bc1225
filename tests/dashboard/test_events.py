"""The event hub: one gather per interval however many browsers listen, none when
nobody does, and a slow browser never holds up the others."""

from __future__ import annotations

from typing import Any

import trio

from actorq.dashboard.events import EventHub


async def test_one_gather_per_interval_serves_every_listener(autojump_clock: Any) -> None:
    calls = 0

    async def gather() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"n": calls}

    hub = EventHub(gather, interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.serve)
        await trio.sleep(10)
        assert calls == 0  # nobody listens: nothing is gathered
        got: list[list[bytes]] = [[] for _ in range(50)]

        async def listen(out: list[bytes]) -> None:
            async with hub.listen() as frames:
                async for frame in frames:
                    out.append(frame)
                    if len(out) == 5:
                        return

        async with trio.open_nursery() as listeners:
            for out in got:
                listeners.start_soon(listen, out)
        assert all(out == got[0] for out in got)
        assert calls <= 6  # five frames for fifty listeners: about five gathers
        nursery.cancel_scope.cancel()


async def test_a_listener_that_does_not_read_skips_frames_and_blocks_nobody(
    autojump_clock: Any,
) -> None:
    async def gather() -> dict[str, Any]:
        return {}

    hub = EventHub(gather, interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.serve)
        async with hub.listen(), hub.listen() as reader:
            for _ in range(5):
                await reader.receive()
        assert hub.published >= 5
        assert hub.listeners == 0
        nursery.cancel_scope.cancel()
