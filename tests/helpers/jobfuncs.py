"""Job functions the job-queue tests enqueue (importable by worker processes too)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from actorq.jobs.job_kinds import asyncio_job


def add(a: int, b: int) -> int:
    return a + b


async def trio_mul(a: int, b: int) -> int:
    await trio.lowlevel.checkpoint()
    return a * b


@asyncio_job
async def asyncio_echo(value: str) -> str:
    await asyncio.sleep(0)
    return f"asyncio:{value}"


def boom(message: str) -> None:
    raise ValueError(message)


def fail_until(marker_dir: str, succeed_on: int) -> int:
    """Fails until called the ``succeed_on``-th time; records each call's time."""
    d = Path(marker_dir)
    d.mkdir(parents=True, exist_ok=True)
    n = len(list(d.iterdir())) + 1
    (d / f"{n}-{time.time()}").touch()
    if n < succeed_on:
        raise RuntimeError(f"attempt {n} fails")
    return n


async def trio_sleep(seconds: float) -> str:
    await trio.sleep(seconds)
    return "slept"


def sync_sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def touch_and_wait(marker: str, seconds: float) -> int:
    """Leaves a marker with the pid, then sleeps (to be killed mid-job)."""
    Path(marker).mkdir(parents=True, exist_ok=True)
    (Path(marker) / f"{os.getpid()}-{time.time()}").touch()
    time.sleep(seconds)
    return os.getpid()


def noop() -> None:
    return None


def slow_first_time(marker_dir: str, seconds: float) -> int:
    """The first call sleeps ``seconds`` (to be killed); later calls return their number."""
    d = Path(marker_dir)
    d.mkdir(parents=True, exist_ok=True)
    n = len(list(d.iterdir())) + 1
    (d / f"{n}-{os.getpid()}").touch()
    if n == 1:
        time.sleep(seconds)
    return n


async def trio_slow_first_time(marker_dir: str, seconds: float) -> int:
    """Like :func:`slow_first_time`, as a Trio coroutine (cancellable)."""
    n = _record_call(marker_dir)
    if n == 1:
        await trio.sleep(seconds)
    return n


def _record_call(marker_dir: str) -> int:
    d = Path(marker_dir)
    d.mkdir(parents=True, exist_ok=True)
    n = len(list(d.iterdir())) + 1
    (d / f"{n}-{os.getpid()}").touch()
    return n


def big_result(size: int) -> bytes:
    """Returns ``size`` bytes (over the server's max_payload when asked)."""
    return b"x" * size


def sys_exit() -> None:
    raise SystemExit(3)


def keyboard_interrupt() -> None:
    raise KeyboardInterrupt


async def trio_sys_exit() -> None:
    await trio.lowlevel.checkpoint()
    raise SystemExit(4)


def huge_error(size: int) -> None:
    raise ValueError("e" * size)


def digest_of(data: bytes) -> str:
    """The SHA-256 of a (large) argument, so a test can check it arrived whole."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


def sync_stuck_first_time(marker_dir: str, first_seconds: float) -> list[Any]:
    """The first call blocks ``first_seconds`` (past its timeout); every call leaves
    ``start-<n>-<pid>-<time>`` and, when it returns, ``end-<n>-<time>``. Returns
    ``[n, first_alive]``: whether the first call's process still ran when this began
    (``None`` on the first call)."""
    import psutil

    d = Path(marker_dir)
    d.mkdir(parents=True, exist_ok=True)
    n = len(list(d.glob("start-*"))) + 1
    (d / f"start-{n}-{os.getpid()}-{time.time()}").touch()
    first_alive: bool | None = None
    if n == 1:
        time.sleep(first_seconds)
    else:
        pid = int(next(d.glob("start-1-*")).name.split("-")[2])
        try:
            first_alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            first_alive = False
    (d / f"end-{n}-{time.time()}").touch()
    return [n, first_alive]


def killed_first_time(marker_dir: str, value: int) -> int:
    """The first call SIGKILLs its own process (a worker dying mid-job, as ``kill -9``
    would); later calls return ``value``. Each call leaves ``<n>-<pid>``."""
    if _record_call(marker_dir) == 1:
        os.kill(os.getpid(), 9)
    return value


def slow_add(a: int, b: int, seconds: float) -> int:
    time.sleep(seconds)
    return a + b
