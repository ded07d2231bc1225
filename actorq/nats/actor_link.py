"""A minimal core-NATS client on a Trio socket, for the actors' hot path.

nats-py lives on an asyncio loop in another thread (:mod:`actorq.nats.bridge`); each hop to
it and back costs a thread wake-up (~50 µs each here), and an actor ``ask`` would need
four of them. Core NATS itself is a small text protocol, so the actors' own messages
(``send``, ``ask``, replies, acks, at-most-once mailboxes) travel on a second
connection that Trio owns: ``PUB``, ``SUB``/``UNSUB``, ``MSG``/``HMSG``,
``PING``/``PONG``, nothing else. JetStream management and durable pulls stay on
nats-py.

Used only when the nats-py connection needs nothing this client lacks: plain TCP
with no auth, user/password or a token. TLS, ``.creds`` files and nkeys fall back to
the bridge path (:func:`link_options` returns ``None``).

The link reconnects by itself (every 0.5 s) and subscribes again; what is published
while it is down waits in its buffer (core NATS is at most once anyway).

Example::

    link = await TrioLink.open("127.0.0.1", 4222, {"verbose": False})
    nursery.start_soon(link.serve)
    sid = link.subscribe("greet", "", lambda subject, reply, data, status: print(data))
    link.publish_nowait("greet", b"hi")
    await link.flush()
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

import trio

from actorq.exceptions import ConnectionFailed

__all__ = ["LinkCallback", "TrioLink", "link_options"]

log = logging.getLogger("actorq.actors.actor")

#: ``callback(subject, reply, data, status)``; ``status`` is ``b"503"`` for "no
#: responders", else ``b""``. Runs in the link's reader task: it must not block.
LinkCallback = Callable[[bytes, bytes, bytes, bytes], None]

#: Where to (re)connect: ``(host, port, CONNECT options)`` or ``None``.
Locate = Callable[[], "tuple[str, int, dict[str, Any]] | None"]

_MAX_BUFFER = 64 * 1024 * 1024


def link_options(nc: Any) -> tuple[str, int, dict[str, Any]] | None:
    """``(host, port, CONNECT options)`` to open a link beside nats-py client ``nc``,
    or ``None`` when the connection uses something the link does not speak."""
    opts = nc.options
    needs_more = (
        opts.get("tls")
        or opts.get("user_credentials")
        or opts.get("nkeys_seed")
        or opts.get("nkeys_seed_str")
        or opts.get("signature_cb")
        or opts.get("user_jwt_cb")
    )
    url = nc.connected_url
    if needs_more or url is None or url.scheme not in ("nats", ""):
        return None
    connect: dict[str, Any] = {
        "verbose": False,
        "pedantic": False,
        "headers": True,
        "no_responders": True,
        "lang": "python-trio",
        "version": "actorq",
        "protocol": 1,
        "name": "actorq-actors",
    }
    user = url.username or opts.get("user")
    password = url.password or opts.get("password")
    token = opts.get("token")
    if user:
        connect["user"] = user
        connect["pass"] = password or ""
    elif token:
        connect["auth_token"] = token
    return url.hostname or "127.0.0.1", url.port or 4222, connect


class TrioLink:
    """One Trio-owned NATS connection; create with :meth:`open`, end with :meth:`aclose`."""

    def __init__(
        self, host: str, port: int, connect: dict[str, Any], locate: Locate | None = None
    ) -> None:
        self._locate = locate
        self._host = host
        self._port = port
        self._connect = connect
        self._stream: trio.SocketStream | None = None
        # The same socket, for send_nowait's synchronous writes (non-blocking).
        self._raw: socket.socket | None = None
        self._wbuf: list[bytes] = []
        self._wsize = 0
        self._want_write = trio.Event()
        self._subs: dict[int, tuple[bytes, LinkCallback]] = {}
        self._next_sid = 0
        self._pongs: list[trio.Event] = []
        self._scope = trio.CancelScope()
        self._closed = False
        #: Its serve task ended (closed or cancelled): no PONG will ever come again.
        self._stopped = False
        self.connected = trio.Event()
        self.dropped = 0
        #: ``-ERR`` lines the server sent (a permission refused, say).
        self.errors = 0
        self._space: trio.Event | None = None
        # Held around every write: the writer task and write_now() share the socket.
        self._wlock = trio.Lock()
        self._leftover = b""

    @classmethod
    async def open(
        cls, host: str, port: int, connect: dict[str, Any], locate: Locate | None = None
    ) -> TrioLink:
        """Connect (raises :class:`~actorq.ConnectionFailed`); then run :meth:`serve`
        in a task whose owner outlives every use of the link.

        ``locate()``, if given, is asked where to reconnect to (in a cluster, the server
        the nats-py connection has moved to); ``None`` keeps the current address.
        """
        link = cls(host, port, connect, locate)
        link._leftover = await link._handshake()
        return link

    async def serve(self) -> None:
        """Read, write and reconnect until :meth:`aclose` or cancellation; cancelling
        it closes the link's socket."""
        leftover, self._leftover = self._leftover, b""
        await self._run(leftover)

    # -- publishing ------------------------------------------------------------------

    def publish_nowait(
        self,
        subject: str,
        data: bytes,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue a publish (``HPUB`` with ``headers``); the writer sends everything
        queued in one write."""
        self._queue(_frame(subject, data, reply, headers))

    def send_nowait(
        self,
        subject: str,
        data: bytes,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """:meth:`publish_nowait`, but written to the socket right here when nothing is
        queued or being written before it (so order holds) and the socket takes it.

        For one request at a time: no task switch to the writer and no await (a
        Trio socket send costs two passes of the scheduler). What the socket does not
        take goes to the writer as usual.
        """
        cmd = _frame(subject, data, reply, headers)
        raw = self._raw
        if raw is None or self._wbuf or self._wlock.locked():
            self._queue(cmd)
            return
        try:
            sent = raw.send(cmd)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # The link is going down (the reader sees it and reconnects). Nothing of
            # it was sent, and a request is answered by its timeout: drop it rather
            # than send it later on another connection, after newer ones.
            self.dropped += 1
            return
        if sent < len(cmd):
            self._queue(cmd[sent:])

    def _queue(self, cmd: bytes) -> None:
        if self._wsize > _MAX_BUFFER:
            self.dropped += 1  # disconnected for long: at most once, so drop
            return
        self._wbuf.append(cmd)
        self._wsize += len(cmd)
        if len(self._wbuf) == 1:
            self._want_write.set()

    async def write_now(self) -> None:
        """Write what is queued from the calling task, unless a write is under way.

        For latency: an asker or an actor finishing a batch saves the hop to the
        writer task (its replies still leave in one write).
        """
        stream = self._stream
        if not self._wbuf or stream is None or self._wlock.locked():
            return
        async with self._wlock:
            data = b"".join(self._wbuf)
            self._wbuf.clear()
            self._wsize = 0
            try:
                await stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # The reader sees the loss and reconnects; this goes out after that.
                self._wbuf.insert(0, data)
                self._wsize += len(data)

    async def wait_writable(self, limit: int = 8 * 1024 * 1024) -> None:
        """Wait while more than ``limit`` bytes are queued (backpressure)."""
        while self._wsize > limit:
            if self._space is None:
                self._space = trio.Event()
            await self._space.wait()

    async def flush(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the server has processed everything queued so far."""
        if self._stopped:
            raise ConnectionFailed(f"the actor link to {self._host}:{self._port} is closed")
        pong = trio.Event()
        self._pongs.append(pong)
        self._queue(b"PING\r\n")
        with trio.move_on_after(timeout) as scope:
            await pong.wait()
        if self._stopped:
            # Woken by the link's end, not by a PONG: say so at once rather than let a
            # caller's cleanup (an inbox's teardown) wait the whole timeout.
            raise ConnectionFailed(f"the actor link to {self._host}:{self._port} closed")
        if scope.cancelled_caught:
            raise ConnectionFailed(f"NATS at {self._host}:{self._port} did not answer a PING")

    # -- subscriptions ---------------------------------------------------------------

    def subscribe(self, subject: str, queue: str, callback: LinkCallback) -> int:
        """Subscribe (in queue group ``queue`` if not empty); returns the sid."""
        self._next_sid += 1
        sid = self._next_sid
        cmd = (
            b"SUB %s %s %d\r\n" % (subject.encode(), queue.encode(), sid)
            if queue
            else (b"SUB %s %d\r\n" % (subject.encode(), sid))
        )
        self._subs[sid] = (cmd, callback)
        self._queue(cmd)
        return sid

    def unsubscribe(self, sid: int) -> None:
        if self._subs.pop(sid, None) is not None:
            self._queue(b"UNSUB %d\r\n" % sid)

    # -- lifecycle -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Write what is queued (bounded to 2 s), then close."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            if self._wbuf and self._stream is not None:
                with contextlib.suppress(ConnectionFailed):
                    await self.flush(2)
        self._scope.cancel()

    async def _handshake(self) -> bytes:
        try:
            with trio.fail_after(10):
                stream, raw = await _connect(self._host, self._port)
                buf = bytearray()
                info = await _read_line(stream, buf)
                if not info.startswith(b"INFO "):
                    raise ConnectionFailed(f"unexpected greeting from NATS: {info[:80]!r}")
                if json.loads(info[5:]).get("tls_required"):
                    raise ConnectionFailed("the server requires TLS")
                hello = b"CONNECT %s\r\nPING\r\n" % json.dumps(self._connect).encode()
                await stream.send_all(hello)
                while True:
                    line = await _read_line(stream, buf)
                    if line.startswith(b"-ERR"):
                        raise ConnectionFailed(f"NATS refused the actor link: {line.decode()}")
                    if line == b"PONG":
                        break
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            raise ConnectionFailed(f"actor link to {self._host}:{self._port}: {exc!r}") from exc
        self._stream = stream
        self._raw = raw
        # Subscriptions made before (a reconnect) go first, ahead of queued publishes.
        subs = [cmd for cmd, _ in self._subs.values()]
        if subs:
            self._wbuf[:0] = subs
            self._wsize += sum(map(len, subs))
            self._want_write.set()
        self.connected.set()
        return bytes(buf)

    async def _run(self, leftover: bytes) -> None:
        try:
            await self._serve(leftover)
        finally:
            self._stopped = True
            for pong in self._pongs:
                pong.set()
            self._pongs.clear()
            self._raw = None
            if self._stream is not None:
                with trio.CancelScope(shield=True):
                    await self._stream.aclose()
                self._stream = None

    async def _serve(self, leftover: bytes) -> None:
        with self._scope:
            while not self._closed:
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._writer)
                        await self._reader(leftover)
                        nursery.cancel_scope.cancel()
                except Exception as exc:  # a lost link reconnects; it never takes others down
                    log.warning("actor link to %s:%d lost: %r", self._host, self._port, exc)
                leftover = b""
                self.connected = trio.Event()
                self._raw = None
                if self._stream is not None:
                    with trio.CancelScope(shield=True):
                        await self._stream.aclose()
                    self._stream = None
                while not self._closed:
                    await trio.sleep(0.5)
                    where = self._locate() if self._locate is not None else None
                    if where is not None:
                        self._host, self._port, self._connect = where
                    try:
                        leftover = await self._handshake()
                        break
                    except ConnectionFailed:
                        continue

    async def _writer(self) -> None:
        stream = self._stream
        assert stream is not None
        while True:
            if not self._wbuf:
                self._want_write = trio.Event()
                await self._want_write.wait()
            async with self._wlock:
                if not self._wbuf:
                    continue  # write_now() took it meanwhile
                data = b"".join(self._wbuf)
                self._wbuf.clear()
                self._wsize = 0
                await stream.send_all(data)
            if self._space is not None:
                self._space.set()
                self._space = None

    async def _reader(self, leftover: bytes) -> None:
        stream = self._stream
        assert stream is not None
        buf = bytearray(leftover)
        subs = self._subs
        while True:
            pos = 0
            n = len(buf)
            while pos < n:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                if buf.startswith(b"MSG ", pos):
                    parts = bytes(buf[pos + 4 : end]).split(b" ")
                    size = int(parts[-1])
                    start = end + 2
                    if start + size + 2 > n:
                        break
                    data = bytes(buf[start : start + size])
                    pos = start + size + 2
                    sub = subs.get(int(parts[1]))
                    if sub is not None:
                        sub[1](parts[0], parts[2] if len(parts) == 4 else b"", data, b"")
                elif buf.startswith(b"HMSG ", pos):
                    parts = bytes(buf[pos + 5 : end]).split(b" ")
                    hdr_len, total = int(parts[-2]), int(parts[-1])
                    start = end + 2
                    if start + total + 2 > n:
                        break
                    status_line = bytes(buf[start : start + min(hdr_len, 16)])
                    status = b"503" if status_line.startswith(b"NATS/1.0 503") else b""
                    data = bytes(buf[start + hdr_len : start + total])
                    pos = start + total + 2
                    sub = subs.get(int(parts[1]))
                    if sub is not None:
                        sub[1](parts[0], parts[2] if len(parts) == 5 else b"", data, status)
                else:
                    line = bytes(buf[pos:end])
                    pos = end + 2
                    if line == b"PING":
                        self._queue(b"PONG\r\n")
                    elif line == b"PONG":
                        if self._pongs:
                            self._pongs.pop(0).set()
                    elif line.startswith(b"-ERR"):
                        self.errors += 1
                        log.warning("NATS error on the actor link: %s", line.decode())
            if pos:
                del buf[:pos]
            chunk = await stream.receive_some(262_144)
            if not chunk:
                raise ConnectionFailed("the server closed the actor link")
            buf += chunk


def _frame(subject: str, data: bytes, reply: str, headers: Mapping[str, str] | None) -> bytes:
    """One ``PUB`` (or ``HPUB``, with headers) command."""
    if headers:
        hdr = b"NATS/1.0\r\n%s\r\n" % b"".join(
            b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items()
        )
        size = len(hdr) + len(data)
        if reply:
            head = b"HPUB %s %s %d %d\r\n" % (subject.encode(), reply.encode(), len(hdr), size)
        else:
            head = b"HPUB %s %d %d\r\n" % (subject.encode(), len(hdr), size)
        return head + hdr + data + b"\r\n"
    if reply:
        return b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), reply.encode(), len(data), data)
    return b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(data), data)


async def _connect(host: str, port: int) -> tuple[trio.SocketStream, socket.socket]:
    """A TCP stream to ``host:port`` and its underlying (non-blocking) stdlib socket."""
    error: OSError | None = None
    for family, kind, proto, _, addr in await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        raw = socket.socket(family, kind, proto)
        raw.setblocking(False)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            await sock.connect(addr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return trio.SocketStream(sock), raw  # SocketStream sets TCP_NODELAY
    raise error or OSError(f"no address for {host}:{port}")


async def _read_line(stream: trio.SocketStream, buf: bytearray) -> bytes:
    while True:
        end = buf.find(b"\r\n")
        if end >= 0:
            line = bytes(buf[:end])
            del buf[: end + 2]
            return line
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionFailed("the server closed the connection during the handshake")
        buf += chunk
