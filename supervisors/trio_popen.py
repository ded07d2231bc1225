"""A child process forked from the Trio thread itself and awaited through a pidfd.

Why not ``trio.lowlevel.open_process``: it forks from a Trio worker thread, and Linux
ties ``PR_SET_PDEATHSIG`` to the *thread* that forked. Trio retires idle worker
threads after 10 s, which then SIGKILLs the child. A fork+exec takes milliseconds, so
forking synchronously in the Trio thread is cheap; waiting is still async (a pidfd
becomes readable when the process exits; without pidfd support, a 20 ms poll).

Example::

    proc = TrioPopen(["nats-server", "-js"], preexec_fn=...)
    try:
        await proc.wait()
    finally:
        proc.close()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

import trio

__all__ = ["TrioPopen"]


class TrioPopen:
    """``subprocess.Popen`` started in the calling (Trio) thread, with an async ``wait``.

    Takes ``Popen``'s arguments. Call :meth:`close` when done with it.
    """

    def __init__(self, argv: list[str], **popen_kwargs: Any) -> None:
        self.popen: subprocess.Popen[bytes] = subprocess.Popen(argv, **popen_kwargs)
        self.pid = self.popen.pid
        self._pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self._pidfd = os.pidfd_open(self.pid)

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped (negative: killed by that signal), else ``None``."""
        return self.popen.returncode

    def poll(self) -> int | None:
        """Reap the process if it has exited; its return code or ``None``."""
        return self.popen.poll()

    async def wait(self) -> int:
        """Wait until the process exits and return its return code."""
        while self.popen.poll() is None:
            if self._pidfd is not None:
                await trio.lowlevel.wait_readable(self._pidfd)
            else:
                await trio.sleep(0.02)
        return self.popen.returncode

    def send_signal(self, signum: int) -> None:
        """Signal the process unless it was already reaped (never a recycled pid)."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signum)  # polls first

    def kill(self) -> None:
        """SIGKILL the process (if still there)."""
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Release the pidfd; the process itself is not touched."""
        if self._pidfd is not None:
            trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
