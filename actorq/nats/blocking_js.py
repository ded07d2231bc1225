"""Blocking JetStream publishes from plain threads, on a small pool of sockets.

The sync helper (:class:`actorq.SyncClient`) runs its client on a Trio loop in a
thread of its own; a call handed to that loop costs two thread wake-ups (the caller's
and the loop's) on top of the work. An enqueue is one JetStream publish and its ack,
so the calling thread can do it itself: a ``PUB`` with a reply subject on a blocking
socket, then read until that reply comes. No other thread wakes, and the GIL is free
while the caller waits on the socket.

Each socket serves one caller at a time; :class:`BlockingJsPool` lends them out (up to
``size`` at once, opened on demand). Callers beyond that, or any failure to connect,
get ``None`` and take the loop's path, which works for everything.

Speaks what :class:`~actorq.nats.actor_link.TrioLink` speaks (plain TCP, no auth,
user/password or a token), with the same ``CONNECT`` options.

Example::

    pool = BlockingJsPool(lambda: ("127.0.0.1", 4222, {"verbose": False}), timeout=5.0)
    js = pool.acquire()
    if js is not None:
        try:
            ack = js.publish("actorq.jobs.default.x", b"...", None)
        finally:
            pool.release(js)
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from actorq.exceptions import BrokerTimeout, ConnectionFailed
from actorq.nats.actor_link import _frame
from actorq.nats.errors import translate_errors
from actorq.nats.publisher import RawAck, settle_ack

__all__ = ["BlockingJs", "BlockingJsPool", "SentUnanswered"]

#: ``(host, port, CONNECT options)``, as :func:`~actorq.nats.actor_link.link_options`.
Target = tuple[str, int, dict[str, Any]]


class SentUnanswered(BrokerTimeout):
    """A publish went out but no ack came back (timeout, connection lost): the message
    may or may not be stored."""


class BlockingJs:
    """One blocking NATS connection that publishes to JetStream; one caller at a time."""

    def __init__(self, target: Target, timeout: float, inbox: str = "_INBOX") -> None:
        host, port, connect = target
        self.timeout = timeout
        self._prefix = f"{inbox}.{uuid.uuid4().hex}."
        self._next = 0
        self._buf = bytearray()
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ConnectionFailed(f"NATS at {host}:{port}: {exc}") from exc
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            info = self._line()
            if not info.startswith(b"INFO ") or json.loads(info[5:]).get("tls_required"):
                raise ConnectionFailed(f"NATS at {host}:{port} wants more than plain TCP")
            self._sock.sendall(
                b"CONNECT %s\r\nSUB %s* 1\r\nPING\r\n"
                % (json.dumps({**connect, "name": "actorq-sync"}).encode(), self._prefix.encode())
            )
            while True:
                line = self._line()
                if line.startswith(b"-ERR"):
                    raise ConnectionFailed(f"NATS refused the connection: {line.decode()}")
                if line == b"PONG":
                    break
        except (OSError, ConnectionFailed) as exc:
            self._sock.close()
            if isinstance(exc, ConnectionFailed):
                raise
            raise ConnectionFailed(f"NATS at {host}:{port}: {exc}") from exc

    def publish(self, subject: str, data: bytes, headers: Mapping[str, str] | None) -> RawAck:
        """Publish and wait for the ack. Raises :class:`ConnectionFailed` when nothing
        was sent (take another path), :class:`SentUnanswered` when it was sent but no
        ack came, and actorq's translation of a JetStream error otherwise."""
        self._next += 1
        token = str(self._next).encode()
        cmd = _frame(subject, data, self._prefix + token.decode(), headers)
        try:
            self._sock.sendall(cmd)
        except OSError as exc:
            raise ConnectionFailed(f"publish to {subject!r} not sent: {exc}") from exc
        try:
            ack_data, no_responders = self._wait_reply(self._prefix.encode() + token)
        except OSError as exc:
            raise SentUnanswered(
                f"JetStream publish to {subject!r}: no ack ({exc!r}); it may or may not be stored"
            ) from exc
        result = settle_ack(ack_data, no_responders=no_responders)
        if isinstance(result, BaseException):
            with translate_errors(f"JetStream publish to {subject!r}"):
                raise result
        return result

    def idle_ok(self) -> bool:
        """Whether the server sent nothing while this was idle: no EOF (it closed us),
        no ``PING`` unanswered, no late ack. Anything at all retires the connection
        (simpler than parsing it, and rare)."""
        if self._buf:
            return False
        try:
            # Not recv(MSG_DONTWAIT): a socket with a timeout polls before it reads.
            # poll, not select: a busy process's descriptors may be past 1024.
            poller = select.poll()
            poller.register(self._sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):  # closed
            return False

    def close(self) -> None:
        self._sock.close()

    # -- protocol ----------------------------------------------------------------------

    def _recv(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self._buf += chunk

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 2]
                return line
            self._recv()

    def _payload(self, size: int) -> bytes:
        while len(self._buf) < size + 2:
            self._recv()
        data = bytes(self._buf[:size])
        del self._buf[: size + 2]
        return data

    def _wait_reply(self, subject: bytes) -> tuple[bytes, bool]:
        """The payload of the next message on ``subject`` (and whether it is a "no
        responders" status); answers the server's PINGs meanwhile, skips the rest
        (a late ack of an earlier publish that timed out)."""
        while True:
            line = self._line()
            if line.startswith(b"MSG "):
                parts = line.split(b" ")
                data = self._payload(int(parts[-1]))
                if parts[1] == subject:
                    return data, False
            elif line.startswith(b"HMSG "):
                parts = line.split(b" ")
                hdr_len, total = int(parts[-2]), int(parts[-1])
                raw = self._payload(total)
                if parts[1] == subject:
                    return raw[hdr_len:], raw.startswith(b"NATS/1.0 503")
            elif line == b"PING":
                self._sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise ConnectionResetError(f"NATS error: {line.decode()}")
            # INFO, PONG, +OK: nothing to do


#: Seconds a pool waits after a failed connect before it tries to open one again.
_RETRY_CONNECT = 1.0


class BlockingJsPool:
    """Up to ``size`` :class:`BlockingJs` connections, lent to one thread at a time.

    ``locate()`` says where to connect when a connection is opened (the server the
    main connection is on now), or ``None`` when the sockets cannot be used.
    """

    def __init__(
        self,
        locate: Callable[[], Target | None],
        *,
        timeout: float,
        size: int = 4,
        inbox: str = "_INBOX",
    ) -> None:
        self.locate = locate
        #: Reply subjects start with this (the main connection's inbox prefix).
        self.inbox = inbox
        self.timeout = timeout
        self.size = size
        self._lock = threading.Lock()
        self._idle: list[BlockingJs] = []
        self._open = 0
        self._closed = False
        self._retry_at = 0.0
        #: Publishes that took this path (tests and benchmarks check which path ran).
        self.published = 0

    def acquire(self) -> BlockingJs | None:
        """An idle connection (a new one if fewer than ``size`` are open), or ``None``."""
        while True:
            with self._lock:
                if self._closed:
                    return None
                if not self._idle:
                    break
                js = self._idle.pop()
            if js.idle_ok():
                return js
            self.release(js, broken=True)
        with self._lock:
            if self._open >= self.size or time.monotonic() < self._retry_at:
                return None
            self._open += 1
        target = self.locate()
        try:
            if target is None:
                raise ConnectionFailed("no plain-TCP server to connect to")
            return BlockingJs(target, self.timeout, self.inbox)
        except ConnectionFailed:
            with self._lock:
                self._open -= 1
                self._retry_at = time.monotonic() + _RETRY_CONNECT
            return None

    def release(self, js: BlockingJs, *, broken: bool = False) -> None:
        """Give ``js`` back; ``broken`` closes it (a later acquire opens a new one)."""
        with self._lock:
            if broken or self._closed:
                self._open -= 1
            else:
                self.published += 1
                self._idle.append(js)
                return
        js.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for js in idle:
            js.close()
