"""actorq's Trio NATS layer vs plain nats-py in plain asyncio, same server, same run.

Usage::

    python bench/nats_layer.py            # N = 20000
    python bench/nats_layer.py --n 50000 --json

Modes, each measured for both sides with the same payload, window and server:

* ``publish`` (pipelined): N JetStream publishes with up to ``--window`` acks in
  flight. Reference: ``--window`` asyncio workers sharing one iterator, each awaiting
  ``js.publish``; also shown against nats-py's own pipelined ``js.publish_async``.
  Layer: ``js_publish_many``, one crossing, acks tracked by token on one reply
  subscription (``actorq.nats.publisher``).
* ``publish_concurrent``: ``--window`` tasks each publishing one at a time (many
  independent callers). Reference: asyncio tasks. Layer: Trio tasks, whose calls
  the bridge coalesces into shared crossings.
* ``publish_sequential``: one publish at a time, waiting for each ack (N/10 msgs).
* ``fetch_ack``: a durable pull consumer, fetch(``--batch``) then ack every message.
  Reference: ``await msg.ack()`` each. Layer: ``fetch`` + ``ack_many``.

Each figure is the best of ``--rounds`` rounds, reference and layer alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import nats
import trio
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

from actorq.nats import NatsServerProcess, OutMsg, open_nats

PAYLOAD = b"x" * 128


def stream_cfg(name: str) -> StreamConfig:
    return StreamConfig(
        name=name, subjects=[f"{name}.>"], retention=RetentionPolicy.LIMITS, max_msgs=-1
    )


def consumer_cfg(name: str) -> ConsumerConfig:
    return ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT, max_ack_pending=-1)


# -- reference: plain nats-py, plain asyncio -------------------------------------------


async def ref_run(url: str, n: int, window: int, batch: int, tag: str) -> dict[str, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    out: dict[str, float] = {}
    try:
        name = f"REF{tag}"
        await js.add_stream(stream_cfg(name))
        subject = f"{name}.a"

        # The same pattern as js_publish_many: `window` workers share one iterator.
        it = iter(range(n))

        async def pool_worker() -> None:
            for _ in it:
                await js.publish(subject, PAYLOAD)

        t0 = time.perf_counter()
        await asyncio.gather(*(pool_worker() for _ in range(window)))
        out["publish"] = n / (time.perf_counter() - t0)

        # nats-py's own pipelined API, for a second view of the same mode (into a
        # stream of its own, so the fetch below sees the same count on both sides).
        await js.add_stream(stream_cfg(f"{name}X"))
        t0 = time.perf_counter()
        futures = [await js.publish_async(f"{name}X.a", PAYLOAD) for _ in range(n)]
        await asyncio.gather(*futures)
        out["publish_async_api"] = n / (time.perf_counter() - t0)
        await js.delete_stream(f"{name}X")

        per_task = n // window

        async def worker() -> None:
            for _ in range(per_task):
                await js.publish(subject, PAYLOAD)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(window)))
        out["publish_concurrent"] = per_task * window / (time.perf_counter() - t0)

        n_seq = max(1, n // 10)
        t0 = time.perf_counter()
        for _ in range(n_seq):
            await js.publish(subject, PAYLOAD)
        out["publish_sequential"] = n_seq / (time.perf_counter() - t0)

        total = n + per_task * window + n_seq
        await js.add_consumer(name, consumer_cfg("c"))
        psub = await js.pull_subscribe_bind("c", name)
        got = 0
        t0 = time.perf_counter()
        while got < total:
            msgs = await psub.fetch(batch, timeout=5)
            for m in msgs:
                await m.ack()
            got += len(msgs)
        await nc.flush()
        out["fetch_ack"] = got / (time.perf_counter() - t0)
        await js.delete_stream(name)
    finally:
        await nc.close()
    return out


# -- actorq's layer, from Trio --------------------------------------------------------


async def layer_run(url: str, n: int, window: int, batch: int, tag: str) -> dict[str, float]:
    out: dict[str, float] = {}
    async with open_nats(url) as nc:
        name = f"LAYER{tag}"
        await nc.jsm("add_stream", stream_cfg(name))
        subject = f"{name}.a"

        msgs = [OutMsg(subject, PAYLOAD) for _ in range(n)]
        t0 = time.perf_counter()
        await nc.js_publish_many(msgs, window=window)
        out["publish"] = n / (time.perf_counter() - t0)

        per_task = n // window

        async def worker() -> None:
            for _ in range(per_task):
                await nc.js_publish(subject, PAYLOAD)

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(window):
                nursery.start_soon(worker)
        out["publish_concurrent"] = per_task * window / (time.perf_counter() - t0)

        n_seq = max(1, n // 10)
        t0 = time.perf_counter()
        for _ in range(n_seq):
            await nc.js_publish(subject, PAYLOAD)
        out["publish_sequential"] = n_seq / (time.perf_counter() - t0)

        total = n + per_task * window + n_seq
        await nc.jsm("add_consumer", name, consumer_cfg("c"))
        consumer = await nc.pull_consumer(name, "c")
        got = 0
        t0 = time.perf_counter()
        while got < total:
            fetched = await consumer.fetch(batch, expires=5)
            await consumer.ack_many(fetched)
            got += len(fetched)
        await nc.flush()
        out["fetch_ack"] = got / (time.perf_counter() - t0)
        await nc.jsm("delete_stream", name)
    return out


def best(a: dict[str, float] | None, b: dict[str, float]) -> dict[str, float]:
    if a is None:
        return b
    return {k: max(a[k], b[k]) for k in b}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000, help="messages per mode")
    parser.add_argument("--window", type=int, default=512, help="publishes in flight")
    parser.add_argument("--batch", type=int, default=256, help="fetch batch size")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many rounds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    ref: dict[str, float] | None = None
    layer: dict[str, float] | None = None
    with NatsServerProcess() as server:
        for r in range(args.rounds):
            params = (server.url, args.n, args.window, args.batch, f"{r}")
            ref = best(ref, asyncio.run(ref_run(*params)))
            layer = best(layer, trio.run(layer_run, *params))
    assert ref is not None
    assert layer is not None

    result: dict[str, Any] = {"n": args.n, "window": args.window, "batch": args.batch}
    for mode in ("publish", "publish_concurrent", "publish_sequential", "fetch_ack"):
        result[f"{mode}_ref_per_s"] = round(ref[mode])
        result[f"{mode}_layer_per_s"] = round(layer[mode])
        result[f"{mode}_ratio"] = round(layer[mode] / ref[mode], 3)
    result["publish_async_api_ref_per_s"] = round(ref["publish_async_api"])
    result["publish_vs_async_api_ratio"] = round(layer["publish"] / ref["publish_async_api"], 3)

    if args.json:
        print(json.dumps(result))
    else:
        print(f"nats layer vs plain asyncio nats-py, N={args.n}, best of {args.rounds}")
        for mode in ("publish", "publish_concurrent", "publish_sequential", "fetch_ack"):
            print(
                f"  {mode:20s} ref {result[f'{mode}_ref_per_s']:>8,}/s   "
                f"layer {result[f'{mode}_layer_per_s']:>8,}/s   "
                f"ratio {result[f'{mode}_ratio']:.2f}"
            )
        print(
            f"  {'(publish_async API)':20s} ref {result['publish_async_api_ref_per_s']:>8,}/s   "
            f"layer {result['publish_layer_per_s']:>8,}/s   "
            f"ratio {result['publish_vs_async_api_ratio']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
