"""Actor messages over the server's max_payload (issue 12, item 6): a clear error
naming size and limit, and the connection's shared actor link carries on."""

from __future__ import annotations

import uuid

import msgspec
import pytest
import trio

import actorq
from actorq import Actor, handler
from actorq.exceptions import PayloadTooLarge, RemoteError

MiB = 1024 * 1024


class Blob(msgspec.Struct, tag=True):
    data: bytes


class Make(msgspec.Struct, tag=True):
    size: int


class Sink(Actor):
    """Measures what it is sent; makes replies of a given size."""

    def __init__(self) -> None:
        self.seen = 0

    @handler
    async def blob(self, msg: Blob) -> int:
        self.seen += 1
        return len(msg.data)

    @handler
    async def make(self, msg: Make) -> bytes:
        return b"m" * msg.size


async def test_an_actor_message_over_max_payload_names_size_and_limit_and_the_link_lives(
    nats_url: str,
) -> None:
    ns = f"t{uuid.uuid4().hex[:10]}"
    with trio.fail_after(30):
        async with actorq.open_actor_supervisor(nats_url, namespace=ns) as sup:
            sink = await sup.spawn(Sink, name="sink")
            assert await sink.ask(Blob(b"a" * 10)) == 10
            with pytest.raises(PayloadTooLarge) as asked:
                await sink.ask(Blob(b"a" * (2 * MiB)))
            with pytest.raises(PayloadTooLarge) as sent:
                await sink.send(Blob(b"a" * (2 * MiB)))
            # The link was not touched: the same ref asks and sends as before.
            await sink.send(Blob(b"b" * 100))
            assert await sink.ask(Blob(b"a" * (MiB // 2))) == MiB // 2
            # A reply too large for the server comes back as the handler's error.
            with pytest.raises(RemoteError) as replied:
                await sink.ask(Make(2 * MiB))
            assert await sink.ask(Make(5)) == b"mmmmm"
    for caught in (asked, sent):
        message = str(caught.value)
        assert "the message to actor 'sink' is " in message
        assert int(message.split(" is ")[1].split()[0]) > 2 * MiB
        assert f"over the server's max_payload of {MiB} bytes" in message
    assert replied.value.exc_type == "actorq.exceptions.PayloadTooLarge"
    assert "the handler's reply is " in replied.value.exc_message
    assert f"max_payload of {MiB} bytes" in replied.value.exc_message
