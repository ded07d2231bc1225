"""JetStream key-value buckets from Trio: get, put, create, update, delete, watch."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import nats.errors
import nats.js.errors
import trio

from actorq.nats.bridge import AsyncioBridge
from actorq.nats.errors import translate_errors

__all__ = ["KeyValueStore", "KvEntry"]

log = logging.getLogger("actorq.nats")

Operation = Literal["PUT", "DEL", "PURGE"]


class KvEntry:
    """One value (or a deletion marker, with ``operation`` DEL/PURGE) of a key."""

    __slots__ = ("key", "operation", "revision", "value")

    def __init__(self, key: str, value: bytes, revision: int, operation: Operation) -> None:
        self.key = key
        self.value = value
        self.revision = revision
        self.operation = operation

    def __repr__(self) -> str:
        return f"KvEntry({self.key!r}, rev={self.revision}, op={self.operation})"


def entry_of(raw: Any) -> KvEntry:
    """A nats-py KV entry as a :class:`KvEntry`."""
    op: Operation = raw.operation or "PUT"
    return KvEntry(raw.key, raw.value or b"", int(raw.revision or 0), op)


#: Seconds the server keeps a watch's consumer once nobody listens (a watch whose
#: delete was lost, e.g. across a reconnect); nats-py's default is 5 minutes.
_WATCH_INACTIVE = 30.0


class KeyValueStore:
    """A KV bucket. Get one from :meth:`actorq.nats.connection.Connection.kv`."""

    def __init__(self, bridge: AsyncioBridge, store: Any, bucket: str) -> None:
        self._bridge = bridge
        self._kv = store
        self.bucket = bucket

    @property
    def connected(self) -> bool:
        """Whether the bucket's connection is up right now (not closed, not
        reconnecting): a server round trip can be answered."""
        return bool(self._kv._js._nc.is_connected)

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        cm: contextlib.AbstractContextManager[None] = translate_errors(f"KV {self.bucket}: {what}")
        return cm

    async def get(self, key: str) -> KvEntry | None:
        """The current entry of ``key``, or ``None`` when absent or deleted."""
        kv = self._kv

        async def run() -> Any:
            try:
                return await kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return None

        with self._errors(f"get {key!r}"):
            raw = await self._bridge.run(run)
        return None if raw is None else entry_of(raw)

    async def put(self, key: str, value: bytes) -> int:
        """Store ``value`` under ``key``; returns the new revision."""
        with self._errors(f"put {key!r}"):
            rev: int = await self._bridge.run(self._kv.put, key, value)
        return rev

    async def create(self, key: str, value: bytes) -> int:
        """Store only if ``key`` does not exist; raises :class:`~actorq.exceptions.KeyExists`."""
        with self._errors(f"create {key!r}"):
            rev: int = await self._bridge.run(self._kv.create, key, value)
        return rev

    async def update(self, key: str, value: bytes, last_revision: int) -> int:
        """Compare-and-set: store only if the key is still at ``last_revision``."""
        with self._errors(f"update {key!r}"):
            rev: int = await self._bridge.run(self._kv.update, key, value, last_revision)
        return rev

    async def delete(self, key: str) -> None:
        """Delete ``key`` (a watcher sees a DEL entry)."""
        with self._errors(f"delete {key!r}"):
            await self._bridge.run(self._kv.delete, key)

    async def purge(self, key: str) -> None:
        """Delete ``key`` and its history."""
        with self._errors(f"purge {key!r}"):
            await self._bridge.run(self._kv.purge, key)

    async def keys(self) -> list[str]:
        """All keys currently present (empty list for an empty bucket)."""
        kv = self._kv

        async def run() -> list[str]:
            try:
                keys: list[str] = await kv.keys()
            except nats.js.errors.NoKeysError:
                return []
            return keys

        with self._errors("keys"):
            keys: list[str] = await self._bridge.run(run)
        return keys

    @contextlib.asynccontextmanager
    async def watch(
        self, keys: str = ">", *, include_history: bool = False, max_pending: int = 10_000
    ) -> AsyncIterator[trio.MemoryReceiveChannel[KvEntry | None]]:
        """Watch keys matching ``keys`` (wildcards allowed) for the block's duration.

        The channel first yields the current values, then ``None`` once caught up,
        then every later change as it happens (push, no polling). Entries beyond
        ``max_pending`` unread ones are dropped with a warning: a watcher of a whole
        large bucket (the dashboard's job index) raises it.
        """
        send, receive = trio.open_memory_channel[KvEntry | None](max_pending)
        token = trio.lowlevel.current_trio_token()
        kv = self._kv

        def deliver(item: KvEntry | None) -> None:
            try:
                send.send_nowait(item)
            except trio.WouldBlock:
                log.warning("KV watch on %s is slow: dropped an update", self.bucket)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                # The block has ended: nobody reads this any more.
                pass

        async def start() -> Any:
            watcher = await kv.watch(
                keys, include_history=include_history, inactive_threshold=_WATCH_INACTIVE
            )

            async def forward() -> None:
                while True:
                    raw = await watcher.updates(timeout=None)
                    token.run_sync_soon(deliver, None if raw is None else entry_of(raw))

            task = self._bridge.loop.create_task(forward())
            return watcher, task

        with self._errors(f"watch {keys!r}"):
            watcher, task = await self._bridge.run(start)
        try:
            async with receive:
                yield receive
        finally:
            send.close()
            connected = self.connected

            async def stop() -> None:
                task.cancel()
                with contextlib.suppress(Exception):
                    await watcher.stop()
                if not connected:
                    # No server to ask: the delete would only wait out the request
                    # timeout (5 s, seen in every process stopping with its server
                    # gone); the server drops the consumer after _WATCH_INACTIVE.
                    return
                # Each watch is a consumer on the bucket's stream: delete it now, not
                # when its inactivity threshold passes, or a burst of short watches
                # (one per job.result()) runs into the server's consumer limit.
                with contextlib.suppress(Exception):
                    sub = watcher._sub
                    await sub._js.delete_consumer(sub._stream, sub._consumer)

            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(5),
                contextlib.suppress(nats.errors.Error),
            ):
                await self._bridge.run(stop)
