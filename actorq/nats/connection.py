"""A Trio-native NATS connection: core, JetStream publish, pull consumers, KV.

nats-py runs on a private asyncio loop in a helper thread (:mod:`actorq.nats.bridge`);
every method here is a Trio coroutine with Trio cancellation semantics. Bulk
methods (:meth:`Connection.js_publish_many`, :meth:`PullConsumer.fetch`,
:meth:`PullConsumer.ack_many`) cross between the two worlds once per batch, which
is what keeps this layer near plain-asyncio speed (see ``bench/nats_layer.py``).

Example::

    async with open_nats("nats://127.0.0.1:4222") as nc:
        ack = await nc.js_publish("actorq.jobs.default", b"...", msg_id="job-1")
        consumer = await nc.pull_consumer("actorq_jobs", "default")
        for msg in await consumer.fetch(16, timeout=1):
            ...
        await consumer.ack_many(msgs)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
import trio
from nats.aio.client import Client as _NatsClient
from nats.aio.msg import Msg as _NatsMsg

from actorq.constants import DEFAULT_URL
from actorq.exceptions import BrokerError, ConnectionFailed
from actorq.nats.actor_link import link_options
from actorq.nats.blocking_js import BlockingJsPool
from actorq.nats.bridge import AsyncioBridge, open_bridge
from actorq.nats.delivery import JsMsg, Message, OutMsg, PubAck
from actorq.nats.errors import FETCH_RETRY, is_transient, translate_errors
from actorq.nats.kv import KeyValueStore
from actorq.nats.link_js import ENV_CLIENT_LINK, LinkJs
from actorq.nats.loop import LoopSide
from actorq.nats.publisher import JsPublisher
from actorq.nats.pull_fetch import fetch_batch

__all__ = ["Connection", "JsMsg", "Message", "OutMsg", "PubAck", "PullConsumer", "open_nats"]

log = logging.getLogger("actorq.nats")

#: NATS's default ``max_payload``, if the server did not say.
DEFAULT_MAX_PAYLOAD = 1024 * 1024


def _headers(headers: Mapping[str, str] | None, msg_id: str | None) -> dict[str, str] | None:
    if msg_id is None:
        return dict(headers) if headers else None
    out = dict(headers) if headers else {}
    out["Nats-Msg-Id"] = msg_id
    return out


class Connection:
    """A NATS connection usable from Trio. Get one from :func:`open_nats`."""

    def __init__(
        self,
        bridge: AsyncioBridge,
        nc: _NatsClient,
        *,
        request_timeout: float = 5.0,
        service: trio.Nursery | None = None,
    ) -> None:
        self.bridge = bridge
        # Tasks that live exactly as long as the connection (the actor link); see
        # start_service. None only for a Connection built by hand, outside open_nats.
        self._service = service
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.nc = nc
        #: Upper bound on one request/publish-ack round trip; wrap calls in
        #: ``trio.fail_after`` for a shorter one.
        self.request_timeout = request_timeout
        self.js = nc.jetstream(timeout=request_timeout)
        #: Pipelined JetStream publishing for the asyncio side (bulk paths use it).
        self.publisher = JsPublisher(nc)
        #: The same connection for programs that run on its asyncio loop.
        self.loop = LoopSide(nc, self.publisher, request_timeout)
        #: JetStream publishes from Trio with no thread hop, once :meth:`open_link` ran.
        self.link_js: LinkJs | None = None
        self._link_tried = False
        self._link_lock = trio.Lock()

    # -- lifetime ------------------------------------------------------------------

    def start_service(self, fn: Callable[[], Awaitable[None]], *, name: str) -> None:
        """Run ``fn()`` in the connection's own nursery: it is cancelled when the
        ``open_nats`` block ends, so nothing it does outlives the connection."""
        if self._service is None:
            raise BrokerError(f"{name}: this connection has no service nursery (use open_nats)")
        self._service.start_soon(fn, name=name)

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Await ``closer()`` when the ``open_nats`` block ends, before the service
        tasks are cancelled and the client closes (last registered, first run)."""
        self._closers.append(closer)

    async def _close_services(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                await closer()
        if self._service is not None:
            self._service.cancel_scope.cancel()

    async def open_link(self) -> LinkJs | None:
        """Open the Trio-owned link for :meth:`js_publish` and :meth:`on_messages`
        (once; later calls return it). ``None`` where it cannot be used (TLS, ``.creds``,
        nkeys, a connection without a service nursery, ``ACTORQ_CLIENT_LINK=0``): the
        calls then go through nats-py, as fast as before."""
        if self._link_tried:
            return self.link_js
        async with self._link_lock:
            if not self._link_tried:
                if self._service is not None and os.environ.get(ENV_CLIENT_LINK, "1") != "0":
                    service = self._service
                    js = await LinkJs.open(
                        self.nc, lambda fn: service.start_soon(fn, name="actorq-client-link")
                    )
                    if js is not None:
                        self.on_close(js.aclose)
                    self.link_js = js
                self._link_tried = True
        return self.link_js

    def blocking_pool(self, size: int = 4) -> BlockingJsPool | None:
        """Blocking sockets for JetStream publishes from plain threads, beside this
        connection (see :mod:`actorq.nats.blocking_js`); ``None`` where they cannot
        speak its auth (as for :meth:`open_link`) or with ``ACTORQ_CLIENT_LINK=0``."""
        if os.environ.get(ENV_CLIENT_LINK, "1") == "0" or link_options(self.nc) is None:
            return None
        nc = self.nc
        return BlockingJsPool(
            lambda: link_options(nc),
            timeout=self.request_timeout,
            size=size,
            inbox=nc.new_inbox(),  # a least-privilege user may subscribe there only
        )

    # -- core ----------------------------------------------------------------------

    async def publish(
        self, subject: str, data: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """Core NATS publish (fire and forget; buffered by the client)."""
        with translate_errors(f"publish to {subject!r}"):
            await self.bridge.run(self.nc.publish, subject, data, headers=_headers(headers, None))

    async def publish_many(self, messages: Sequence[OutMsg]) -> None:
        """Core NATS publish of a batch, in one crossing."""
        nc = self.nc

        async def run() -> None:
            for m in messages:
                await nc.publish(m.subject, m.data, headers=_headers(m.headers, None))

        with translate_errors(f"publish of {len(messages)} messages"):
            await self.bridge.run(run)

    async def flush(self) -> None:
        """Wait until the server has processed everything published so far."""
        with translate_errors("flush"):
            await self.bridge.run(self.nc.flush, int(self.request_timeout))

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        """Core NATS request/reply (bounded by ``request_timeout``; or use trio.fail_after)."""
        with translate_errors(f"request to {subject!r}"):
            raw = await self.bridge.run(
                self.nc.request,
                subject,
                data,
                timeout=self.request_timeout,
                headers=_headers(headers, None),
            )
        return Message(raw)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, subject: str, *, queue: str = "", max_pending: int = 10_000
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Message]]:
        """Subscribe for the duration of the block; iterate the channel for messages.

        Messages beyond ``max_pending`` undelivered ones are dropped with a warning
        (core NATS is at-most-once anyway); use JetStream for anything that matters.
        """
        send, receive = trio.open_memory_channel[Message](max_pending)
        token = trio.lowlevel.current_trio_token()

        def deliver(msg: Message) -> None:
            try:
                send.send_nowait(msg)
            except trio.WouldBlock:
                log.warning("subscription %s is slow: dropped a message", subject)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                # The block has ended: nobody reads this any more.
                pass

        async def cb(raw: _NatsMsg) -> None:
            token.run_sync_soon(deliver, Message(raw))

        with translate_errors(f"subscribe to {subject!r}"):
            sub = await self.bridge.run(self.nc.subscribe, subject, queue=queue, cb=cb)
        try:
            async with receive:
                yield receive
        finally:
            send.close()
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(5),
                contextlib.suppress(nats.errors.Error, BrokerError),
            ):
                await self.bridge.run(sub.unsubscribe)

    @contextlib.asynccontextmanager
    async def on_messages(
        self, subject: str, callback: Callable[[bytes], None]
    ) -> AsyncIterator[None]:
        """Call ``callback(data)`` in the Trio thread for each message on ``subject``,
        for the duration of the block (registered with the server when it starts).

        Over the link when open (the callback runs in its reader task: no thread hop,
        no task switch), else through nats-py. It must not block. At most once, as
        any core subscription.
        """
        link = await self.open_link()
        if link is not None:
            sid = link.subscribe(subject, lambda _s, _r, data, _st: callback(data))
            try:
                await link.link.flush(self.request_timeout)
                yield
            finally:
                link.unsubscribe(sid)
            return
        token = trio.lowlevel.current_trio_token()

        async def cb(raw: _NatsMsg) -> None:
            token.run_sync_soon(callback, raw.data)

        with translate_errors(f"subscribe to {subject!r}"):
            sub = await self.bridge.run(self.nc.subscribe, subject, cb=cb)
            await self.bridge.run(self.nc.flush, int(self.request_timeout))
        try:
            yield
        finally:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(5),
                contextlib.suppress(nats.errors.Error, BrokerError),
            ):
                await self.bridge.run(sub.unsubscribe)

    # -- JetStream -------------------------------------------------------------------

    async def js_publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        msg_id: str | None = None,
    ) -> PubAck:
        """Publish to a stream and wait for the server's ack.

        ``msg_id`` sets ``Nats-Msg-Id`` so a retried publish within the stream's
        duplicate window is stored once (``PubAck.duplicate`` tells).
        """
        hdrs = _headers(headers, msg_id)
        link = self.link_js if self._link_tried else await self.open_link()
        if link is not None and link.usable:
            # The Trio-owned link: no thread hop (see actorq.nats.link_js).
            try:
                raw = await link.publish(subject, data, hdrs, timeout=self.request_timeout)
            except Exception:  # translated only when raised: no context manager per call
                with translate_errors(f"JetStream publish to {subject!r}"):
                    raise
                raise  # not a NATS error: as it was
            return PubAck(raw.stream, raw.seq, raw.duplicate)
        item = (subject, data, hdrs)
        publisher = self.publisher
        timeout = self.request_timeout

        async def run() -> PubAck:
            # The token-tracked publisher, not js.publish: no request, timer and
            # wait_for per message (0.40x -> 0.5x for many concurrent callers).
            async with asyncio.timeout(timeout):
                (ack,) = await publisher.publish([item])
            if isinstance(ack, BaseException):
                raise ack
            return PubAck(ack.stream, ack.seq, ack.duplicate)

        with translate_errors(f"JetStream publish to {subject!r}"):
            result: PubAck = await self.bridge.run(run)
        return result

    async def js_publish_many(
        self, messages: Sequence[OutMsg], *, window: int = 1024
    ) -> list[PubAck]:
        """Publish a batch with up to ``window`` acks outstanding; one Trio crossing.

        Returns the acks in order. If any publish fails the first error is raised
        after the rest have settled (the others may have been stored).
        """
        items = [(m.subject, m.data, _headers(m.headers, m.msg_id)) for m in messages]
        timeout = self.request_timeout + len(items) / 1000

        async def run() -> list[PubAck]:
            async with asyncio.timeout(timeout):
                results = await self.publisher.publish(items, window=window)
            acks: list[PubAck] = []
            for r in results:
                if isinstance(r, BaseException):
                    raise r
                acks.append(PubAck(r.stream, r.seq, r.duplicate))
            return acks

        with translate_errors(f"JetStream publish of {len(messages)} messages"):
            acks: list[PubAck] = await self.bridge.run(run)
        return acks

    async def pull_consumer(
        self, stream: str, durable: str, *, filter_subject: str | None = None
    ) -> PullConsumer:
        """Bind to an existing durable pull consumer (see :mod:`actorq.nats.provisioning`)."""
        with translate_errors(f"bind to consumer {stream}/{durable}"):
            psub = await self.bridge.run(self.js.pull_subscribe_bind, durable, stream)
        return PullConsumer(self, psub, stream, durable)

    async def jsm(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a JetStream management method (``add_stream``, ``stream_info``, ...)."""
        fn = getattr(self.js, method)
        with translate_errors(f"JetStream {method}"):
            return await self.bridge.run(fn, *args, **kwargs)

    async def kv(self, bucket: str) -> KeyValueStore:
        """Open an existing KV bucket (create it with :mod:`actorq.nats.provisioning`)."""
        with translate_errors(f"open KV bucket {bucket!r}"):
            store = await self.bridge.run(self.js.key_value, bucket)
        return KeyValueStore(self.bridge, store, bucket)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the client is currently connected."""
        return bool(self.nc.is_connected)

    @property
    def url(self) -> str:
        """The URL of the server the client is connected to."""
        cur = self.nc.connected_url
        return cur.geturl() if cur is not None else ""

    @property
    def max_payload(self) -> int:
        """The largest message the server takes (its ``max_payload``; 1 MiB by default)."""
        return int(getattr(self.nc, "max_payload", 0) or DEFAULT_MAX_PAYLOAD)

    @property
    def server_info(self) -> dict[str, Any]:
        """The INFO the server sent on connect (``version``, ``jetstream``, ...).

        nats-py keeps it in a private attribute; ``tests/nats/test_connection.py``
        fails loudly if a nats-py upgrade moves it.
        """
        return dict(self.nc._server_info)


class PullConsumer:
    """A durable JetStream pull consumer; fetch in batches, ack in batches."""

    def __init__(self, conn: Connection, psub: Any, stream: str, durable: str) -> None:
        self._conn = conn
        self._bridge = conn.bridge
        self._psub = psub
        self.stream = stream
        self.durable = durable

    async def fetch(self, batch: int, *, expires: float = 1.0) -> list[JsMsg]:
        """Up to ``batch`` messages; an empty list when none arrived within ``expires``.

        Fetch only as many as you can work on: a fetched message counts against the
        consumer's ack wait from the moment it is delivered.
        """
        psub = self._psub

        async def run() -> list[_NatsMsg]:
            # One request per fetch, waited for until the server ends it: see pull_fetch.
            msgs: list[_NatsMsg] = await fetch_batch(psub, batch, expires)
            return msgs

        try:
            with translate_errors(f"fetch from {self.stream}/{self.durable}"):
                raw = await self._bridge.run(run)
        except BrokerError as exc:
            if not is_transient(exc):
                raise
            # Reconnecting, or a cluster electing the stream's leader: nothing came.
            log.warning("%s; fetching again in %.1fs", exc, FETCH_RETRY)
            await trio.sleep(FETCH_RETRY)
            return []
        return [JsMsg(m) for m in raw]

    async def ack_many(self, msgs: Sequence[JsMsg]) -> None:
        """Acknowledge a batch of messages in one crossing."""
        raws = [m._raw for m in msgs]

        async def run() -> None:
            for m in raws:
                await m.ack()

        with translate_errors("ack"):
            await self._bridge.run(run)

    async def ack(self, msg: JsMsg) -> None:
        """Acknowledge one message."""
        await self.ack_many([msg])

    async def ack_sync(self, msg: JsMsg) -> None:
        """Acknowledge and wait until the server confirms it stored the ack."""
        with translate_errors("ack"):
            await self._bridge.run(msg._raw.ack_sync, self._conn.request_timeout)

    async def nak(self, msg: JsMsg, delay: float | None = None) -> None:
        """Ask for redelivery, after ``delay`` seconds if given."""
        with translate_errors("nak"):
            await self._bridge.run(msg._raw.nak, delay)

    async def term(self, msg: JsMsg) -> None:
        """Stop redelivering this message for good."""
        with translate_errors("term"):
            await self._bridge.run(msg._raw.term)

    async def in_progress(self, msgs: Sequence[JsMsg]) -> None:
        """Reset the ack-wait timer of messages still being worked on."""
        raws = [m._raw for m in msgs]

        async def run() -> None:
            for m in raws:
                await m.in_progress()

        with translate_errors("in_progress"):
            await self._bridge.run(run)

    async def info(self) -> Any:
        """The consumer's ``ConsumerInfo`` (pending, ack pending, delivered, ...)."""
        with translate_errors(f"consumer info {self.stream}/{self.durable}"):
            return await self._bridge.run(self._psub.consumer_info)


async def _log_error(exc: Exception) -> None:
    log.debug("nats client error: %s: %s", type(exc).__name__, exc)


@contextlib.asynccontextmanager
async def _open_service_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery for a connection's own tasks that gives the caller's errors back as
    they were raised: its tasks never raise (they log and carry on), so a group here
    only wraps what the ``open_nats`` block raised."""
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            only = group.exceptions[0]
            raise only from only.__cause__
        raise


@contextlib.asynccontextmanager
async def open_nats(
    servers: str | Sequence[str] = DEFAULT_URL,
    *,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    credentials: str | None = None,
    tls: ssl.SSLContext | None = None,
    tls_hostname: str | None = None,
    name: str | None = None,
    connect_timeout: float = 5.0,
    max_reconnect_attempts: int = 60,
    request_timeout: float = 5.0,
    **options: Any,
) -> AsyncIterator[Connection]:
    """Connect to NATS for the duration of the block (Trio).

    ``servers`` is one URL or a list; ``credentials`` is a ``.creds`` file path;
    ``tls`` an :class:`ssl.SSLContext`. Other keyword arguments go to
    ``nats.connect`` unchanged. Raises :class:`~actorq.ConnectionFailed` when no
    server answers within ``connect_timeout``.

    Example::

        async with open_nats(["nats://a:4222", "nats://b:4222"], token="s3cret") as nc:
            await nc.publish("greet", b"hi")
    """
    server_list = [servers] if isinstance(servers, str) else list(servers)
    refused: list[Exception] = []  # authorization errors seen while connecting
    seen: list[Exception] = []  # every error seen while connecting: the last says why

    async def on_error(exc: Exception) -> None:
        if "authorization" in str(exc).lower():
            refused.append(exc)
        if not connected:
            seen[:] = [exc]
        await _log_error(exc)

    connected = False

    kwargs: dict[str, Any] = {
        "servers": server_list,
        "user": user,
        "password": password,
        "token": token,
        "user_credentials": credentials,
        "tls": tls,
        "tls_hostname": tls_hostname,
        "name": name,
        "connect_timeout": connect_timeout,
        "max_reconnect_attempts": max_reconnect_attempts,
        "error_cb": on_error,
        **options,
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    async with open_bridge() as bridge:
        nc = _NatsClient()

        async def connect() -> None:
            # allow_reconnect off for the first attempt only would need a second
            # client; instead bound the initial connect ourselves.
            await nc.connect(**kwargs)

        try:
            with trio.fail_after(connect_timeout * max(1, len(server_list)) + 1):
                await bridge.run(connect)
        except BaseException as exc:
            # A connect cut short (timeout, cancel, refused) can leave nats-py holding
            # a half-open socket: close it before the bridge's loop goes away.
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(2),
                contextlib.suppress(Exception),
            ):
                await bridge.run(nc.close)
            if not isinstance(exc, trio.TooSlowError | OSError | nats.errors.Error):
                raise
            if refused or "authorization" in str(exc).lower():
                raise ConnectionFailed(
                    f"NATS at {', '.join(server_list)} refused these credentials "
                    f"({refused[-1] if refused else exc}). "
                    "`actorq up` keeps those of its embedded server in its data dir "
                    "(credentials.json): run from the directory it runs in, or set "
                    "ACTORQ_CREDENTIALS_FILE or ACTORQ_NATS_DATA_DIR, or pass user and "
                    "password (see docs/security.md)."
                ) from exc
            # nats-py keeps retrying until our deadline: the error it last reported
            # (connection refused, a TLS failure...) says more than the timeout.
            cause = seen[-1] if seen and isinstance(exc, trio.TooSlowError) else exc
            why = str(cause) or type(cause).__name__
            if isinstance(cause, ConnectionRefusedError):
                why = f"connection refused ({why})"
            elif isinstance(cause, TimeoutError | trio.TooSlowError):
                why = f"no answer within {connect_timeout:g}s"
            raise ConnectionFailed(
                f"could not connect to NATS at {', '.join(server_list)}: {why}. Is the "
                "server running (try `actorq server`) and are the URL and credentials right?"
            ) from exc
        connected = True
        try:
            async with _open_service_nursery() as service:
                conn = Connection(bridge, nc, request_timeout=request_timeout, service=service)
                try:
                    yield conn
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(5):
                        await conn._close_services()
        finally:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(5),
                contextlib.suppress(Exception),
            ):
                await bridge.run(nc.close)
