"""Running one incarnation of a :class:`~supervisors.ProcessSpec`: spawn, wait for ready,
wait for exit, stop with the shutdown spec.

The supervisor and the child share a Unix socket pair. The child writes one byte when it
is ready; the supervisor never writes, and keeps its end open for the child's whole life,
so the child sees EOF exactly when its supervising process (or this incarnation) is gone.
Children are spawned from the Trio thread because Linux ties ``PR_SET_PDEATHSIG`` to the
thread that forked (``trio.lowlevel.open_process`` forks from a worker thread, so it is
not used), and each child gets its own process group so a terminal's Ctrl-C
reaches only the top-level process, which then stops the tree in order.

A spec with ``standby=True`` gets its process from a warm standby when one is parked
(:mod:`supervisors.standby`): the supervisor writes ``A`` to the standby's control
socket instead of spawning, and the rest (ready byte, exit, stop) is the same.

Nothing of a child's process group outlives the child: SIGTERM goes to the child
alone (it decides how to stop what it started), SIGKILL goes to the whole group, and
once the child has exited whatever is left of its group (grandchildren it started
and did not stop) is killed too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import trio

from .child_runtime import ACTIVATE, CONTROL_FD_ENV, PARENT_PID_ENV, PARKED, STANDBY_ENV
from .events import ExitReason
from .exceptions import StartFailed, StartTimeout
from .spec import ProcessSpec
from .trio_popen import TrioPopen

if TYPE_CHECKING:
    from .standby import StandbyPool

__all__ = [
    "Spawned",
    "build_argv",
    "build_env",
    "kill_all_children",
    "live_child_pids",
    "park_process",
    "run_process",
    "stop_spawned",
]

log = logging.getLogger("supervisors")

# Where this package lives, so a child interpreter can import supervisors.child_runtime
# even when the package is used from a checkout rather than installed.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_KILL_WAIT = 5.0

_live: set[int] = set()


def live_child_pids() -> frozenset[int]:
    """PIDs of every process child this process has spawned and not yet reaped."""
    return frozenset(_live)


def kill_all_children() -> None:
    """SIGKILL every live process child of this process, and the processes of their
    groups (the second Ctrl-C)."""
    for pid in list(_live):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            _live.discard(pid)
        _kill_group(pid)


def _kill_group(pgid: int) -> None:
    """SIGKILL every process left in process group ``pgid`` (a child's, by its pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nobody left in it
        os.killpg(pgid, signal.SIGKILL)


def build_argv(spec: ProcessSpec) -> list[str]:
    """The command line for ``spec``: always a fresh interpreter, never a fork."""
    python = spec.python or sys.executable
    if ":" in spec.target:
        return [python, "-m", "supervisors.child_runtime", spec.target, *spec.args]
    return [python, "-m", spec.target, *spec.args]


def build_env(
    spec: ProcessSpec, control_fd: int, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: ours, plus ``spec.env``, plus the control-socket variables."""
    env = dict(os.environ if base is None else base)
    inherited_path = env.get("PYTHONPATH", "")
    env.update(spec.env)
    paths = [p for p in spec.env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths.append(_PACKAGE_ROOT)
    paths.extend(p for p in inherited_path.split(os.pathsep) if p)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env[CONTROL_FD_ENV] = str(control_fd)
    env[PARENT_PID_ENV] = str(os.getpid())
    return env


class Spawned:
    """A spawned process child and our end of its control socket."""

    def __init__(self, process: TrioPopen, sock: socket.socket) -> None:
        self.process = process
        self.pid = process.pid
        self.sock = sock
        self.control = trio.socket.from_stdlib_socket(sock)

    def close(self) -> None:
        """Release the pidfd and the socket (the process itself is not touched)."""
        self.process.close()
        self.sock.close()


def _spawn(spec: ProcessSpec, *, standby: bool = False) -> Spawned:
    # Deliberately synchronous, in the Trio thread: Linux ties PR_SET_PDEATHSIG to the
    # thread that forked, and trio.lowlevel.open_process forks from a worker thread that
    # exits after 10 s idle, which would SIGKILL the child. fork+exec takes milliseconds.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            env = build_env(spec, theirs.fileno())
            if standby:
                env[STANDBY_ENV] = "1"
            process = TrioPopen(
                build_argv(spec),
                env=env,
                cwd=spec.cwd,
                pass_fds=(theirs.fileno(),),
                process_group=0,
            )
        finally:
            theirs.close()
    except BaseException:
        ours.close()
        raise
    _live.add(process.pid)
    return Spawned(process, ours)


async def stop_spawned(spawned: Spawned, spec: ProcessSpec) -> None:
    """Stop ``spawned`` with ``spec``'s shutdown (shielded) and release it."""
    try:
        with trio.CancelScope(shield=True):
            await _stop(spawned.process, spec)
    finally:
        if spawned.process.returncode is not None:
            _live.discard(spawned.pid)
        spawned.close()


async def _start_failure(spawned: Spawned, spec: ProcessSpec, data: bytes) -> StartFailed:
    """Why a child closed its control socket (or wrote something unexpected) at start."""
    if data:
        return StartFailed(spec.id, ExitReason("start_failed", text=f"wrote {data!r} at start"))
    with trio.move_on_after(_KILL_WAIT):
        await spawned.process.wait()
    code = spawned.process.returncode
    reason = (
        ExitReason.from_returncode(code)
        if code is not None
        else ExitReason("start_failed", text="closed its control socket")
    )
    return StartFailed(spec.id, reason)


async def park_process(spec: ProcessSpec) -> Spawned:
    """Spawn a warm standby of ``spec`` and return it once it has parked.

    Raises :class:`StartTimeout` or :class:`StartFailed` (the process is then gone).
    """
    spawned = _spawn(spec, standby=True)
    parked = False
    try:
        with trio.move_on_after(spec.start_timeout) as start_scope:
            data = await spawned.control.recv(64)
        if start_scope.cancelled_caught:
            raise StartTimeout(spec.id, spec.start_timeout)
        if data != PARKED:
            raise await _start_failure(spawned, spec, data)
        parked = True
        return spawned
    finally:
        if not parked:
            await stop_spawned(spawned, spec)


async def _activate(spawned: Spawned) -> bool:
    """Tell a parked standby to run its target; ``False`` if it is gone already."""
    if spawned.process.poll() is not None:
        return False
    try:
        await spawned.control.send(ACTIVATE)
    except OSError:  # it died between the poll and the write
        return False
    return True


async def _stop(process: TrioPopen, spec: ProcessSpec) -> None:
    """Graceful then forceful stop; the caller shields this and it bounds itself."""
    if process.returncode is None and spec.shutdown != "brutal":
        process.send_signal(signal.SIGTERM)
        grace = float(spec.shutdown)
        with trio.move_on_after(grace if math.isfinite(grace) else 1e9):
            await process.wait()
    if process.returncode is None:
        if spec.shutdown != "brutal":
            log.warning(
                "process child %r (pid %d) ignored SIGTERM for %s s; killing it",
                spec.id,
                process.pid,
                spec.shutdown,
            )
        process.send_signal(signal.SIGKILL)
        _kill_group(process.pid)
        with trio.move_on_after(_KILL_WAIT):
            await process.wait()
    # The child is gone (or beyond reach): leave none of its group behind. Its pid
    # names the group; Linux does not hand that number out again while the group
    # still has members.
    _kill_group(process.pid)


async def run_process(
    spec: ProcessSpec,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    standbys: StandbyPool | None = None,
) -> ExitReason:
    """Spawn ``spec`` (or activate a parked standby from ``standbys``), report its pid
    once it is ready, return why it exited.

    Cancellation stops the process with its shutdown spec before propagating.
    Raises :class:`StartTimeout` or :class:`StartFailed` if it never gets ready.
    """
    spawned = await standbys.take() if standbys is not None else None
    if spawned is not None and not await _activate(spawned):
        await stop_spawned(spawned, spec)
        spawned = None
    if spawned is None:
        spawned = _spawn(spec)
    process = spawned.process
    try:
        with trio.move_on_after(spec.start_timeout) as start_scope:
            data = await spawned.control.recv(64)
        if start_scope.cancelled_caught:
            raise StartTimeout(spec.id, spec.start_timeout)
        if not data:
            raise await _start_failure(spawned, spec, data)
        task_status.started(process.pid)
        if standbys is not None:
            standbys.refill()  # only now: the spare's imports must not slow this start
        return ExitReason.from_returncode(await process.wait())
    finally:
        await stop_spawned(spawned, spec)
