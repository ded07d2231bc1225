"""The nats-py internals actorq.nats relies on for speed are still there.

``actorq/nats/actor_transport.py`` writes framed PUB commands straight into nats-py's
buffer (``_pending``, ``_pending_data_size``, ``_transport``, ``_flush_queue``), and
``Connection.server_info`` reads ``_server_info``; ``actorq/nats/pull_fetch.py`` sends
pull requests on a pull subscription's inbox (``_nms``, ``_deliver``, ``_sub``). A
nats-py release that renames one of them must fail here, by name, not as a slow or
silent bug elsewhere.
"""

from __future__ import annotations

import trio

from actorq.nats.connection import open_nats


async def test_the_nats_py_client_internals_actorq_writes_to_exist(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_nats(nats_url) as conn:
            nc = conn.nc
            assert isinstance(nc._pending, list), "nats-py moved Client._pending"
            assert isinstance(nc._pending_data_size, int), "nats-py moved _pending_data_size"
            assert nc._transport is not None, "nats-py moved Client._transport"
            assert hasattr(nc._transport, "write"), "nats-py's transport lost write()"
            assert nc._flush_queue is not None, "nats-py moved Client._flush_queue"
            assert "out_msgs" in nc.stats
            assert "out_bytes" in nc.stats


async def test_server_info_reports_the_version_and_jetstream(nats_url: str) -> None:
    with trio.fail_after(20):
        async with open_nats(nats_url) as conn:
            info = conn.server_info
    assert str(info["version"]).count(".") >= 2
    assert info["jetstream"] is True


async def test_the_pull_subscription_internals_fetch_batch_uses_exist(nats_url: str) -> None:
    """``actorq/nats/pull_fetch.py`` sends its own pull requests on nats-py's inbox."""
    import uuid

    from nats.js.api import AckPolicy, ConsumerConfig

    from actorq.nats.provisioning import StreamSpec, ensure_stream

    name = f"I{uuid.uuid4().hex[:8]}"
    with trio.fail_after(20):
        async with open_nats(nats_url) as conn:
            await ensure_stream(conn, StreamSpec(name=name, subjects=[f"{name}.>"]))
            config = ConsumerConfig(durable_name="work", ack_policy=AckPolicy.EXPLICIT)
            await conn.jsm("add_consumer", name, config)
            psub = (await conn.pull_consumer(name, "work"))._psub
            assert isinstance(psub._nms, str), "nats-py moved PullSubscription._nms"
            assert isinstance(psub._deliver, str), "nats-py moved PullSubscription._deliver"
            assert psub._nc is conn.nc, "nats-py moved PullSubscription._nc"
            assert psub._sub._pending_queue.empty(), "nats-py moved Subscription._pending_queue"
            assert isinstance(psub._sub._pending_size, int), "nats-py moved _pending_size"
