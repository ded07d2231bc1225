"""Pipelined JetStream publishing on the asyncio side, with one reply subscription.

nats-py's ``js.publish`` is a request per message (a new future, a timer, a
``wait_for``); at thousands of messages a second that bookkeeping, not the network,
is the cost. Here a connection keeps one wildcard reply subscription; each message
gets a token, a future in a dict, and a plain ``publish``; acks are decoded with
msgspec. A whole batch shares one deadline, and at most ``window`` acks are awaited
at once (a sliding window), like a pool of publishers but without the tasks.

Runs on the connection's asyncio loop only (see :mod:`actorq.nats.bridge`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import nats.errors
import nats.js.errors

__all__ = ["JsPublisher", "RawAck", "settle_ack"]


class _AckError(msgspec.Struct):
    code: int = 0
    err_code: int | None = None
    description: str = ""


class RawAck(msgspec.Struct):
    """A JetStream publish acknowledgement as the server sends it."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _AckError | None = None


_decode_ack = msgspec.json.Decoder(RawAck).decode

Item = tuple[str, bytes, Mapping[str, str] | None]


class JsPublisher:
    """Publishes batches to JetStream on one nats-py client (asyncio side)."""

    def __init__(self, nc: Any) -> None:
        self._nc = nc
        self._prefix: str | None = None
        self._futures: dict[str, asyncio.Future[Any]] = {}
        self._next = 0
        self._setup_lock = asyncio.Lock()

    async def _ensure_inbox(self) -> str:
        if self._prefix is None:
            async with self._setup_lock:
                if self._prefix is None:
                    prefix = self._nc.new_inbox()
                    await self._nc.subscribe(prefix + ".*", cb=self._on_reply)
                    self._prefix = prefix
        return self._prefix

    async def _on_reply(self, msg: Any) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        fut = self._futures.pop(token, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def publish(
        self, items: Sequence[Item], *, window: int = 1024
    ) -> list[RawAck | BaseException]:
        """Publish every item; returns, in order, each ack or the error it got.

        Bound it with ``asyncio.timeout``: acks still missing then mean the messages
        may or may not be stored.
        """
        prefix = await self._ensure_inbox()
        loop = asyncio.get_running_loop()
        nc = self._nc
        tokens: list[str] = []
        futures: list[asyncio.Future[Any]] = []
        results: list[RawAck | BaseException] = []
        try:
            for subject, data, headers in items:
                if len(futures) - len(results) >= window:
                    results.append(_settle(await futures[len(results)]))
                self._next += 1
                token = str(self._next)
                fut = loop.create_future()
                self._futures[token] = fut
                tokens.append(token)
                futures.append(fut)
                hdrs = dict(headers) if headers else None
                await nc.publish(subject, data, reply=f"{prefix}.{token}", headers=hdrs)
            while len(results) < len(futures):
                results.append(_settle(await futures[len(results)]))
        finally:
            for token in tokens[len(results) :]:
                self._futures.pop(token, None)
        return results


def _settle(msg: Any) -> RawAck | BaseException:
    return settle_ack(
        msg.data, no_responders=bool(msg.headers) and msg.headers.get("Status") == "503"
    )


def settle_ack(data: bytes, *, no_responders: bool) -> RawAck | BaseException:
    """A publish ack's bytes as a :class:`RawAck`, or the nats-py error it stands for
    (so :func:`actorq.nats.errors.translate_errors` maps it like any other)."""
    if no_responders:
        return nats.js.errors.NoStreamResponseError()
    try:
        ack = _decode_ack(data)
    except msgspec.DecodeError as exc:
        return nats.errors.Error(f"unreadable publish ack: {exc}")
    if ack.error is not None:
        err = ack.error
        try:
            nats.js.errors.APIError.from_error(
                {"code": err.code, "err_code": err.err_code, "description": err.description}
            )
        except nats.js.errors.APIError as exc:  # from_error raises the right subclass
            return exc
    return ack
