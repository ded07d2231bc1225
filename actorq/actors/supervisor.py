"""``actorq.open_actor_supervisor``: a supervision tree of user actors, with ``spawn``.

Built on :mod:`supervisors`: an actor spawned with ``process=False`` is a
:class:`~supervisors.TaskSpec` child (a Trio task in this process, on this
supervisor's NATS connection); with ``process=True`` a :class:`~supervisors.ProcessSpec`
child running ``actorq.actors.host:main`` in a fresh interpreter (several, under a
nested supervisor, with ``processes=N``). Restart types, strategies and restart
intensity are those of ``docs/supervisors.md``.

Example::

    async with actorq.open_actor_supervisor(url, strategy="one_for_one", max_restarts=5) as sup:
        counter = await sup.spawn(Counter, name="counter", process=True, mailbox="durable")
        await counter.send(Add(2))
        print(await counter.ask(Total()))
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec

import supervisors
from actorq.actors.actor import Actor, dispatch_table
from actorq.actors.host import (
    DEFAULT_ACK_WAIT,
    actor_process_spec,
    class_path,
    provision_mailbox,
    serve_actor,
)
from actorq.actors.refs import ActorRef, MailboxKind, check_actor_name
from actorq.constants import DEFAULT_NAMESPACE, DEFAULT_URL
from actorq.exceptions import ConfigError, SpawnError
from actorq.nats.actor_transport import close_transport
from actorq.nats.connection import Connection, open_nats
from actorq.nats.local_credentials import resolve_local
from actorq.nats.options import ConnectOptions
from supervisors import Backoff, Restart, Strategy, Supervisor, TaskSpec
from supervisors.serve import open_supervisor as _open_tree

__all__ = ["ActorSupervisor", "open_actor_supervisor"]


class ActorSupervisor:
    """A running tree of actors; get one from :func:`open_actor_supervisor`."""

    def __init__(
        self,
        supervisor: Supervisor,
        conn: Connection,
        namespace: str,
        url: list[str],
        connect: ConnectOptions | None = None,
    ) -> None:
        #: The underlying :class:`supervisors.Supervisor` (snapshots, events, ...).
        self.supervisor = supervisor
        #: The NATS connection in-process actors and refs of this tree use.
        self.conn = conn
        self.namespace = namespace
        self._url = url
        self._connect = connect

    async def spawn(
        self,
        actor: type[Actor],
        *args: Any,
        name: str,
        process: bool = False,
        processes: int = 1,
        restart: Restart | str = Restart.PERMANENT,
        mailbox: MailboxKind = "at_most_once",
        ack_wait: float = DEFAULT_ACK_WAIT,
        shutdown: float = 5.0,
        **kwargs: Any,
    ) -> ActorRef:
        """Start ``actor(*args, **kwargs)`` as the child ``name``; returns its ref once
        it is ready (its ``on_start`` ran and it receives messages).

        ``process=True`` runs it in ``processes`` fresh interpreters (arguments must
        then be JSON values, and the class importable at module level). ``restart``
        is ``"permanent"``, ``"transient"`` or ``"temporary"``. ``mailbox`` is
        ``"at_most_once"`` (core NATS) or ``"durable"`` (JetStream; see docs/actors.md).
        Raises :class:`~actorq.exceptions.ActorDefinitionError` for a bad class and
        :class:`~actorq.exceptions.SpawnError` if the name is taken here or the actor
        does not start (the supervisor's error is its ``__cause__``).
        """
        check_actor_name(name)
        dispatch_table(actor)  # a bad class fails here, not in a child
        if mailbox not in ("at_most_once", "durable"):
            raise ConfigError(f"mailbox={mailbox!r} is invalid; use 'at_most_once' or 'durable'")
        if mailbox == "durable":
            # Before the first start: what is sent from now on is kept.
            await provision_mailbox(self.conn, self.namespace, name, ack_wait=ack_wait)
        spec: supervisors.ChildSpec
        if process:
            path, sys_path = class_path(actor)
            spec = actor_process_spec(
                name, path, processes, restart, mailbox, self._url, self.namespace,
                args=args, kwargs=kwargs, sys_path=sys_path, ack_wait=ack_wait,
                shutdown=shutdown, connect=self._connect,
            )  # fmt: skip
        else:
            if processes != 1:
                raise ConfigError("processes > 1 needs process=True")
            spec = TaskSpec(
                id=name,
                target=functools.partial(
                    serve_actor,
                    self.conn,
                    actor,
                    name,
                    namespace=self.namespace,
                    mailbox=mailbox,
                    args=args,
                    kwargs=kwargs,
                    ack_wait=ack_wait,
                ),
                restart=Restart(restart),
                shutdown=shutdown,
                start_timeout=30.0,
            )
        try:
            await self.supervisor.start_child(spec)
        except supervisors.DuplicateChild as exc:
            raise SpawnError(
                f"an actor named {name!r} already runs in this tree; stop it first or "
                "pick another name"
            ) from exc
        except supervisors.StartError as exc:
            raise SpawnError(f"actor {name!r} did not start: {exc}") from exc
        return ActorRef(
            name, conn=self.conn, namespace=self.namespace, actor=actor, mailbox=mailbox
        )

    async def stop(self, name: str) -> None:
        """Stop the actor ``name`` (gracefully, by its shutdown spec) and forget it."""
        child_id = name if self._has(name) else f"actor-{name}"
        await self.supervisor.terminate_child(child_id)
        with contextlib.suppress(supervisors.ChildNotFound):
            await self.supervisor.delete_child(child_id)

    def _has(self, child_id: str) -> bool:
        return any(c.id == child_id for c in self.supervisor.snapshot().children)

    def ref(self, name: str, *, actor: type[Actor] | None = None) -> ActorRef:
        """A ref to any actor of this namespace, on this tree's connection."""
        return ActorRef(name, conn=self.conn, namespace=self.namespace, actor=actor)

    def snapshot(self) -> supervisors.ChildSnapshot:
        """The tree as data: ids, pids, states, restarts."""
        return self.supervisor.snapshot()


@contextlib.asynccontextmanager
async def open_actor_supervisor(
    url: str | Sequence[str] = DEFAULT_URL,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    conn: Connection | None = None,
    strategy: Strategy | str = Strategy.ONE_FOR_ONE,
    max_restarts: int = 3,
    within: float = 5.0,
    backoff: Backoff | None = None,
    id: str = "actors",
    connect: ConnectOptions | None = None,
    local_credentials: bool = True,
) -> AsyncIterator[ActorSupervisor]:
    """Supervise actors for the duration of the block (Trio).

    Connects to NATS at ``url`` (or uses ``conn``); ``strategy``, ``max_restarts``,
    ``within`` and ``backoff`` are the OTP options of :func:`supervisors.open_supervisor`.
    Leaving the block stops every actor in reverse spawn order. If restart intensity
    is exceeded, :class:`supervisors.RestartIntensityExceeded` comes out of the block.

    ``connect`` (credentials, TLS) is used by this connection and every actor process;
    without credentials, those of a local ``actorq up`` serving ``url`` are used (see
    :func:`actorq.open_client`) unless ``local_credentials`` is false.
    """
    urls = [url] if isinstance(url, str) else list(url)
    connect = connect or ConnectOptions()
    if local_credentials and conn is None and not connect.has_auth:
        _, found, _ = resolve_local(urls, {}, None)
        connect = msgspec.structs.replace(connect, **found)
    async with contextlib.AsyncExitStack() as stack:
        if conn is None:
            conn = await stack.enter_async_context(
                open_nats(urls, name=f"actorq-{id}", **connect.kwargs())
            )
            # Runs after the tree has stopped, before the connection closes.
            stack.push_async_callback(close_transport, conn)
        else:
            urls = [conn.url] if conn.url else urls
        async with _open_tree(
            (),
            id=id,
            strategy=strategy,
            max_restarts=max_restarts,
            within=within,
            backoff=backoff or Backoff(),
        ) as tree:
            yield ActorSupervisor(tree, conn, namespace, urls, connect)
