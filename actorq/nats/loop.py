"""The asyncio side of a connection, typed: for programs that run on its loop.

Most of actorq talks to NATS from Trio through :class:`~actorq.nats.connection.Connection`,
one crossing per call or per batch. A few hot loops (the result actor's outcome
batches, the scheduler's fires, a queue actor's report flush) do many NATS steps per
batch; crossing for each step would cost about 2x (see ``docs/nats.md``), so they run
whole on the connection's asyncio loop, started with ``conn.bridge.run(...)``.

This module is what those programs hold instead of nats-py objects: a typed surface
whose errors are actorq's own (:class:`~actorq.BrokerError` and its tree), so no module
outside :mod:`actorq.nats` imports ``nats`` or sees a raw nats-py message.

Everything here must be called on the connection's loop (inside ``bridge.run``), never
from Trio directly.

Example (what the result actor does)::

    async def drain(side: LoopSide) -> None:
        pull = await side.pull("outcomes", durable="results")
        for msg in await pull.fetch(32, expires=1.0):
            ...
            await side.settle([(msg, "ack", None)])

    await conn.bridge.run(drain, conn.loop)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Literal

import nats.errors
import nats.js.errors

from actorq.exceptions import ActorqError, BrokerError, BrokerTimeout
from actorq.exceptions import NotFound as _Missing  # KV "not found" and "deleted" alike
from actorq.nats.delivery import JsMsg, PubAck
from actorq.nats.errors import FETCH_RETRY, is_transient, translate_errors
from actorq.nats.kv import KvEntry, entry_of
from actorq.nats.publisher import Item, JsPublisher, RawAck

__all__ = ["LoopKv", "LoopPull", "LoopSide", "Settle"]

log = logging.getLogger("actorq.nats")

#: What to do with a consumed message: ack it, ask for redelivery, or drop it for good.
Settle = Literal["ack", "nak", "term"]


def _ack_or_error(ack: RawAck | BaseException, what: str) -> PubAck | ActorqError:
    if isinstance(ack, RawAck):
        return PubAck(ack.stream, ack.seq, ack.duplicate)
    try:
        with translate_errors(what):
            raise ack
    except ActorqError as exc:
        return exc
    # Not a NATS error (a bug): let it surface.
    raise AssertionError("unreachable") from ack  # pragma: no cover


class LoopSide:
    """The connection as seen from its own asyncio loop. Get it as ``conn.loop``."""

    def __init__(self, nc: Any, publisher: JsPublisher, request_timeout: float) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=request_timeout)
        self._publisher = publisher
        self.request_timeout = request_timeout

    async def publish(self, subject: str, data: bytes) -> None:
        """Core NATS publish (fire and forget; buffered by the client)."""
        with translate_errors(f"publish to {subject}"):
            await self._nc.publish(subject, data)

    async def js_publish(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> PubAck:
        """Publish to JetStream and wait for the ack.

        Raises :class:`~actorq.exceptions.Conflict` when an ``Nats-Expected-Last-*`` header did not
        hold (someone wrote first), other :class:`~actorq.BrokerError`\\ s otherwise.
        """
        with translate_errors(f"publish to {subject}"):
            ack = await self._js.publish(subject, data, headers=headers)
        return PubAck(ack.stream, ack.seq, bool(ack.duplicate))

    async def js_publish_batch(
        self, items: Sequence[Item], *, within: float | None = None
    ) -> list[PubAck | ActorqError]:
        """Publish every item pipelined; returns, in order, each ack or its error.

        ``within`` bounds the whole batch, in seconds (default: the request timeout plus a
        millisecond per message); past it, raises :class:`~actorq.exceptions.BrokerTimeout`
        and the messages may or may not be stored.
        """
        if not items:
            return []
        limit = within if within is not None else self.request_timeout + len(items) / 1000
        try:
            async with asyncio.timeout(limit):
                acks = await self._publisher.publish(items)
        except TimeoutError as exc:
            raise BrokerTimeout(
                f"publish of {len(items)} messages: NATS did not answer within {limit:.1f}s"
            ) from exc
        except nats.errors.Error as exc:
            raise BrokerError(f"publish of {len(items)} messages: {exc}") from exc
        pairs = zip(acks, items, strict=True)
        return [_ack_or_error(ack, f"publish to {subject}") for ack, (subject, _, _) in pairs]

    async def kv(self, bucket: str) -> LoopKv:
        """An existing KV bucket (create it with :mod:`actorq.nats.provisioning`)."""
        with translate_errors(f"open KV {bucket}"):
            return LoopKv(await self._js.key_value(bucket), bucket)

    async def pull(self, stream: str, durable: str) -> LoopPull:
        """Bind to an existing durable pull consumer."""
        with translate_errors(f"bind consumer {stream}/{durable}"):
            psub = await self._js.pull_subscribe_bind(durable, stream)
        return LoopPull(psub, stream, durable)

    async def sleep(self, seconds: float) -> None:
        """Pause this loop-side program (a retry's backoff)."""
        await asyncio.sleep(seconds)

    async def gather(self, *steps: Awaitable[None]) -> None:
        """Run ``steps`` concurrently on the loop; the first error propagates."""
        await asyncio.gather(*steps)

    async def settle(self, items: Sequence[tuple[JsMsg, Settle, float | None]]) -> None:
        """Ack, nak (after the given delay) or term each message, in order."""
        with translate_errors(f"settle {len(items)} messages"):
            for msg, action, delay in items:
                raw = msg._raw
                if action == "ack":
                    await raw.ack()
                elif action == "nak":
                    await raw.nak(delay)
                else:
                    await raw.term()


class LoopPull:
    """A durable pull consumer on the asyncio side. Get one from :meth:`LoopSide.pull`."""

    def __init__(self, psub: Any, stream: str, durable: str) -> None:
        self._psub = psub
        self.stream = stream
        self.durable = durable

    async def fetch(self, batch: int, *, expires: float = 1.0) -> list[JsMsg]:
        """Up to ``batch`` messages; an empty list when none came within ``expires``."""
        try:
            with translate_errors(f"fetch from {self.stream}/{self.durable}"):
                raw = await self._psub.fetch(batch, timeout=expires)
        except BrokerTimeout:
            return []
        except BrokerError as exc:
            if not is_transient(exc):
                raise
            # Reconnecting, or a cluster electing the stream's leader: nothing came.
            log.warning("%s; fetching again in %.1fs", exc, FETCH_RETRY)
            await asyncio.sleep(FETCH_RETRY)
            return []
        return [JsMsg(m) for m in raw]


class LoopKv:
    """A KV bucket on the asyncio side. Get one from :meth:`LoopSide.kv`."""

    def __init__(self, store: Any, bucket: str) -> None:
        self._kv = store
        self.bucket = bucket
        #: Subject prefix of the bucket's keys (for conditional writes by publish).
        self.subject_prefix = f"$KV.{bucket}."

    async def get(self, key: str) -> KvEntry | None:
        """The current entry, or ``None`` when the key is absent or deleted."""
        entry = await self.get_any(key)
        return None if entry is None or entry.operation != "PUT" else entry

    async def get_any(self, key: str) -> KvEntry | None:
        """The latest entry, deletes included (a delete carries the revision a
        conditional write must name); ``None`` when the key never existed."""
        try:
            with translate_errors(f"KV {self.bucket}: get {key!r}"):
                raw = await self._kv.get(key)
        except _Missing as exc:
            return _deleted_entry(exc.__cause__, key)
        return entry_of(raw)

    async def create(self, key: str, value: bytes) -> int:
        """Write ``key`` only if absent; raises :class:`~actorq.exceptions.KeyExists` otherwise."""
        with translate_errors(f"KV {self.bucket}: create {key!r}"):
            return int(await self._kv.create(key, value))

    async def update(self, key: str, value: bytes, last_revision: int) -> int:
        """Write ``key`` only if its revision is still ``last_revision``; raises
        :class:`~actorq.exceptions.Conflict` otherwise."""
        with translate_errors(f"KV {self.bucket}: update {key!r}"):
            return int(await self._kv.update(key, value, last=last_revision))

    async def keys(self, pattern: str = ">") -> set[str]:
        """Keys (not deleted) matching a subject ``pattern`` such as ``"p.>"``.

        A watch filtered by subject: nats-py's ``keys(filters=...)`` matches substrings.
        """
        found: set[str] = set()
        with translate_errors(f"KV {self.bucket}: keys {pattern!r}"):
            watcher = await self._kv.watch(pattern, ignore_deletes=True, meta_only=True)
            try:
                async for entry in watcher:
                    if not entry:
                        break
                    found.add(entry.key)
            finally:
                await watcher.stop()
        return found

    async def delete(self, key: str) -> None:
        """Delete ``key``; nothing happens when it is absent."""
        try:
            with translate_errors(f"KV {self.bucket}: delete {key!r}"):
                await self._kv.delete(key)
        except _Missing:
            return


def _deleted_entry(cause: BaseException | None, key: str) -> KvEntry | None:
    # nats-py reports a deleted or purged key as "not found", carrying the marker
    # (KeyDeletedError for a delete, KeyNotFoundError with an entry for a purge).
    entry = getattr(cause, "entry", None)
    if isinstance(cause, nats.js.errors.KeyNotFoundError) and entry is not None:
        return KvEntry(key, b"", int(entry.revision or 0), entry.operation or "DEL")
    return None
