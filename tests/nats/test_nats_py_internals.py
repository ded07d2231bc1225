"""The nats-py internals actorq.nats relies on for speed are still there.

``actorq/nats/actor_transport.py`` writes framed PUB commands straight into nats-py's
buffer (``_pending``, ``_pending_data_size``, ``_transport``, ``_flush_queue``), and
``Connection.server_info`` reads ``_server_info``. A nats-py release that renames one
of them must fail here, by name, not as a slow or silent bug elsewhere.
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
