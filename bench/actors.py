"""The actors' speed bars (issue 7): actorq between two actor processes vs raw nats-py.

Usage::

    python bench/actors.py                 # N = 20000 sends, 2000 asks
    python bench/actors.py --n 5000 --json

Both sides run in two processes against the same nats-server, started here (or
``--url``), and alternate for ``--rounds`` rounds; each figure is the best round.

* **send**: a sender publishes N 64-byte-body messages to a receiver, then asks it for
  its count (which it answers only after handling everything before, as messages of
  one connection arrive in order). Throughput = N / (time from the first send to that
  reply). actorq: a ``Driver`` actor process does ``await ref.send(Hit(...))`` N times
  to a ``Sink`` actor process (at-most-once mailbox). Reference: plain asyncio
  ``await nc.publish`` in this process to a plain nats-py subscriber process.
* **ask**: ``--asks`` sequential request/reply round trips; p50 latency. actorq:
  the ``Driver`` process doing ``await ref.ask(Count())`` to the ``Sink`` process.
  Reference: ``await nc.request`` to the same kind of subscriber process, which
  answers with ``msg.respond``.
* **up_ready_s**: ``bench/up.py``'s ``measure_up_ready(n)`` if that module exists
  (``null`` otherwise).

``--json`` prints one object with ``send_ratio`` (actorq / reference, bar >= 0.7),
``ask_p50_ratio`` (actorq / reference, bar <= 1.5), ``up_ready_s`` and the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
# Run as a script, this directory comes first on sys.path; the repository root must
# too, so that child processes and this one import the same actorq and supervisors.
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import nats  # noqa: E402
import trio  # noqa: E402

import actorq  # noqa: E402

BODY = b"b" * 64


class Hit(msgspec.Struct, tag=True):
    seq: int
    body: bytes


class Count(msgspec.Struct, tag=True):
    pass


class Blast(msgspec.Struct, tag=True):
    n: int
    target: str


class PingLoop(msgspec.Struct, tag=True):
    n: int
    target: str


class Sink(actorq.Actor):
    """Counts hits; answers ``Count`` with how many it has handled."""

    def __init__(self) -> None:
        self.count = 0

    @actorq.handler
    async def hit(self, msg: Hit) -> None:
        self.count += 1

    @actorq.handler
    async def total(self, msg: Count) -> int:
        return self.count


class Driver(actorq.Actor):
    """Sends or asks on command, timing it in its own process."""

    @actorq.handler
    async def blast(self, msg: Blast) -> tuple[float, int]:
        target = self.ref(msg.target)
        before: int = await target.ask(Count())  # also warms the ref up
        t0 = time.perf_counter()
        for i in range(msg.n):
            await target.send(Hit(i, BODY))
        after: int = await target.ask(Count(), timeout=120)
        return time.perf_counter() - t0, after - before

    @actorq.handler
    async def ping(self, msg: PingLoop) -> float:
        target = self.ref(msg.target)
        latencies = []
        for _ in range(msg.n):
            t0 = time.perf_counter()
            await target.ask(Count())
            latencies.append(time.perf_counter() - t0)
        return statistics.median(latencies)


_RAW_SINK = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    count = 0
    async def cb(msg):
        nonlocal count
        if msg.reply:
            await msg.respond(str(count).encode())
        else:
            count += 1
    await nc.subscribe(sys.argv[2], cb=cb)
    await nc.flush()
    print("READY", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def raw_round(url: str, subject: str, n: int, asks: int) -> tuple[float, float]:
    nc = await nats.connect(url)
    payload = msgspec.msgpack.encode(Hit(0, BODY))
    try:
        before = int((await nc.request(subject, b"", timeout=10)).data)
        t0 = time.perf_counter()
        for _ in range(n):
            await nc.publish(subject, payload)
        reply = await nc.request(subject, b"", timeout=120)
        elapsed = time.perf_counter() - t0
        assert int(reply.data) - before == n, reply.data
        latencies = []
        for _ in range(asks):
            t1 = time.perf_counter()
            await nc.request(subject, b"", timeout=10)
            latencies.append(time.perf_counter() - t1)
        return n / elapsed, statistics.median(latencies)
    finally:
        await nc.close()


async def actorq_rounds(
    url: str, namespace: str, n: int, asks: int, rounds: int, raw: Any
) -> list[tuple[float, float, float, float]]:
    """Per round: (actorq send/s, actorq ask p50, raw send/s, raw ask p50)."""
    out = []
    async with actorq.open_actor_supervisor(url, namespace=namespace) as sup:
        await sup.spawn(Sink, name="sink", process=True)
        driver = await sup.spawn(Driver, name="driver", process=True)
        for _ in range(rounds):
            raw_send, raw_ask = await trio.to_thread.run_sync(raw)
            elapsed, count = await driver.ask(Blast(n, "sink"), timeout=300)
            assert count == n, f"the sink handled {count} of {n} messages"
            # Each round resets nothing: the sink's count grows; ask p50 follows.
            p50 = await driver.ask(PingLoop(asks, "sink"), timeout=300)
            out.append((n / elapsed, p50, raw_send, raw_ask))
    return out


def measure_up(n: int) -> tuple[float | None, str]:
    try:
        up = importlib.import_module("up")
    except ImportError:
        return None, "bench/up.py does not exist yet: up_ready_s is null"
    fn = getattr(up, "measure_up_ready", None)
    if fn is None:
        return None, "bench/up.py has no measure_up_ready(): up_ready_s is null"
    return float(fn(n)), ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000, help="messages per send round")
    parser.add_argument("--asks", type=int, default=2_000, help="asks per ask round")
    parser.add_argument("--rounds", type=int, default=5, help="best of this many rounds")
    parser.add_argument("--up-n", type=int, default=1, help="runs of measure_up_ready")
    parser.add_argument("--url", default=None, help="use this server instead of starting one")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        server = None
        url = args.url
        if url is None:
            server = actorq.nats.NatsServerProcess(data_dir=Path(tmp) / "nats")
            server.start()
            url = server.url
        subject = f"rawbench.{uuid.uuid4().hex[:8]}"
        sink = subprocess.Popen(
            [sys.executable, "-c", _RAW_SINK, url, subject], stdout=subprocess.PIPE, text=True
        )
        try:
            assert sink.stdout is not None
            assert sink.stdout.readline().strip() == "READY"

            def raw() -> tuple[float, float]:
                return asyncio.run(raw_round(url, subject, args.n, args.asks))

            namespace = f"bench{uuid.uuid4().hex[:8]}"
            rounds = trio.run(actorq_rounds, url, namespace, args.n, args.asks, args.rounds, raw)
        finally:
            sink.kill()
            sink.wait()
            if server is not None:
                server.close()

    send = max(r[0] for r in rounds)
    ask = min(r[1] for r in rounds)
    raw_send = max(r[2] for r in rounds)
    raw_ask = min(r[3] for r in rounds)
    up_ready, up_note = measure_up(args.up_n)
    result = {
        "send_ratio": round(send / raw_send, 3),
        "ask_p50_ratio": round(ask / raw_ask, 3),
        "up_ready_s": up_ready,
        "send_per_s": round(send),
        "raw_send_per_s": round(raw_send),
        "ask_p50_us": round(ask * 1e6, 1),
        "raw_ask_p50_us": round(raw_ask * 1e6, 1),
        "n": args.n,
        "asks": args.asks,
        "rounds": args.rounds,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"send : actorq {send:10.0f}/s   raw nats-py {raw_send:10.0f}/s   "
              f"ratio {result['send_ratio']:.2f} (bar >= 0.7)")  # fmt: skip
        print(f"ask  : actorq p50 {ask * 1e6:7.0f} us   raw nats-py p50 {raw_ask * 1e6:7.0f} us   "
              f"ratio {result['ask_p50_ratio']:.2f} (bar <= 1.5)")  # fmt: skip
        print(f"up   : {up_ready if up_ready is not None else 'null'} s {up_note}".rstrip())
    if up_note:
        print(up_note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
