"""A scheduler's lease: a leader whose renewal gets no answer stops leading before its
lease can pass to another scheduler (issue 12, item 8).

The leader's connection runs through a TCP proxy in this test that can be frozen: its
bytes are held, as on a stalled network, so the renewal blocks (for up to
``request_timeout``, which equals the lease TTL here, as in ``actorq up``) while the
other scheduler still reaches the real server.
"""

from __future__ import annotations

import time
import uuid

import trio

from actorq.jobs.scheduler_actor import Lease
from actorq.nats import open_nats
from actorq.nats.provisioning import KvSpec, ensure_kv

TTL = 1.5


class FreezableProxy:
    """Forwards TCP to ``127.0.0.1:target``; while frozen, holds every byte."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.frozen = False
        self._thawed = trio.Event()

    def freeze(self) -> None:
        self.frozen = True
        self._thawed = trio.Event()

    def thaw(self) -> None:
        self.frozen = False
        self._thawed.set()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream("127.0.0.1", self.target)
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, server, nursery.cancel_scope)
            nursery.start_soon(self._pump, server, client, nursery.cancel_scope)

    async def _pump(
        self, src: trio.SocketStream, dst: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        while data := await src.receive_some(65536):
            while self.frozen:
                await self._thawed.wait()
            await dst.send_all(data)
        scope.cancel()


async def _record(lease: Lease, log: list[tuple[float, bool]]) -> None:
    while True:
        await lease.changed.wait()
        log.append((time.monotonic(), lease.leading))


async def test_a_leader_whose_renewal_hangs_stops_leading_before_another_takes_over(
    nats_url: str,
) -> None:
    port = int(nats_url.rsplit(":", 1)[1])
    bucket = f"lease_{uuid.uuid4().hex[:8]}"
    proxy = FreezableProxy(port)
    a_log: list[tuple[float, bool]] = []
    b_log: list[tuple[float, bool]] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            proxy_port = await nursery.start(proxy.serve)
            async with (
                open_nats(f"nats://127.0.0.1:{proxy_port}", request_timeout=TTL) as via_proxy,
                open_nats(nats_url, request_timeout=TTL) as direct,
            ):
                spec = KvSpec(bucket=bucket, ttl=TTL)
                a = Lease(await ensure_kv(via_proxy, spec), "a", TTL)
                b = Lease(await ensure_kv(direct, spec), "b", TTL)
                async with trio.open_nursery() as leases:
                    leases.start_soon(_record, a, a_log)
                    leases.start_soon(_record, b, b_log)
                    await leases.start(a.serve)
                    assert a.leading
                    await leases.start(b.serve)
                    assert not b.leading
                    # A renews a few times, then its network stalls.
                    terms = a.terms
                    await trio.sleep(TTL)  # a few renewals happen meanwhile
                    assert (a.leading, a.terms) == (True, terms), "a lost its lease unasked"
                    proxy.freeze()
                    frozen_at = time.monotonic()
                    expires_at = a._expires_at
                    while not b.leading:
                        await b.changed.wait()
                    b_took_over = time.monotonic()
                    # A stopped leading, and so acting, before B could take over: at
                    # the latest a margin before its lease's own expiry.
                    assert a_log, "a never stopped leading"
                    a_stopped, leading = a_log[-1]
                    assert leading is False
                    assert a_stopped < b_took_over
                    assert a_stopped <= expires_at - a.margin + 0.2
                    assert a_stopped - frozen_at < TTL
                    assert a.remaining() <= 0
                    proxy.thaw()
                    leases.cancel_scope.cancel()
            nursery.cancel_scope.cancel()
