"""Provisioning of streams and KV buckets: idempotent, updated in place, or refused."""

from __future__ import annotations

import uuid

import pytest

from actorq import ConfigError
from actorq.exceptions import IncompatibleStream
from actorq.jobs.streams import JobStreams
from actorq.nats import Connection
from actorq.nats.provisioning import KvSpec, Namespace, StreamSpec, ensure_kv, ensure_stream


def _ns() -> Namespace:
    return Namespace(f"t{uuid.uuid4().hex[:8]}")


def test_names_carry_the_namespace() -> None:
    ns = Namespace("shop")
    assert ns.stream("jobs") == "shop_jobs"
    assert ns.subject("jobs.emails") == "shop.jobs.emails"
    assert ns.bucket("results") == "shop_results"


def test_a_namespace_with_dots_is_refused() -> None:
    with pytest.raises(ConfigError, match="namespace"):
        Namespace("my.app")


async def test_ensure_stream_twice_is_a_no_op(nc: Connection) -> None:
    ns = _ns()
    spec = StreamSpec(
        name=ns.stream("jobs"), subjects=[ns.subject("jobs.>")], retention="workqueue"
    )
    first = await ensure_stream(nc, spec)
    await nc.js_publish(ns.subject("jobs.a"), b"x")
    second = await ensure_stream(nc, spec)
    assert first.config.name == second.config.name
    assert second.state.messages == 1


async def test_updatable_settings_are_changed_in_place(nc: Connection) -> None:
    ns = _ns()
    spec = StreamSpec(name=ns.stream("jobs"), subjects=[ns.subject("jobs.>")])
    await ensure_stream(nc, spec)
    await nc.js_publish(ns.subject("jobs.a"), b"kept")
    info = await ensure_stream(
        nc,
        StreamSpec(name=spec.name, subjects=spec.subjects, max_age=3600, allow_msg_schedules=True),
    )
    assert info.config.max_age == 3600
    assert info.config.allow_msg_schedules
    assert info.state.messages == 1


async def test_an_incompatible_existing_stream_is_refused_by_name(nc: Connection) -> None:
    ns = _ns()
    await ensure_stream(nc, StreamSpec(name=ns.stream("jobs"), subjects=[ns.subject("jobs.>")]))
    with pytest.raises(
        IncompatibleStream, match=r"retention is 'limits', actorq needs 'workqueue'"
    ):
        await ensure_stream(
            nc,
            StreamSpec(
                name=ns.stream("jobs"), subjects=[ns.subject("jobs.>")], retention="workqueue"
            ),
        )


async def test_a_subject_owned_by_another_stream_is_refused(nc: Connection) -> None:
    ns = _ns()
    await ensure_stream(nc, StreamSpec(name=ns.stream("a"), subjects=[ns.subject("x.>")]))
    with pytest.raises(IncompatibleStream, match="subjects"):
        await ensure_stream(nc, StreamSpec(name=ns.stream("b"), subjects=[ns.subject("x.>")]))


async def test_ensure_kv_is_idempotent_and_follows_the_ttl(nc: Connection) -> None:
    ns = _ns()
    kv = await ensure_kv(nc, KvSpec(bucket=ns.bucket("results"), ttl=60))
    await kv.put("k", b"v")
    kv2 = await ensure_kv(nc, KvSpec(bucket=ns.bucket("results"), ttl=60))
    entry = await kv2.get("k")
    assert entry is not None
    assert entry.value == b"v"
    await ensure_kv(nc, KvSpec(bucket=ns.bucket("results"), ttl=120))
    info = await nc.jsm("stream_info", f"KV_{ns.bucket('results')}")
    assert info.config.max_age == 120
    still = await kv2.get("k")
    assert still is not None


async def test_clients_leave_the_owners_result_ttl_alone(nc: Connection) -> None:
    streams = JobStreams(_ns())
    await streams.provision(nc, result_ttl=60)  # what `actorq up` does
    await streams.provision(nc)  # a client or actor connecting later
    info = await nc.jsm("stream_info", f"KV_{streams.results_bucket}")
    assert info.config.max_age == 60
    await streams.provision(nc, result_ttl=120)  # the owner changes it
    info = await nc.jsm("stream_info", f"KV_{streams.results_bucket}")
    assert info.config.max_age == 120
