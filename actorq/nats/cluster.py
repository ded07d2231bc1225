"""A local NATS cluster: several ``nats-server`` processes on loopback, routed together.

For development and tests of what a real cluster does (R3 streams, a node lost and
back): ``actorq server --cluster 3`` runs one in the foreground;
:class:`LocalCluster` runs one from synchronous code (tests kill and restart its nodes).
Each node has its own data dir, a client port and a cluster (route) port; all run
JetStream, so streams created with ``replicas=3`` keep a copy on every node.

Example::

    with LocalCluster(3) as cluster:
        await wait_for_jetstream(cluster.urls)
        async with open_client(cluster.urls) as client: ...
        cluster.kill(0)          # the clients move to the other nodes
        cluster.restart(0)       # same ports, same data dir: it catches up
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType

import trio

from actorq.exceptions import BrokerError, ServerError
from actorq.nats.connection import open_nats
from actorq.nats.embedded_server import (
    EmbeddedServer,
    NatsServerProcess,
    free_port,
    open_nats_server,
)

__all__ = ["LocalCluster", "cluster_args", "open_nats_cluster", "wait_for_jetstream"]

#: The cluster name of local development clusters.
DEFAULT_CLUSTER_NAME = "actorq-dev"


def cluster_args(
    name: str, index: int, route_ports: Sequence[int], host: str = "127.0.0.1"
) -> list[str]:
    """The ``nats-server`` arguments of node ``index`` of a cluster whose nodes listen
    for routes on ``route_ports`` (one per node)."""
    routes = ",".join(
        f"nats://{host}:{port}" for i, port in enumerate(route_ports) if i != index
    )
    return [
        "--server_name", f"{name}-{index + 1}",
        "--cluster_name", name,
        "--cluster", f"nats://{host}:{route_ports[index]}",
        "--routes", routes,
    ]  # fmt: skip


async def wait_for_jetstream(urls: Sequence[str], *, within: float = 30.0) -> None:
    """Return once JetStream answers through ``urls`` (a clustered JetStream needs a
    meta leader first, elected a few seconds after the nodes meet); raises
    :class:`~actorq.exceptions.ServerError` after ``within`` seconds."""
    last: Exception | None = None
    with trio.move_on_after(within):
        while True:
            try:
                async with open_nats(list(urls), connect_timeout=2.0) as conn:
                    await conn.jsm("account_info")
                    return
            except BrokerError as exc:
                last = exc
            await trio.sleep(0.2)
    raise ServerError(f"JetStream did not answer at {', '.join(urls)} within {within}s: {last}")


class LocalCluster:
    """``size`` nats-server processes on loopback, routed into one JetStream cluster.

    ``data_dir`` holds one folder per node (default: a temporary dir removed on
    close). Every process is stopped on :meth:`close`, and dies with this process (with
    the thread that started it, in fact).
    """

    def __init__(
        self,
        size: int = 3,
        *,
        host: str = "127.0.0.1",
        data_dir: str | os.PathLike[str] | None = None,
        name: str = DEFAULT_CLUSTER_NAME,
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster needs at least one node, not {size}")
        self.size = size
        self.host = host
        self.name = name
        self._owned: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._owned = tempfile.TemporaryDirectory(prefix="actorq-cluster-")
            data_dir = self._owned.name
        self.data_dir = Path(data_dir)
        ports = [free_port(host) for _ in range(size)]
        route_ports = [free_port(host) for _ in range(size)]
        self.nodes = [
            NatsServerProcess(
                host=host,
                port=ports[i],
                data_dir=self.data_dir / f"n{i + 1}",
                extra_args=cluster_args(name, i, route_ports, host),
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        """The client URL of every node."""
        return [node.url for node in self.nodes]

    def start(self) -> None:
        """Start every node (each accepts clients at once; see :func:`wait_for_jetstream`)."""
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.close()
            raise

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (its data dir stays)."""
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        """Start node ``index`` again, on its ports with its data dir.

        Call it from a thread that lives as long as the node should: the node dies with
        the thread that started it (Linux ties ``PR_SET_PDEATHSIG`` to that thread)."""
        self.nodes[index].start()

    def close(self) -> None:
        """Stop every node; remove an owned data dir."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        if self._owned is not None:
            self._owned.cleanup()
            self._owned = None

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.asynccontextmanager
async def open_nats_cluster(
    size: int = 3,
    *,
    host: str = "127.0.0.1",
    data_dir: str | os.PathLike[str] | None = None,
    name: str = DEFAULT_CLUSTER_NAME,
) -> AsyncIterator[list[EmbeddedServer]]:
    """Run a local cluster for the duration of the block (Trio); ready once JetStream
    answers. The nodes stop together when the block ends."""
    with contextlib.ExitStack() as dirs:
        base = Path(data_dir) if data_dir is not None else Path(
            dirs.enter_context(tempfile.TemporaryDirectory(prefix="actorq-cluster-"))
        )
        ports = [free_port(host) for _ in range(size)]
        route_ports = [free_port(host) for _ in range(size)]
        async with contextlib.AsyncExitStack() as stack:
            servers = [
                await stack.enter_async_context(
                    open_nats_server(
                        host=host,
                        port=ports[i],
                        data_dir=base / f"n{i + 1}",
                        extra_args=cluster_args(name, i, route_ports, host),
                    )
                )
                for i in range(size)
            ]
            await wait_for_jetstream([s.url for s in servers])
            yield servers
