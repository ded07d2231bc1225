"""A small supervision tree: two worker processes under a nested supervisor; every event
of the tree is printed as a JSON line.

Run it, then press Ctrl-C once (graceful stop, exit status 130) or twice (kill)::

    python examples/supervisor_tree.py [--stubborn]

``--stubborn`` adds a process that ignores SIGTERM and has a long shutdown timeout, to
see the second Ctrl-C at work. From another terminal, ``kill -9`` one of the worker pids
it prints and watch it come back.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

import msgspec
import trio

from supervisors import (
    ChildSpec,
    ProcessSpec,
    Ready,
    Strategy,
    SupervisorEvent,
    SupervisorSpec,
    open_supervisor,
    shutdown_on_signals,
)

HERE = os.path.dirname(os.path.abspath(__file__))


async def worker(ready: Ready, name: str) -> int:
    """A process child: ready at once, then "works" until SIGTERM asks it to finish."""
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        ready()
        async for _ in signals:
            # A real worker would finish its current job here before returning.
            return 0
    return 0


def stubborn(ready: Ready) -> None:
    """A process child that ignores SIGTERM: only SIGKILL stops it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready()
    signal.pause()


async def print_events(events: trio.MemoryReceiveChannel[SupervisorEvent]) -> None:
    """Print the tree's events as JSON lines, until the tree stops."""
    async for event in events:
        print(msgspec.json.encode(event).decode(), flush=True)


def build_tree(stubborn_child: bool) -> list[ChildSpec]:
    """The children of the root, in start order."""
    env = {"PYTHONPATH": HERE}  # so the child interpreters can import this file
    workers = SupervisorSpec(
        id="workers",
        strategy=Strategy.ONE_FOR_ONE,
        max_restarts=5,
        within=10,
        children=tuple(
            ProcessSpec(id=name, target="supervisor_tree:worker", args=(name,), env=env)
            for name in ("w1", "w2")
        ),
    )
    children: list[ChildSpec] = [workers]
    if stubborn_child:
        children.append(
            ProcessSpec(id="stubborn", target="supervisor_tree:stubborn", env=env, shutdown=60)
        )
    return children


async def main(stubborn_child: bool) -> int:
    """Run the tree until SIGINT or SIGTERM; return the exit status."""
    send, receive = trio.open_memory_channel[SupervisorEvent](1000)
    async with shutdown_on_signals() as got, trio.open_nursery() as nursery:
        nursery.start_soon(print_events, receive)
        async with open_supervisor(build_tree(stubborn_child), id="example", events=send) as sup:
            snapshot = msgspec.to_builtins(sup.snapshot())
            print(json.dumps({"ready": True, "snapshot": snapshot}), flush=True)
            await trio.sleep_forever()
    return got.exit_status


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stubborn", action="store_true", help="add a child ignoring SIGTERM")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(trio.run(main, options.stubborn))
