"""The embedded ``nats-server`` as a supervised child of ``actorq up``.

The server runs under a supervisor of its own (``nats``), opened *around* the root
supervisor of the actors, so it starts first and stops last: every actor can still
talk to NATS while it drains. When the server dies (``kill -9``, a crash, the OOM
killer), the ``nats`` supervisor starts it again at once on the same host, port and
data dir, with the same auth file: JetStream finds its streams and buckets again, and
every client (nats-py and the actors' Trio link) reconnects by itself.

If the server cannot be brought back (the port was taken meanwhile, the binary is
gone, the data dir is unusable), each start fails; after :data:`MAX_RESTARTS` within
:data:`WITHIN` seconds the supervisor gives up with
:class:`~supervisors.RestartIntensityExceeded` naming the last reason, and
``actorq up`` exits non-zero with it.

Example::

    async with open_supervised_server(host="127.0.0.1", port=None, data_dir=d) as server:
        print(server.url, server.pid())
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from actorq.exceptions import ActorqError, ServerError
from actorq.nats.embedded_server import ServerAuth, check_bind, free_port, open_nats_server
from supervisors import Backoff, StartError, Supervisor, TaskSpec, open_supervisor

__all__ = ["MAX_RESTARTS", "WITHIN", "SupervisedServer", "open_supervised_server"]

log = logging.getLogger("actorq.runtime.up")

#: The server's supervisor gives up after more restarts than this within :data:`WITHIN`
#: seconds: a port taken by someone else fails every start at once.
MAX_RESTARTS = 5
WITHIN = 30.0
#: First restart at once, then 0.2, 0.4, ... 1 s apart: well within 2 s of a death.
_BACKOFF = Backoff(initial=0.2, factor=2.0, max=1.0, reset_after=10.0)
#: The child id, as ``actorq up`` logs and snapshots name it.
CHILD_ID = "nats-server"


class SupervisedServer:
    """Where the supervised server listens; :meth:`pid` is the current process's."""

    def __init__(self, host: str, port: int, data_dir: Path, supervisor: Supervisor) -> None:
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.supervisor = supervisor

    @property
    def url(self) -> str:
        """The ``nats://host:port`` URL, the same across restarts."""
        return f"nats://{self.host}:{self.port}"

    def pid(self) -> int | None:
        """PID of the running server, ``None`` while it is being restarted."""
        for child in self.supervisor.snapshot().children:
            if child.id == CHILD_ID:
                return child.pid if child.state == "running" else None
        return None


async def _serve_server(
    host: str,
    port: int,
    data_dir: Path,
    auth: ServerAuth | None,
    allow_insecure_bind: bool,
    ready_timeout: float,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one server process until it dies (raises) or this task is cancelled (stops it)."""
    async with open_nats_server(
        host=host,
        port=port,
        data_dir=data_dir,
        auth=auth,
        allow_insecure_bind=allow_insecure_bind,
        ready_timeout=ready_timeout,
    ) as server:
        task_status.started(server.pid)
        code = await server.process.wait()
    how = f"signal {-code}" if code < 0 else f"code {code}"
    log.error(
        "nats-server pid %d exited (%s); starting it again on %s", server.pid, how, server.url
    )
    raise ServerError(f"nats-server pid {server.pid} exited ({how})")


@asynccontextmanager
async def open_supervised_server(
    *,
    host: str,
    port: int | None,
    data_dir: str | os.PathLike[str],
    auth: ServerAuth | None = None,
    allow_insecure_bind: bool = False,
    ready_timeout: float = 10.0,
) -> AsyncIterator[SupervisedServer]:
    """Run the embedded server under its own supervisor for the duration of the block.

    ``port`` ``None`` picks a free one once; restarts reuse it. Raises what
    :func:`~actorq.nats.embedded_server.open_nats_server` raises when the first start
    fails (:class:`~actorq.exceptions.PortInUse`, :class:`~actorq.exceptions.ServerBinaryNotFound`,
    :class:`~actorq.exceptions.ServerError`), and
    :class:`~supervisors.RestartIntensityExceeded` when it cannot be brought back.
    """
    check_bind(host, auth, allow_insecure_bind=allow_insecure_bind)
    chosen = port or free_port(host)
    path = Path(data_dir)
    spec = TaskSpec(
        id=CHILD_ID,
        target=_serve_server,
        args=(host, chosen, path, auth, allow_insecure_bind, ready_timeout),
        shutdown=10.0,
        start_timeout=ready_timeout + 1.0,
    )
    started = False
    try:
        async with open_supervisor(
            [spec], id="nats", max_restarts=MAX_RESTARTS, within=WITHIN, backoff=_BACKOFF
        ) as sup:
            started = True
            yield SupervisedServer(host, chosen, path, sup)
    except StartError as exc:
        # The first start failed: raise what the server said (PortInUse, ...), as an
        # unsupervised start would, so the caller's exit code names it.
        if not started and isinstance(exc.__cause__, ActorqError):
            raise exc.__cause__ from None
        raise
