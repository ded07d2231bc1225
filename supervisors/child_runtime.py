"""The child-process side of a process child: run as ``python -m supervisors.child_runtime``.

Command line::

    python -m supervisors.child_runtime pkg.module:function [arg ...]

What happens, in order:

1. SIGINT and SIGTERM get their default dispositions back (a process started from a
   background shell inherits SIGINT *ignored*; a supervisor must be able to stop us).
2. :func:`setup_child` arms both orphan guards: the Linux parent-death signal
   (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) and a daemon thread that kills this process
   when the control socket inherited from the supervisor reaches EOF, which happens
   whenever the supervising process dies, however it dies.
3. ``function(ready, *args)`` is called; an ``async def`` function runs under
   ``trio.run``. It calls ``ready()`` once it can do its work; the supervisor counts it
   as started from that moment. Its return value becomes the exit status (``None`` is
   0, an ``int`` is used as is); an exception prints its traceback and exits 1.

A program started some other way (``python -m pkg.module`` through a
``ProcessSpec(target="pkg.module")``) calls :func:`setup_child` first thing itself.

**Warm standby** (``ProcessSpec(standby=True)``): the supervisor starts a spare ahead,
with :data:`STANDBY_ENV` set. It does steps 1-2, imports the target, runs the target's
``prepare(*args)`` hook if it has one (:func:`on_standby`: more imports, reading its
settings), writes ``P`` (parked) and blocks until the supervisor writes ``A``
(activate) on the control socket; only then is step 3 run. A parked process holds no
resources of the child's (it has not called the function yet), so it is simply killed
when not needed; its orphan guards are armed like any child's.

This module imports nothing heavy (no Trio unless the target is async), so a restart
costs little more than a bare interpreter start.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import inspect
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "ACTIVATE",
    "CONTROL_FD_ENV",
    "PARENT_PID_ENV",
    "PARKED",
    "STANDBY_ENV",
    "Ready",
    "main",
    "on_standby",
    "resolve_target",
    "run_standby_hook",
    "setup_child",
]

CONTROL_FD_ENV = "SUPERVISORS_CONTROL_FD"
"""Environment variable naming the inherited control socket's file descriptor."""
PARENT_PID_ENV = "SUPERVISORS_PARENT_PID"
"""Environment variable naming the supervising process, to catch a parent that died
before the parent-death signal was armed."""

STANDBY_ENV = "SUPERVISORS_STANDBY"
"""Environment variable set (to ``1``) in a warm standby: park before running the target."""

_PR_SET_PDEATHSIG = 1
_READY = b"R"
PARKED = b"P"
"""What a standby writes once its target is imported and prepared."""
ACTIVATE = b"A"
"""What the supervisor writes to a parked standby to make it run its target."""
_PREPARE_ATTR = "__supervisors_prepare__"

F = TypeVar("F", bound=Callable[..., Any])

Ready = Callable[[], None]
"""The type of ``ready``: call it once the child can do its work; later calls do nothing."""

_setup_lock = threading.Lock()
_ready_fn: Ready | None = None
# Set by the watch thread when the supervisor activates this (standby) process.
_activated = threading.Event()
_control: socket.socket | None = None


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _set_parent_death_signal(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _die() -> None:
    # SIGKILL rather than a graceful exit: the supervisor that would have waited for a
    # graceful stop is gone, and an orphan must not linger on a slow cleanup.
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(sock: socket.socket) -> None:
    while True:
        try:
            data = sock.recv(64)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            _die()
            return
        if ACTIVATE in data:
            _activated.set()


def _no_op_ready() -> None:
    return None


def setup_child() -> Ready:
    """Arm the orphan guards and return the ``ready`` callable; call it first thing.

    Idempotent: later calls return the same ``ready``. Outside a supervisor (no
    control socket in the environment) it still resets the signal dispositions and
    returns a ``ready`` that does nothing, so the same program runs standalone.
    """
    global _ready_fn
    with _setup_lock:
        if _ready_fn is not None:
            return _ready_fn
        global _control
        _reset_signals()
        fd_text = os.environ.pop(CONTROL_FD_ENV, None)
        parent_text = os.environ.pop(PARENT_PID_ENV, None)
        if not fd_text:
            _ready_fn = _no_op_ready
            return _ready_fn
        _set_parent_death_signal(signal.SIGKILL)
        if parent_text is not None and os.getppid() != int(parent_text):
            # The parent died before prctl took effect; nobody would ever signal us.
            _die()
        sock = socket.socket(fileno=int(fd_text))
        # Our own children must not hold the socket open, or our death would go unseen.
        sock.set_inheritable(False)
        _control = sock
        threading.Thread(target=_watch, args=(sock,), name="supervisors-watch", daemon=True).start()
        sent = threading.Event()

        def ready() -> None:
            if sent.is_set():
                return
            sent.set()
            with contextlib.suppress(OSError):
                sock.sendall(_READY)

        _ready_fn = ready
        return ready


def on_standby(prepare: Callable[..., None]) -> Callable[[F], F]:
    """Decorate a process child's target with what its warm standby does while parked.

    ``prepare(*args)`` gets the target's arguments (without ``ready``) and runs in the
    standby before it parks: import what the target will need, read its settings. It
    must not start the child's work (connect, take jobs, open files for writing): a
    standby that is never activated is killed. An exception in it ends the standby
    (the supervisor starts another later, and a cold start in the meantime)::

        def _prepare(settings_json: str) -> None:
            import heavy_module  # noqa: F401

        @on_standby(_prepare)
        def main(ready: Ready, settings_json: str) -> None: ...
    """

    def mark(function: F) -> F:
        setattr(function, _PREPARE_ATTR, prepare)
        return function

    return mark


def run_standby_hook(function: Callable[..., Any], *args: str) -> None:
    """Run ``function``'s :func:`on_standby` hook with ``args``, if it has one (for a
    wrapper target whose own hook prepares the target it wraps)."""
    prepare = getattr(function, _PREPARE_ATTR, None)
    if prepare is not None:
        prepare(*args)


def _park(function: Callable[..., Any], args: list[str]) -> None:
    """A warm standby: prepare, say so, wait to be activated (or killed)."""
    run_standby_hook(function, *args)
    if _control is None:  # no supervisor: nobody will activate us, so run now
        return
    with contextlib.suppress(OSError):
        _control.sendall(PARKED)
    _activated.wait()


def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``"pkg.module:function"`` (dots allowed after the colon) and return it."""
    module_name, sep, attr_path = target.partition(":")
    if not sep or not attr_path:
        raise ValueError(f"target {target!r} must look like 'pkg.module:function'")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"target {target!r} is not callable")
    return obj  # type: ignore[no-any-return]


def _exit_status(result: object) -> int:
    if result is None:
        return 0
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run a target as a supervised child; returns the exit status."""
    ready = setup_child()
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(
            "usage: python -m supervisors.child_runtime pkg.module:function [arg ...]",
            file=sys.stderr,
        )
        return 2
    function = resolve_target(args[0])
    if os.environ.pop(STANDBY_ENV, None):
        _park(function, args[1:])
    if inspect.iscoroutinefunction(function):
        import trio

        return _exit_status(trio.run(function, ready, *args[1:]))
    return _exit_status(function(ready, *args[1:]))


if __name__ == "__main__":
    sys.exit(main())
