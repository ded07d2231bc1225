"""A user actor for tests/runtime/test_up.py, declared in a config's ``[[actors]]``."""

from __future__ import annotations

import os

import msgspec

import actorq

#: When the file this names exists, the actor fails in ``on_start``: a restart of it
#: then crash-loops (set by the test, inherited by the actor's process).
CRASH_MARKER_ENV = "ACTORQ_TEST_ACTOR_CRASH_MARKER"


class Ping(msgspec.Struct, tag=True):
    n: int


class Echo(actorq.Actor):
    """Answers ``Ping(n)`` with ``n + step`` and its pid."""

    def __init__(self, step: int = 1) -> None:
        self.step = step

    async def on_start(self) -> None:
        marker = os.environ.get(CRASH_MARKER_ENV)
        if marker and os.path.exists(marker):  # noqa: ASYNC240 - one stat at start
            raise RuntimeError("Echo: failing on start on purpose (test)")

    @actorq.handler
    async def ping(self, msg: Ping) -> list[int]:
        return [msg.n + self.step, os.getpid()]
