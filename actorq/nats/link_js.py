"""JetStream publishes and core subscriptions from Trio, with no thread hop.

A single enqueue is one JetStream publish: a core ``PUB`` with a reply subject, and
one ack back. Through nats-py (:mod:`actorq.nats.bridge`) each crosses to the asyncio
thread and back: two thread wake-ups (~100-150 µs here) with the GIL shared, about
half of an awaited publish. Over a Trio-owned :class:`~actorq.nats.actor_link.TrioLink`
it is a socket write and, later, a read by the link's reader task, both in the Trio
thread. :class:`LinkJs` does that: one wildcard reply subscription, a token per
publish, acks decoded with msgspec as :mod:`actorq.nats.publisher` does, and errors
raised as the nats-py exceptions they stand for, so
:func:`~actorq.nats.errors.translate_errors` maps them exactly as on the bridge path.

:class:`~actorq.nats.connection.Connection` opens one lazily (``Connection.open_link``),
only where the link can speak the connection's auth (see
:func:`~actorq.nats.actor_link.link_options`; TLS, ``.creds`` and nkeys stay on
nats-py), and not at all with ``ACTORQ_CLIENT_LINK=0``. While the link is down
(reconnecting), callers use nats-py instead.

Example::

    js = await LinkJs.open(nc, nursery.start_soon)
    ack = await js.publish("actorq.jobs.default.x", b"...", None, timeout=5.0)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import nats.errors
import trio

from actorq.exceptions import ConnectionFailed
from actorq.nats.actor_link import LinkCallback, TrioLink, link_options
from actorq.nats.publisher import RawAck, settle_ack

__all__ = ["ENV_CLIENT_LINK", "LinkJs"]

log = logging.getLogger("actorq.nats")

#: Set to ``0`` to send JetStream publishes from Trio through nats-py only.
ENV_CLIENT_LINK = "ACTORQ_CLIENT_LINK"


#: Seconds between two sweeps for acks past their deadline (how late a timeout may be).
_SWEEP = 0.25


class _Ack:
    """One publish waiting for its ack (its task is rescheduled directly: no Event)."""

    __slots__ = ("data", "deadline", "done", "no_responders", "task")

    def __init__(self, deadline: float, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.deadline = deadline
        self.data = b""
        self.done = False
        self.no_responders = False


class LinkJs:
    """JetStream publishing over a Trio-owned link; get one from :meth:`open`."""

    def __init__(self, link: TrioLink, prefix: str) -> None:
        self.link = link
        self._prefix = prefix
        self._acks: dict[str, _Ack] = {}
        self._next = 0
        self._closed = False
        #: Publishes sent over the link (tests and benchmarks check the path taken).
        self.published = 0

    @classmethod
    async def open(
        cls, nc: Any, start: Callable[[Callable[[], Awaitable[None]]], None]
    ) -> LinkJs | None:
        """A link beside nats-py client ``nc`` whose reader runs in ``start(fn)`` (a task
        that lives as long as the connection), or ``None`` where none can be opened."""
        options = link_options(nc)
        if options is None:
            return None
        host, port, connect = options
        connect = {**connect, "name": "actorq-client"}
        try:
            link = await TrioLink.open(host, port, connect, locate=lambda: _locate(nc))
        except ConnectionFailed as exc:
            log.info("JetStream publishes use the asyncio bridge: %s", exc)
            return None
        start(link.serve)
        # Under the connection's own inbox prefix: a least-privilege user may
        # subscribe there only.
        js = cls(link, nc.new_inbox())
        start(js._sweep)
        link.subscribe(js._prefix + ".*", "", js._on_ack)
        await link.flush()
        if link.errors:
            # The server refused something (the subscription, most likely): acks
            # would never come. The bridge path works with what nats-py is allowed.
            log.info("JetStream publishes use the asyncio bridge: the server refused the link")
            await link.aclose()
            return None
        return js

    @property
    def usable(self) -> bool:
        """Whether the link is connected now (if not, use nats-py meanwhile)."""
        return not self._closed and self.link.connected.is_set()

    async def publish(
        self,
        subject: str,
        data: bytes,
        headers: Mapping[str, str] | None,
        *,
        timeout: float,  # noqa: ASYNC109
    ) -> RawAck:
        """Publish to JetStream and wait for the ack; raises nats-py's errors (a timeout:
        ``nats.errors.TimeoutError``, the message may or may not be stored)."""
        self._next += 1
        token = str(self._next)
        acks = self._acks
        # The deadline is kept by _sweep, not a cancel scope per publish (~15% of a
        # publish's CPU time): a timeout fires up to _SWEEP seconds late.
        ack = acks[token] = _Ack(trio.current_time() + timeout, trio.lowlevel.current_task())

        def abort(_: Any) -> trio.lowlevel.Abort:
            acks.pop(token, None)  # nothing may reschedule it after this
            return trio.lowlevel.Abort.SUCCEEDED

        try:
            if len(acks) == 1:
                # Alone: written right here, with no task switch to the link's writer.
                self.link.send_nowait(subject, data, f"{self._prefix}.{token}", headers)
            else:
                # Others in flight: the writer sends everything queued meanwhile in one
                # write, not a syscall per caller.
                self.link.publish_nowait(subject, data, f"{self._prefix}.{token}", headers)
            self.published += 1
            await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            acks.pop(token, None)
        if not ack.done:
            raise nats.errors.ConnectionClosedError if self._closed else nats.errors.TimeoutError
        result = settle_ack(ack.data, no_responders=ack.no_responders)
        if isinstance(result, BaseException):
            raise result
        return result

    def _on_ack(self, subject: bytes, reply: bytes, data: bytes, status: bytes) -> None:
        # The link's reader task, in the Trio thread: wake the publisher directly.
        ack = self._acks.pop(subject[len(self._prefix) + 1 :].decode(), None)
        if ack is not None:
            ack.data = data
            ack.no_responders = status == b"503"
            ack.done = True
            trio.lowlevel.reschedule(ack.task)

    async def _sweep(self) -> None:
        """Wake publishers whose ack is overdue (they raise a timeout)."""
        while True:
            await trio.sleep(_SWEEP)
            now = trio.current_time()
            late = [t for t, a in self._acks.items() if a.deadline <= now]
            for token in late:
                trio.lowlevel.reschedule(self._acks.pop(token).task)  # not done: a timeout

    def subscribe(self, subject: str, callback: LinkCallback) -> int:
        """Core subscription on the link; ``callback`` runs in its reader task."""
        return self.link.subscribe(subject, "", callback)

    def unsubscribe(self, sid: int) -> None:
        self.link.unsubscribe(sid)

    async def aclose(self) -> None:
        """Close the link; publishes still waiting for an ack raise at once (the
        sweeper that would time them out stops with the connection)."""
        self._closed = True
        for token in list(self._acks):
            trio.lowlevel.reschedule(self._acks.pop(token).task)
        await self.link.aclose()


def _locate(nc: Any) -> tuple[str, int, dict[str, Any]] | None:
    where = link_options(nc)
    if where is None:
        return None
    host, port, connect = where
    return host, port, {**connect, "name": "actorq-client"}
