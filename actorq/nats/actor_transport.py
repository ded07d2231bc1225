"""The actors' data path: a Trio-owned link when possible, else nats-py crossed in batches.

Core-NATS traffic (sends, asks, replies, acks, at-most-once mailboxes) uses the
connection's :class:`~actorq.nats.actor_link.TrioLink` when it can be opened (plain TCP,
no auth, user/password or token): no thread hop at all. What follows describes the
fallback through nats-py (TLS, ``.creds``, nkeys, ``ACTORQ_ACTOR_LINK=0``) and the
durable pull loop, which always runs on nats-py. Every hop between the Trio thread
and the connection's asyncio loop costs a thread wake-up (~50-150 µs here), so
nothing on the hot path waits for the other side per message:

* **Outgoing** (``send``, replies, acks): :meth:`ActorTransport.publish_nowait` appends
  to an outbox under a lock and wakes the loop only when the outbox was empty; that
  loop callback frames everything queued and writes it at once, in order. The Trio caller does
  not wait for the loop (fire and forget), except when the outbox passes
  ``_HIGH_WATER`` messages: then it waits until the loop has caught up (backpressure).
* **Incoming** (a mailbox): the subscription callback (or the JetStream pull loop)
  appends to an :class:`Inbox` and wakes Trio only when it was empty; the actor takes
  whatever has accumulated as one batch.
* **Asks**: one wildcard reply subscription per connection; replies are collected
  the same way and wake their Trio waiters in one go. A ``503`` status (the server's
  "no responders") becomes :class:`~actorq.exceptions.ActorUnavailable` at once.

Example (what :mod:`actorq.actors.refs` and :mod:`actorq.actors.host` do)::

    transport = await transport_for(conn)
    transport.publish_nowait("actorq.actor.greeter", data)
    reply = await transport.request("actorq.actor.greeter", data, timeout=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import Any

import nats.errors
import trio
from nats.js import api as _api

from actorq.exceptions import ActorUnavailable, AskTimeout, BrokerError, ConnectionFailed
from actorq.nats.actor_link import TrioLink, link_options
from actorq.nats.connection import Connection
from actorq.nats.errors import translate_errors

__all__ = ["ENV_LINK", "ActorTransport", "Delivery", "Inbox", "close_transport", "transport_for"]

#: Set to ``0`` to send actor messages through nats-py (the asyncio bridge) only.
ENV_LINK = "ACTORQ_ACTOR_LINK"

log = logging.getLogger("actorq.actors.actor")

#: Outbox length above which ``publish`` waits for the loop to catch up.
_HIGH_WATER = 20_000
#: Messages an at-most-once inbox holds before it drops (a slow consumer).
_INBOX_LIMIT = 100_000
#: Messages fetched from a durable mailbox per pull.
_FETCH = 128

_ACK = b""  # what nats-py's Msg.ack() publishes
_NAK = b"-NAK"

#: One message for an actor: (payload, reply subject or "", JetStream ack subject or "").
Delivery = tuple[bytes, str, str]


class _Waiter:
    __slots__ = ("data", "done", "event", "no_responders")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.data = b""
        self.done = False
        self.no_responders = False


class Inbox:
    """Messages for one actor, filled on the asyncio side, taken in batches by Trio."""

    def __init__(self, token: trio.lowlevel.TrioToken, limit: int = _INBOX_LIMIT) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._buf: list[Delivery] = []
        self._event = trio.Event()
        self._limit = limit
        self.dropped = 0
        # Durable flow control: messages handed to Trio and not yet acked.
        self.in_flight = 0
        self._room: asyncio.Event | None = None

    # -- asyncio side ----------------------------------------------------------------

    def push(self, item: Delivery) -> None:
        with self._lock:
            if len(self._buf) >= self._limit:
                self.dropped += 1
                if self.dropped % 10_000 == 1:
                    log.warning("actor inbox full: dropped %d messages so far", self.dropped)
                return
            self._buf.append(item)
            wake = len(self._buf) == 1
        if wake:
            self._token.run_sync_soon(self._wake)

    def push_local(self, item: Delivery) -> None:
        """:meth:`push` from the Trio thread itself (the actor link's reader)."""
        with self._lock:
            if len(self._buf) >= self._limit:
                self.dropped += 1
                if self.dropped % 10_000 == 1:
                    log.warning("actor inbox full: dropped %d messages so far", self.dropped)
                return
            self._buf.append(item)
            wake = len(self._buf) == 1
        if wake:
            self._event.set()

    def push_many(self, items: list[Delivery]) -> None:
        with self._lock:
            self._buf.extend(items)
            self.in_flight += len(items)
            wake = len(self._buf) == len(items)
        if wake:
            self._token.run_sync_soon(self._wake)

    # -- Trio side -------------------------------------------------------------------

    def _wake(self) -> None:
        self._event.set()

    async def get_batch(self) -> list[Delivery]:
        """Everything that arrived since the last call; waits while there is nothing."""
        await trio.lowlevel.checkpoint()
        while True:
            with self._lock:
                if self._buf:
                    batch, self._buf = self._buf, []
                    return batch
                # Made under the lock: a push after this sees an empty buffer and wakes it.
                self._event = trio.Event()
            await self._event.wait()

    def peek(self) -> list[Delivery]:
        """A copy of what is buffered (durable lease renewal)."""
        with self._lock:
            return list(self._buf)

    def take_rest(self) -> list[Delivery]:
        """Whatever is buffered and not yet handled (on stop)."""
        with self._lock:
            batch, self._buf = self._buf, []
        return batch

    def settled(self, n: int, loop: asyncio.AbstractEventLoop) -> None:
        """``n`` durable messages were acked: let the pull loop fetch more if it waits."""
        with self._lock:
            self.in_flight -= n
            room = self._room
        if room is not None:
            loop.call_soon_threadsafe(room.set)


class ActorTransport:
    """Actor messaging on one :class:`~actorq.nats.Connection`; get it with
    :func:`transport_for`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.nc = conn.nc
        self.loop = conn.bridge.loop
        self._token = trio.lowlevel.current_trio_token()
        self._lock = threading.Lock()
        self._out: list[tuple[str, bytes, str]] = []
        self._drained: trio.Event | None = None
        self._replies: list[tuple[str, bytes, bool]] = []
        self._waiters: dict[str, _Waiter] = {}
        self._reply_prefix = ""
        self._next = 0
        self._started = False
        self._start_lock = trio.Lock()
        #: The Trio-owned connection for core messages, when usable (see actor_link).
        self.link: TrioLink | None = None
        self._sends = 0
        self.publish_errors = 0

    async def ensure_started(self) -> None:
        if self._started:
            return
        async with self._start_lock:
            if not self._started:
                if os.environ.get(ENV_LINK, "1") != "0":
                    await self._open_link()
                if self.link is None:
                    with translate_errors("start the actor transport"):
                        await self.conn.bridge.run(self._start)
                self._started = True

    async def _open_link(self) -> None:
        options = link_options(self.nc)
        if options is None:
            return
        try:
            link = await TrioLink.open(*options, locate=lambda: link_options(self.nc))
        except ConnectionFailed as exc:
            log.info("actor messages use the asyncio bridge: %s", exc)
            return
        # The link lives in the connection's nursery and is flushed and closed when the
        # connection closes: nothing outlives the open_nats block.
        self.conn.start_service(link.serve, name="actorq-link")
        self.conn.on_close(self.aclose)
        prefix = f"_INBOX.{uuid.uuid4().hex}"
        link.subscribe(prefix + ".*", "", self._on_link_reply)
        await link.flush()
        self._reply_prefix = prefix
        self.link = link

    async def aclose(self) -> None:
        """Close the actor link, if any (the nats-py connection is not ours)."""
        if self.link is not None:
            await self.link.aclose()
        _transports.pop(self.conn, None)

    async def _start(self) -> None:
        prefix = self.nc.new_inbox()
        await self.nc.subscribe(prefix + ".*", cb=self._on_reply)
        await self.nc.flush()
        self._reply_prefix = prefix

    # -- outgoing: Trio side -----------------------------------------------------------

    def publish_nowait(self, subject: str, data: bytes, reply: str = "") -> None:
        """Queue a core publish; the loop sends it soon, in order. Never blocks."""
        if self.link is not None:
            self.link.publish_nowait(subject, data, reply)
            return
        with self._lock:
            self._out.append((subject, data, reply))
            wake = len(self._out) == 1
        if wake:
            self.loop.call_soon_threadsafe(self._flush_out)

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        """:meth:`publish_nowait`, waiting first if the outbox is far behind."""
        if self.link is not None:
            await self.link.wait_writable()
            # A full yield per message would let the writer send each one alone (a
            # syscall per message); yield every 256th so writes carry batches.
            self._sends += 1
            if self._sends & 255:
                await trio.lowlevel.checkpoint_if_cancelled()
            else:
                await trio.lowlevel.checkpoint()
            self.link.publish_nowait(subject, data, reply)
            return
        if len(self._out) >= _HIGH_WATER:
            while len(self._out) >= _HIGH_WATER:
                if self._drained is None:
                    self._drained = trio.Event()
                await self._drained.wait()
        else:
            await trio.lowlevel.checkpoint()
        self.publish_nowait(subject, data, reply)

    def _on_drained(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    # -- outgoing: asyncio side --------------------------------------------------------

    def _flush_out(self) -> None:
        """Write everything queued, in order, in one go (a plain loop callback)."""
        with self._lock:
            items, self._out = self._out, []
        if items:
            nc = self.nc
            try:
                cmds = [
                    b"PUB %s %s %d\r\n%s\r\n" % (s.encode(), r.encode(), len(d), d)
                    for s, d, r in items
                ]
                _write_pending(nc, b"".join(cmds), len(items))
            except Exception as exc:  # fire and forget: the senders have moved on
                self.publish_errors += len(items)
                log.warning("%d actor messages not sent: %r", len(items), exc)
        if self._drained is not None:
            self._token.run_sync_soon(self._on_drained)

    # -- asks --------------------------------------------------------------------------

    async def request(self, subject: str, data: bytes, *, timeout: float) -> bytes:  # noqa: ASYNC109
        """Publish ``data`` with a reply subject and wait for the reply's payload."""
        await self.ensure_started()
        self._next += 1
        token = str(self._next)
        waiter = _Waiter()
        self._waiters[token] = waiter
        try:
            await self.publish(subject, data, f"{self._reply_prefix}.{token}")
            if self.link is not None:
                await self.link.write_now()
            with trio.move_on_after(timeout):
                await waiter.event.wait()
        finally:
            self._waiters.pop(token, None)
        if not waiter.done:
            raise AskTimeout(
                f"no reply from {subject!r} within {timeout}s; the actor may be busy or "
                "slow (raise the timeout) and may still handle the message"
            )
        if waiter.no_responders:
            raise ActorUnavailable(
                f"no actor serves {subject!r} right now (no responders): it is not "
                "spawned, stopped, or restarting; check the name and namespace"
            )
        return waiter.data

    async def _on_reply(self, msg: Any) -> None:  # asyncio side
        token = msg.subject[len(self._reply_prefix) + 1 :]
        headers = msg.headers
        no_responders = bool(headers) and headers.get("Status") == "503"
        with self._lock:
            self._replies.append((token, msg.data, no_responders))
            wake = len(self._replies) == 1
        if wake:
            self._token.run_sync_soon(self._deliver_replies)

    def _on_link_reply(self, subject: bytes, reply: bytes, data: bytes, status: bytes) -> None:
        # Trio side already (the link's reader): no crossing at all.
        waiter = self._waiters.pop(subject[len(self._reply_prefix) + 1 :].decode(), None)
        if waiter is not None:
            waiter.data = data
            waiter.no_responders = status == b"503"
            waiter.done = True
            waiter.event.set()

    def _deliver_replies(self) -> None:  # Trio side
        with self._lock:
            replies, self._replies = self._replies, []
        for token, data, no_responders in replies:
            waiter = self._waiters.pop(token, None)
            if waiter is None:
                continue  # its asker gave up (timeout, cancel)
            waiter.data = data
            waiter.no_responders = no_responders
            waiter.done = True
            waiter.event.set()

    # -- incoming ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_inbox(
        self,
        subject: str,
        *,
        queue: str,
        durable_stream: str | None = None,
        durable_consumer: str = "actor",
        max_in_flight: int = 512,
    ) -> AsyncIterator[Inbox]:
        """Subscribe ``subject`` in queue group ``queue`` (and pull from a durable
        consumer, if given) for the duration of the block; the server has registered
        the subscription when the block starts."""
        await self.ensure_started()
        inbox = Inbox(self._token)
        nc = self.nc

        link = self.link
        sid = 0
        if link is not None:

            def on_link_msg(subj: bytes, reply: bytes, data: bytes, status: bytes) -> None:
                inbox.push_local((data, reply.decode() if reply else "", ""))

            sid = link.subscribe(subject, queue, on_link_msg)

        async def on_msg(msg: Any) -> None:
            inbox.push((msg.data, msg.reply, ""))

        async def setup() -> tuple[Any, asyncio.Task[None] | None]:
            sub = None
            if link is None:
                sub = await nc.subscribe(subject, queue=queue, cb=on_msg)
            task = None
            if durable_stream is not None:
                psub = await nc.jetstream().pull_subscribe_bind(durable_consumer, durable_stream)
                task = asyncio.get_running_loop().create_task(
                    _pull_loop(psub, inbox, max_in_flight)
                )
            await nc.flush()
            return sub, task

        with translate_errors(f"subscribe actor mailbox {subject!r}"):
            if link is None or durable_stream is not None:
                sub, task = await self.conn.bridge.run(setup)
            else:
                sub, task = None, None
            if link is not None:
                await link.flush()
        try:
            yield inbox
        finally:

            async def teardown() -> None:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                if sub is not None:
                    with contextlib.suppress(nats.errors.Error):
                        await sub.unsubscribe()

            with trio.CancelScope(shield=True), trio.move_on_after(5):
                if link is not None:
                    link.unsubscribe(sid)
                if sub is not None or task is not None:
                    with contextlib.suppress(BrokerError, nats.errors.Error):
                        await self.conn.bridge.run(teardown)
                # Buffered durable messages go back at once, not after the ack wait.
                rest = [ack for _, _, ack in inbox.take_rest() if ack]
                for ack in rest:
                    self.publish_nowait(ack, _NAK)
                # Only then a flush: on a process's way out the link's reader may be
                # cancelled already, and a flush would wait out its 5 s for a PONG
                # (every stop of `actorq up` took 10 s more, its result actor and
                # scheduler killed for ignoring SIGTERM).
                if rest:
                    with contextlib.suppress(BrokerError):
                        await self.flush()

    async def write_now(self) -> None:
        """Send what this task queued now, if the link is idle (latency; see actor_link)."""
        if self.link is not None:
            await self.link.write_now()

    def ack_nowait(self, ack_subject: str) -> None:
        """Acknowledge a durable message (queued like any publish)."""
        self.publish_nowait(ack_subject, _ACK)

    def nak_nowait(self, ack_subject: str) -> None:
        """Ask JetStream to redeliver a durable message now."""
        self.publish_nowait(ack_subject, _NAK)

    async def flush(self) -> None:
        """Wait until everything queued so far has reached the server."""
        if self.link is not None:
            await self.link.flush()
            return

        async def run() -> None:
            # Everything queued before this call is written first, then a PING/PONG.
            self._flush_out()
            await self.nc.flush()

        with translate_errors("flush actor messages"):
            await self.conn.bridge.run(run)


def _write_pending(nc: Any, data: bytes, count: int) -> None:
    """Hand already-framed PUB commands to nats-py's client, the way its publish does.

    nats-py frames, buffers and kicks its flusher task once *per message*; a batch from
    Trio is framed here and written at once: straight to the socket when the client
    has nothing else buffered (so nothing is reordered), else appended to its buffer
    with one kick of the flusher (which also covers reconnects: nats-py replays that
    buffer). These are nats-py internals: ``pyproject.toml`` pins the tested nats-py
    range and ``tests/nats/test_nats_py_internals.py`` fails loudly if they move.
    """
    if nc.is_closed:
        raise nats.errors.ConnectionClosedError
    nc.stats["out_msgs"] += count
    nc.stats["out_bytes"] += len(data)
    if nc.is_connected and not nc._pending and nc._transport is not None:
        nc._transport.write(data)
        return
    nc._pending.append(data)
    nc._pending_data_size += len(data)
    queue = nc._flush_queue
    if queue is not None and queue.empty():
        queue.put_nowait(asyncio.get_running_loop().create_future())


async def _pull_loop(psub: Any, inbox: Inbox, max_in_flight: int) -> None:
    """Fetch a durable mailbox into ``inbox``, never more than ``max_in_flight`` unacked."""
    room = asyncio.Event()
    inbox._room = room
    while True:
        free = max_in_flight - inbox.in_flight
        if free <= 0:
            room.clear()
            if max_in_flight - inbox.in_flight <= 0:
                await room.wait()
            continue
        try:
            msgs = await psub.fetch(min(_FETCH, free), timeout=5.0)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        except nats.errors.Error as exc:
            log.warning("durable mailbox fetch failed, retrying: %r", exc)
            await asyncio.sleep(0.5)
            continue
        inbox.push_many([(m.data, "", m.reply) for m in msgs])


_transports: weakref.WeakKeyDictionary[Connection, ActorTransport] = weakref.WeakKeyDictionary()


async def transport_for(conn: Connection) -> ActorTransport:
    """The (started) actor transport of ``conn``; one per connection."""
    transport = _transports.get(conn)
    if transport is None:
        transport = _transports[conn] = ActorTransport(conn)
    await transport.ensure_started()
    return transport


async def close_transport(conn: Connection) -> None:
    """Close ``conn``'s actor transport if it has one (before closing ``conn``)."""
    transport = _transports.get(conn)
    if transport is not None:
        with trio.CancelScope(shield=True):
            await transport.aclose()


def durable_consumer_config(ack_wait: float, max_in_flight: int) -> _api.ConsumerConfig:
    """The durable mailbox's consumer: explicit acks, redelivery after ``ack_wait``."""
    return _api.ConsumerConfig(
        durable_name="actor",
        ack_policy=_api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_ack_pending=max_in_flight * 4,
        deliver_policy=_api.DeliverPolicy.ALL,
    )
