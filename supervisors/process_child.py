"""Running one incarnation of a :class:`~supervisors.ProcessSpec`: spawn, wait for ready,
wait for exit, stop with the shutdown spec.

The supervisor and the child share a Unix socket pair. The child writes one byte when it
is ready; the supervisor never writes, and keeps its end open for the child's whole life,
so the child sees EOF exactly when its supervising process (or this incarnation) is gone.
Children are spawned from the Trio thread because Linux ties ``PR_SET_PDEATHSIG`` to the
thread that forked (``trio.lowlevel.open_process`` forks from a worker thread, so it is
not used), and each child gets its own process group so a terminal's Ctrl-C
reaches only the top-level process, which then stops the tree in order.

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

import trio

from .child_runtime import CONTROL_FD_ENV, PARENT_PID_ENV
from .events import ExitReason
from .exceptions import StartFailed, StartTimeout
from .spec import ProcessSpec
from .trio_popen import TrioPopen

__all__ = ["build_argv", "build_env", "kill_all_children", "live_child_pids", "run_process"]

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


def _spawn(spec: ProcessSpec, control_fd: int) -> TrioPopen:
    # Deliberately synchronous, in the Trio thread: Linux ties PR_SET_PDEATHSIG to the
    # thread that forked, and trio.lowlevel.open_process forks from a worker thread that
    # exits after 10 s idle, which would SIGKILL the child. fork+exec takes milliseconds.
    return TrioPopen(
        build_argv(spec),
        env=build_env(spec, control_fd),
        cwd=spec.cwd,
        pass_fds=(control_fd,),
        process_group=0,
    )


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
) -> ExitReason:
    """Spawn ``spec``, report its pid once it is ready, return why it exited.

    Cancellation stops the process with its shutdown spec before propagating.
    Raises :class:`StartTimeout` or :class:`StartFailed` if it never gets ready.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            process = _spawn(spec, theirs.fileno())
        finally:
            theirs.close()
        _live.add(process.pid)
        try:
            control = trio.socket.from_stdlib_socket(ours)
            with trio.move_on_after(spec.start_timeout) as start_scope:
                data = await control.recv(64)
            if start_scope.cancelled_caught:
                raise StartTimeout(spec.id, spec.start_timeout)
            if not data:
                with trio.move_on_after(_KILL_WAIT):
                    await process.wait()
                code = process.returncode
                reason = (
                    ExitReason.from_returncode(code)
                    if code is not None
                    else ExitReason("start_failed", text="closed its control socket")
                )
                raise StartFailed(spec.id, reason)
            task_status.started(process.pid)
            return ExitReason.from_returncode(await process.wait())
        finally:
            with trio.CancelScope(shield=True):
                await _stop(process, spec)
            if process.returncode is not None:
                _live.discard(process.pid)
            process.close()
    finally:
        ours.close()
