"""JetStream object store buckets from Trio: put, get, delete (chunked, with a digest).

Values larger than the server's ``max_payload`` travel here: nats-py cuts them into
chunks of 128 KiB, each a stream message, and checks their SHA-256 digest on read.
The bucket is a stream (``OBJ_<bucket>``); its ``max_age`` is the objects' TTL.
"""

from __future__ import annotations

import contextlib
from typing import Any

import nats.js.errors
from nats.js import api as _api

from actorq.exceptions import BrokerError, IncompatibleStream, NotFound
from actorq.nats.bridge import AsyncioBridge
from actorq.nats.connection import Connection
from actorq.nats.errors import translate_errors
from actorq.nats.provisioning import _await_replicas

__all__ = ["ObjectStore", "ensure_object_store"]


class ObjectStore:
    """An object store bucket; get one from :func:`ensure_object_store`."""

    def __init__(self, bridge: AsyncioBridge, store: Any, bucket: str) -> None:
        self._bridge = bridge
        self._obj = store
        self.bucket = bucket

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        cm: contextlib.AbstractContextManager[None] = translate_errors(
            f"object store {self.bucket}: {what}"
        )
        return cm

    async def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` (replacing an object of that name)."""
        with self._errors(f"put {name!r} ({len(data)} bytes)"):
            await self._bridge.run(self._obj.put, name, data)

    async def get(self, name: str) -> bytes | None:
        """The object's bytes (digest checked), or ``None`` when absent, deleted or expired."""
        obj = self._obj

        async def run() -> bytes | None:
            try:
                result = await obj.get(name)
            except (nats.js.errors.ObjectNotFoundError, nats.js.errors.ObjectDeletedError):
                return None
            except nats.js.errors.NotFoundError:
                return None
            return bytes(result.data or b"")

        with self._errors(f"get {name!r}"):
            data: bytes | None = await self._bridge.run(run)
        return data

    async def delete(self, name: str) -> bool:
        """Delete the object; ``False`` if there was none."""
        obj = self._obj

        async def run() -> bool:
            try:
                await obj.delete(name)
            except (nats.js.errors.ObjectNotFoundError, nats.js.errors.ObjectDeletedError):
                return False
            except nats.js.errors.NotFoundError:
                return False
            return True

        with self._errors(f"delete {name!r}"):
            done: bool = await self._bridge.run(run)
        return done


async def ensure_object_store(
    conn: Connection,
    bucket: str,
    *,
    ttl: float | None = None,
    replicas: int | None = None,
    update_existing: bool = True,
    update_ttl: bool = True,
) -> ObjectStore:
    """Create the bucket, or bring an existing one's TTL and replicas in line
    (``update_existing``; ``update_ttl=False`` keeps its TTL, as its owner set it)."""
    stream_name = f"OBJ_{bucket}"
    try:
        info: _api.StreamInfo = await conn.jsm("stream_info", stream_name)
    except NotFound:
        cfg = _api.ObjectStoreConfig(
            bucket=bucket, ttl=ttl, storage=_api.StorageType.FILE, replicas=replicas or 1
        )
        with translate_errors(f"create object store {bucket!r}"):
            store = await conn.bridge.run(conn.js.create_object_store, bucket, cfg)
        return ObjectStore(conn.bridge, store, bucket)
    if update_existing:
        have_ttl = round(float(info.config.max_age or 0), 3)
        want_ttl = round(float(ttl or 0), 3) if update_ttl else have_ttl
        have_replicas = info.config.num_replicas or 1
        want_replicas = replicas or have_replicas
        if have_ttl != want_ttl or have_replicas != want_replicas:
            scfg = info.config
            scfg.max_age = want_ttl
            scfg.num_replicas = want_replicas
            try:
                await conn.jsm("update_stream", scfg)
            except BrokerError as exc:
                raise IncompatibleStream(
                    f"object store {bucket!r} exists with ttl={have_ttl}s "
                    f"replicas={have_replicas}; updating it to ttl={want_ttl}s "
                    f"replicas={want_replicas} failed: {exc}. Delete the bucket, choose "
                    "another namespace, or check that the cluster has as many nodes as "
                    "replicas."
                ) from exc
            if have_replicas != want_replicas:
                await _await_replicas(conn, stream_name)
    with translate_errors(f"open object store {bucket!r}"):
        store = await conn.bridge.run(conn.js.object_store, bucket)
    return ObjectStore(conn.bridge, store, bucket)
