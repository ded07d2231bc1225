"""Process-child targets for the supervisors tests, imported by child interpreters.

Imports stay light (Trio and supervisors only inside the functions that need them) so
each spawn costs little more than a bare interpreter start.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

Ready = Callable[[], None]


def _wait_forever() -> None:
    threading.Event().wait()


def serve_forever(ready: Ready) -> None:
    """Sync target: ready at once, then idle until stopped."""
    ready()
    _wait_forever()


async def async_serve(ready: Ready, *args: str) -> None:
    """Async target: ready at once, then idle until stopped."""
    import trio

    ready()
    await trio.sleep_forever()


def ignore_term(ready: Ready) -> None:
    """Ignores SIGTERM, so only SIGKILL stops it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready()
    _wait_forever()


def exit_with(ready: Ready, code: str) -> int:
    """Ready, then exit with ``code`` at once."""
    ready()
    return int(code)


def never_ready(ready: Ready) -> None:
    """Never reports ready."""
    _wait_forever()


def exit_before_ready(ready: Ready, code: str) -> int:
    """Exits with ``code`` without reporting ready."""
    return int(code)


def report_signals(ready: Ready, path: str) -> None:
    """Writes the signal dispositions and parent-death signal to ``path``, then waits."""
    import ctypes

    pdeathsig = ctypes.c_int(-1)
    ctypes.CDLL(None).prctl(2, ctypes.byref(pdeathsig), 0, 0, 0)  # PR_GET_PDEATHSIG
    state = {
        "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "pdeathsig": pdeathsig.value,
    }
    with open(path, "w") as f:
        json.dump(state, f)
    ready()
    _wait_forever()


async def tree_main(ready: Ready, depth: str = "1") -> None:
    """A process running its own supervisor tree; prints its pid once all is ready.

    At depth 1 one child is itself such a tree (depth 0), so grandchildren exist.
    """
    import trio
    from sup_specs import pspec

    from supervisors import SupervisorSpec, open_supervisor

    children: list[Any] = [
        pspec("p1", "serve_forever"),
        pspec("p2", "ignore_term", shutdown=0.2),
        SupervisorSpec(id="nested", children=(pspec("p3", "serve_forever"),)),
    ]
    if int(depth) > 0:
        children.append(pspec("subtree", "tree_main", "0"))
    async with open_supervisor(children, id=f"tree{depth}"):
        ready()
        if int(depth) > 0:
            # Only the top prints: the subtree shares its stdout.
            print(json.dumps({"pid": os.getpid()}), flush=True)
        await trio.sleep_forever()


def ready_only_once(ready: Ready, marker: str) -> None:
    """Reports ready on its first run only (``marker`` records that it ran)."""
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        ready()
    _wait_forever()


def spawn_grandchild(ready: Ready, path: str, then: str = "wait") -> int:
    """Starts a long ``sleep`` (in its own process group), writes its pid to ``path``,
    then waits to be stopped (``then="wait"``) or exits at once (``then="exit"``)."""
    import subprocess

    sleeper = subprocess.Popen(["sleep", "600"])
    with open(path + ".tmp", "w") as f:
        f.write(str(sleeper.pid))
    os.replace(path + ".tmp", path)
    ready()
    if then == "exit":
        return 0
    _wait_forever()
    return 0


def _note_prepared(path: str) -> None:
    with open(f"{path}.{os.getpid()}.prepared", "w"):
        pass


def _standby_serve(ready: Ready, path: str) -> None:
    """Notes in ``<path>.<pid>.run`` that it runs, then is ready and idles. As a warm
    standby it first notes ``<path>.<pid>.prepared`` (its ``on_standby`` hook)."""
    with open(f"{path}.{os.getpid()}.run", "w"):
        pass
    ready()
    _wait_forever()


def _with_standby_hook() -> Callable[..., None]:
    from supervisors import on_standby

    return on_standby(_note_prepared)(_standby_serve)


standby_serve = _with_standby_hook()


async def standby_tree_main(ready: Ready, path: str) -> None:
    """A process supervising one ``standby=True`` child; prints its own, the child's
    and the parked standby's pids once the standby is parked."""
    import trio
    from sup_specs import pspec

    from supervisors import StandbyParked, open_supervisor

    spec = pspec("w", "standby_serve", path, standby=True)
    async with open_supervisor([spec]) as sup, sup.subscribe() as events:
        if not sup.snapshot().standby_pids:
            async for event in events:
                if isinstance(event, StandbyParked):
                    break
        snap = sup.snapshot()
        ready()
        pids = {"pid": os.getpid(), "child": snap.find("w").pid, "standby": snap.standby_pids[0]}
        print(json.dumps(pids), flush=True)
        await trio.sleep_forever()
