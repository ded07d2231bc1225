"""Job functions of ``bench/chaos.py``; queue actor processes import them by name.

Every run of :func:`work` appends its job number to a log of the worker process
(``runs-<pid>.log`` in the marker dir, one ``O_APPEND`` write a line, so lines never
interleave), so the bench can count how many times each job ran.
"""

from __future__ import annotations

import os
import time

import trio


def expected(i: int) -> int:
    """What job ``i`` must return."""
    return i * 7 + 3


def _append(marker_dir: str, kind: str, line: str) -> None:
    fd = os.open(
        os.path.join(marker_dir, f"{kind}-{os.getpid()}.log"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        0o600,
    )
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def _mark(marker_dir: str, i: int) -> None:
    _append(marker_dir, "runs", str(i))


async def work(i: int, marker_dir: str, millis: float) -> int:
    """An ordinary job: mark the run, take ``millis`` ms, return :func:`expected`."""
    _mark(marker_dir, i)
    if millis > 0:
        await trio.sleep(millis / 1000)
    return expected(i)


def oversize(i: int, marker_dir: str) -> bytes:
    """Poison: a result over the server's payload limit (2 MiB)."""
    _mark(marker_dir, i)
    return b"x" * (2 * 1024 * 1024)


def exits(i: int, marker_dir: str) -> None:
    """Poison: ``SystemExit`` from a sync job (must not take its worker down)."""
    _mark(marker_dir, i)
    raise SystemExit(3)


def tick(name: str, marker_dir: str) -> None:
    """A schedule's job: mark the run (``ticks-<pid>.log``: name and time)."""
    _append(marker_dir, "ticks", f"{name} {time.time():.3f}")
