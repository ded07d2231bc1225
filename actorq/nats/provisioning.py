"""Idempotent provisioning of JetStream streams and KV buckets under a namespace.

``ensure_stream`` creates a stream, or accepts an existing one whose settings match.
Settings the server can change in place (limits, ages, flags such as
``allow_msg_schedules``) are updated; settings it cannot change (retention, storage,
a subject set another stream owns) raise :class:`~actorq.exceptions.IncompatibleStream`,
naming each differing setting and what to do.

Example::

    ns = Namespace("myapp")
    await ensure_stream(nc, StreamSpec(name=ns.stream("jobs"), subjects=[ns.subject("jobs.>")]))
    results = await ensure_kv(nc, KvSpec(bucket=ns.bucket("results"), ttl=86400))
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

import msgspec
import trio
from nats.js import api as _api

from actorq.constants import DEFAULT_NAMESPACE
from actorq.exceptions import BrokerError, ConfigError, IncompatibleStream, NotFound
from actorq.nats.connection import Connection
from actorq.nats.kv import KeyValueStore

log = logging.getLogger("actorq.nats")

__all__ = ["KvSpec", "Namespace", "StreamSpec", "ensure_kv", "ensure_stream"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")

Retention = Literal["limits", "workqueue", "interest"]
Storage = Literal["file", "memory"]


class Namespace:
    """Derives stream, subject and bucket names from one namespace (default ``actorq``).

    >>> ns = Namespace("shop")
    >>> ns.stream("jobs"), ns.subject("jobs.emails"), ns.bucket("results")
    ('shop_jobs', 'shop.jobs.emails', 'shop_results')
    """

    def __init__(self, name: str = DEFAULT_NAMESPACE) -> None:
        if not _NAME_RE.match(name):
            raise ConfigError(
                f"namespace {name!r} may only contain letters, digits, '_' and '-'; "
                "pick a name like 'myapp'."
            )
        self.name = name

    def stream(self, what: str) -> str:
        """Stream name for ``what`` (``<ns>_<what>``)."""
        return f"{self.name}_{what}"

    def bucket(self, what: str) -> str:
        """KV bucket name for ``what`` (``<ns>_<what>``)."""
        return f"{self.name}_{what}"

    def subject(self, rest: str) -> str:
        """Subject under the namespace (``<ns>.<rest>``)."""
        return f"{self.name}.{rest}"

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"


class StreamSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What actorq needs of a stream. Fields left ``None`` are the server's default."""

    name: str
    subjects: list[str]
    retention: Retention = "limits"
    storage: Storage = "file"
    max_age: float | None = None
    max_msgs: int | None = None
    max_bytes: int | None = None
    duplicate_window: float | None = None
    allow_msg_schedules: bool | None = None
    allow_msg_ttl: bool | None = None
    #: Copies of the stream in a cluster; ``None``: 1 for a new stream, and an existing
    #: one keeps its count (only the runtime's owner changes it).
    num_replicas: int | None = None
    description: str | None = None

    def to_config(self) -> _api.StreamConfig:
        """The nats-py ``StreamConfig`` for this spec."""
        cfg = _api.StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=_api.RetentionPolicy(self.retention),
            storage=_api.StorageType(self.storage),
            num_replicas=self.num_replicas or 1,
            description=self.description,
        )
        for field in ("max_age", "max_msgs", "max_bytes", "allow_msg_schedules", "allow_msg_ttl"):
            value = getattr(self, field)
            if value is not None:
                setattr(cfg, field, value)
        if self.duplicate_window is not None:
            cfg.duplicate_window = self.duplicate_window
        return cfg


# Settings the server refuses to change on an existing stream.
_FIXED = ("retention", "storage")
# Settings compared, and updated in place when they differ.
_UPDATABLE = (
    "subjects",
    "max_age",
    "max_msgs",
    "max_bytes",
    "duplicate_window",
    "allow_msg_schedules",
    "allow_msg_ttl",
    "num_replicas",
)


def _norm(field: str, value: Any) -> Any:
    if field == "subjects":
        return sorted(value or [])
    if isinstance(value, _api.RetentionPolicy | _api.StorageType):
        return value.value
    if field in ("max_age", "duplicate_window"):
        return round(float(value or 0), 3)
    if field in ("allow_msg_schedules", "allow_msg_ttl"):
        return bool(value)
    return value


def _differences(
    spec: StreamSpec, existing: _api.StreamConfig, fields: tuple[str, ...]
) -> dict[str, tuple[Any, Any]]:
    wanted = spec.to_config()
    diffs: dict[str, tuple[Any, Any]] = {}
    for field in fields:
        want = getattr(wanted, field)
        if want is None:
            continue
        if field in ("duplicate_window", "num_replicas") and getattr(spec, field) is None:
            continue
        have = getattr(existing, field)
        if _norm(field, want) != _norm(field, have):
            diffs[field] = (_norm(field, have), _norm(field, want))
    return diffs


async def ensure_stream(conn: Connection, spec: StreamSpec) -> _api.StreamInfo:
    """Create the stream, or check and update an existing one; returns its info."""
    try:
        info: _api.StreamInfo = await conn.jsm("stream_info", spec.name)
    except NotFound:
        try:
            created: _api.StreamInfo = await conn.jsm("add_stream", spec.to_config())
        except BrokerError as exc:
            raise IncompatibleStream(
                f"could not create stream {spec.name!r} for subjects {spec.subjects}: {exc}. "
                "Another stream may own these subjects; use another namespace or remove it."
            ) from exc
        return created
    fixed = _differences(spec, info.config, _FIXED)
    if fixed:
        detail = ", ".join(
            f"{k} is {have!r}, actorq needs {want!r}" for k, (have, want) in fixed.items()
        )
        raise IncompatibleStream(
            f"stream {spec.name!r} exists with incompatible settings ({detail}). "
            "Delete it (e.g. `nats stream rm`) if its data can go, or choose another namespace."
        )
    changed = _differences(spec, info.config, _UPDATABLE)
    if not changed:
        return info
    cfg = spec.to_config()
    try:
        updated: _api.StreamInfo = await conn.jsm("update_stream", cfg)
    except BrokerError as exc:
        detail = ", ".join(f"{k}: {have!r} -> {want!r}" for k, (have, want) in changed.items())
        raise IncompatibleStream(
            f"stream {spec.name!r} exists with other settings ({detail}) and the server "
            f"refused to update it: {exc}. Delete the stream or choose another namespace."
        ) from exc
    if "num_replicas" in changed:
        await _await_replicas(conn, spec.name)
    return updated


async def _await_replicas(conn: Connection, stream: str, within: float = 60.0) -> None:
    """Wait until a stream whose replica count changed, and each of its consumers (the
    server moves them along with the stream, after it), has a leader and every replica
    caught up: until then the cluster answers its publishes and fetches late or not at
    all, and a consumer still on one node is lost with that node."""
    with trio.move_on_after(within):
        while True:
            try:
                info = await conn.jsm("stream_info", stream)
                want = (info.config.num_replicas or 1) - 1
                consumers = await conn.jsm("consumers_info", stream)
            except BrokerError:
                info = None
            replicated = info is not None and _replicated(info, want)
            if replicated and all(_replicated(c, want) for c in consumers):
                return
            await trio.sleep(0.1)
    log.warning("stream %s: its replicas did not catch up within %.0fs", stream, within)


def _replicated(info: Any, want: int) -> bool:
    """Whether a stream's or consumer's info shows a leader and ``want`` other replicas,
    all current."""
    cluster = getattr(info, "cluster", None)
    if cluster is None or not cluster.leader:
        return False
    peers = cluster.replicas or []
    return len(peers) >= want and all(p.current for p in peers)


class ConsumerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A durable pull consumer of a stream.

    ``ack_policy="all"`` acks every earlier message with one ack: use it only when
    everything before the acked message is stored for good.
    """

    stream: str
    durable: str
    filter_subject: str
    ack_policy: Literal["explicit", "all"] = "explicit"
    ack_wait: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 10_000
    #: Pull requests waiting at once: one per fetch loop of every process.
    max_waiting: int = 512


# The consumer settings actorq sets; a consumer that has them all as wanted is left alone.
_CONSUMER_FIELDS = (
    "filter_subject", "ack_policy", "ack_wait", "max_deliver", "max_ack_pending", "max_waiting",
)  # fmt: skip


async def ensure_consumer(conn: Connection, spec: ConsumerSpec) -> None:
    """Create the durable consumer, or update the fields that can change in place."""
    cfg = _api.ConsumerConfig(
        durable_name=spec.durable,
        ack_policy=_api.AckPolicy(spec.ack_policy),
        filter_subject=spec.filter_subject,
        ack_wait=spec.ack_wait,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        max_waiting=spec.max_waiting,
    )
    # Only info when it is already as wanted: a user allowed just to read (see
    # docs/security.md, least privilege) can start once an admin provisioned.
    try:
        have = (await conn.jsm("consumer_info", spec.stream, spec.durable)).config
    except BrokerError:  # NotFound, or not allowed to look: try to create it
        have = None
    if have is not None and all(getattr(have, f) == getattr(cfg, f) for f in _CONSUMER_FIELDS):
        return
    # add_consumer with an existing durable updates the editable fields.
    try:
        await conn.jsm("add_consumer", spec.stream, cfg)
    except BrokerError as exc:
        raise IncompatibleStream(
            f"could not create or update consumer {spec.durable!r} of stream "
            f"{spec.stream!r}: {exc}. If it exists with settings that cannot change in "
            "place, delete it (the messages stay in the stream) and start again."
        ) from exc


class KvSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What actorq needs of a KV bucket."""

    bucket: str
    ttl: float | None = None
    history: int = 1
    storage: Storage = "file"
    #: Copies in a cluster; ``None``: 1 for a new bucket, an existing one keeps its count.
    replicas: int | None = None
    description: str | None = None


async def ensure_kv(
    conn: Connection, spec: KvSpec, *, update_existing: bool = True, update_ttl: bool = True
) -> KeyValueStore:
    """Create the bucket, or bring an existing one's TTL, history and replicas in line.

    With ``update_existing=False`` an existing bucket is used as it is: for
    components that need the bucket but do not own its settings. With
    ``update_ttl=False`` an existing bucket keeps its TTL (its owner set it).
    """
    stream_name = f"KV_{spec.bucket}"
    try:
        info: _api.StreamInfo = await conn.jsm("stream_info", stream_name)
    except NotFound:
        cfg = _api.KeyValueConfig(
            bucket=spec.bucket,
            ttl=spec.ttl,
            history=spec.history,
            storage=_api.StorageType(spec.storage),
            replicas=spec.replicas or 1,
            description=spec.description,
        )
        await conn.jsm("create_key_value", cfg)
        return await conn.kv(spec.bucket)
    if not update_existing:
        return await conn.kv(spec.bucket)
    have_ttl = round(float(info.config.max_age or 0), 3)
    want_ttl = round(float(spec.ttl or 0), 3) if update_ttl else have_ttl
    have_hist = info.config.max_msgs_per_subject
    have_replicas = info.config.num_replicas or 1
    want_replicas = spec.replicas or have_replicas
    if have_ttl != want_ttl or have_hist != spec.history or have_replicas != want_replicas:
        # Plain stream settings: changed in place, keeping the data (a replica count
        # too, on a cluster with enough nodes).
        scfg = info.config
        scfg.max_age = want_ttl
        scfg.max_msgs_per_subject = spec.history
        scfg.num_replicas = want_replicas
        try:
            await conn.jsm("update_stream", scfg)
        except BrokerError as exc:
            raise IncompatibleStream(
                f"KV bucket {spec.bucket!r} exists with ttl={have_ttl}s history={have_hist} "
                f"replicas={have_replicas}; updating it to ttl={want_ttl}s "
                f"history={spec.history} replicas={want_replicas} failed: {exc}. Delete the "
                "bucket (its data is lost), choose another namespace, or check that the "
                "cluster has as many nodes as replicas."
            ) from exc
        if have_replicas != want_replicas:
            await _await_replicas(conn, stream_name)
    return await conn.kv(spec.bucket)
