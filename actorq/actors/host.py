"""Runs one actor: as a Trio task (:func:`serve_actor`) or as a process (:func:`main`).

A process actor is a supervisor child started as
``python -m supervisors.child_runtime actorq.actors.host:main SETTINGS_JSON``; build
its spec with :func:`actor_process_spec` (``actorq up`` does, for ``[[actors]]``)::

    spec = actor_process_spec("greeter", "myapp.actors:Greeter", processes=2,
                              mailbox="durable", url="nats://127.0.0.1:4222")
    async with supervisors.open_supervisor([spec]):
        ...

The dispatch loop takes a batch from the mailbox, and for each message: decode (the
tag picks the type), await the handler, queue the reply (ask) or the ack (durable).
Replies and acks of a batch leave in one crossing to the asyncio side.

What a handler's exception does: for an ``ask`` it goes back to the asker as a
:class:`~actorq.RemoteError` and the actor carries on; for a ``send`` nobody is
waiting, so the actor crashes ("let it crash") and its supervisor restarts it by its
restart type. A durable message whose handler raised is acked first: it would most
likely crash the next incarnation too.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

from actorq.actors.actor import Actor, dispatch_table, encode_error, encode_reply
from actorq.actors.refs import (
    MailboxKind,
    actor_subject,
    check_actor_name,
    mailbox_stream,
    mailbox_subject,
)
from actorq.constants import DEFAULT_NAMESPACE, DEFAULT_URL
from actorq.exceptions import ActorDefinitionError, ConfigError, UnhandledMessage
from actorq.nats.actor_transport import (
    ActorTransport,
    Delivery,
    Inbox,
    close_transport,
    durable_consumer_config,
    transport_for,
)
from actorq.nats.connection import Connection, open_nats
from actorq.nats.options import ConnectOptions
from actorq.nats.provisioning import StreamSpec, ensure_stream
from actorq.process.entry import cancel_on_signals, default_logging
from actorq.process.heartbeat import publish_heartbeats
from supervisors import ProcessSpec, Restart, SupervisorSpec

__all__ = [
    "ActorHostSettings",
    "actor_process_spec",
    "class_path",
    "main",
    "provision_mailbox",
    "resolve_actor_class",
    "serve_actor",
]

log = logging.getLogger("actorq.actors.actor")

DEFAULT_ACK_WAIT = 5.0
#: Environment variable carrying an actor process's connect options (JSON).
ENV_CONNECT = "ACTORQ_ACTOR_CONNECT"
_IN_PROGRESS = b"+WPI"
DEFAULT_MAX_IN_FLIGHT = 512


class ActorHostSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an actor process needs, passed to it as JSON."""

    name: str
    #: ``"pkg.module:Class"``, a subclass of :class:`actorq.Actor`.
    actor: str
    url: list[str] = msgspec.field(default_factory=lambda: [DEFAULT_URL])
    namespace: str = DEFAULT_NAMESPACE
    mailbox: MailboxKind = "at_most_once"
    #: Arguments of the class's ``__init__`` (JSON values).
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    #: Prepended to ``sys.path`` before the class is imported.
    sys_path: list[str] = []
    #: Modules imported before the class.
    imports: list[str] = []
    #: Durable mailbox: seconds before a delivered, unacked message is redelivered.
    ack_wait: float = DEFAULT_ACK_WAIT
    #: Durable mailbox: messages fetched and not yet acked, per process.
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    #: How to connect (auth, TLS); secrets filled in by ``actorq up`` from the environment.
    connect: ConnectOptions = ConnectOptions()


def resolve_actor_class(path: str) -> type[Actor]:
    """Import ``"pkg.module:Class"`` and check it is an actor with valid handlers.

    Raises :class:`~actorq.ConfigError` saying what is wrong (import failure, not an
    ``Actor`` subclass, bad handler).
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"actor class {path!r} must look like 'pkg.module:Class'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"actor class {path!r} cannot be imported: {exc}. Check the module is on "
            "sys.path (or in `imports`) and the class name is right."
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, Actor)):
        raise ConfigError(f"{path!r} is {obj!r}, not a subclass of actorq.Actor")
    try:
        dispatch_table(obj)
    except ActorDefinitionError as exc:
        raise ConfigError(f"actor class {path!r}: {exc}") from exc
    return obj


def class_path(cls: type[Actor]) -> tuple[str, list[str]]:
    """``("pkg.module:Class", sys_path)`` for a child process to import ``cls``.

    A class defined in a script run as ``__main__`` is imported by the script's file
    name; the directory that holds the top-level package goes on ``sys_path``.
    """
    module_name = cls.__module__
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if "<locals>" in cls.__qualname__:
        raise ActorDefinitionError(
            f"{cls.__qualname__} is defined inside a function; a process actor's class "
            "must be importable: define it at module level"
        )
    if file is None:
        return f"{module_name}:{cls.__qualname__}", []
    path = Path(file).resolve()
    if module_name == "__main__":
        return f"{path.stem}:{cls.__qualname__}", [str(path.parent)]
    depth = module_name.count(".") + (1 if path.name == "__init__.py" else 0)
    return f"{module_name}:{cls.__qualname__}", [str(path.parents[depth])]


async def provision_mailbox(
    conn: Connection,
    namespace: str,
    name: str,
    *,
    ack_wait: float = DEFAULT_ACK_WAIT,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> None:
    """Create (idempotently) the stream and consumer of a durable mailbox."""
    stream = mailbox_stream(namespace, name)
    await ensure_stream(
        conn,
        StreamSpec(
            name=stream,
            subjects=[mailbox_subject(namespace, name)],
            retention="workqueue",
            description=f"durable mailbox of actor {name!r}",
        ),
    )
    await conn.jsm("add_consumer", stream, durable_consumer_config(ack_wait, max_in_flight))


async def serve_actor(
    conn: Connection,
    cls: type[Actor],
    name: str,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    mailbox: MailboxKind = "at_most_once",
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    ack_wait: float = DEFAULT_ACK_WAIT,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one actor until cancelled (or until a ``send`` handler raises).

    Ready (``task_status.started()``) once ``on_start`` has run and the server has the
    actor's subscription, so a message sent after that is delivered.
    """
    check_actor_name(name)
    dispatch_table(cls)  # a bad class fails before anything starts
    transport = await transport_for(conn)
    durable = mailbox == "durable"
    if durable:
        await provision_mailbox(
            conn, namespace, name, ack_wait=ack_wait, max_in_flight=max_in_flight
        )
    actor = cls(*args, **(kwargs or {}))
    actor.name = name
    actor.namespace = namespace
    actor.conn = conn
    actor.started_at = time.time()
    await actor.on_start()
    try:
        async with transport.open_inbox(
            actor_subject(namespace, name),
            queue=name,
            durable_stream=mailbox_stream(namespace, name) if durable else None,
            max_in_flight=max_in_flight,
        ) as inbox:
            task_status.started()
            if not durable:
                await _dispatch(actor, name, inbox, transport, _Progress())
                return
            progress = _Progress()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_keep_leases, inbox, transport, progress, ack_wait)
                await _dispatch(actor, name, inbox, transport, progress)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await actor.on_stop()
            except Exception:
                log.exception("actor %s: on_stop raised", name)


class _Progress:
    """The batch being handled and how far; read by :func:`_keep_leases`."""

    __slots__ = ("batch", "done")

    def __init__(self) -> None:
        self.batch: list[Delivery] = []
        self.done = 0


async def _keep_leases(
    inbox: Inbox, transport: ActorTransport, progress: _Progress, ack_wait: float
) -> None:
    # Durable messages delivered but not yet handled (a slow handler, a long backlog
    # in hand) must not be redelivered elsewhere: renew their lease (+WPI) every third
    # of the ack wait. A short ack wait then only bounds how soon a *crashed*
    # process's messages come back.
    while True:
        await trio.sleep(ack_wait / 3)
        waiting = progress.batch[progress.done :] + inbox.peek()
        for _, _, ack in waiting:
            if ack:
                transport.publish_nowait(ack, _IN_PROGRESS)


async def _dispatch(
    actor: Actor, name: str, inbox: Inbox, transport: ActorTransport, progress: _Progress
) -> None:
    table = dispatch_table(type(actor))
    handlers = table.handlers
    decode = table.decode
    loop = transport.loop
    reply_to = transport.publish_nowait
    while True:
        batch = await inbox.get_batch()
        progress.batch = batch
        done = 0
        acked = 0
        try:
            for data, reply, ack in batch:
                progress.done = done
                try:
                    msg = decode(data)
                    result = await handlers[type(msg)](actor, msg)
                except UnhandledMessage as exc:
                    exc.actor = name
                    if reply:
                        reply_to(reply, encode_error(exc))
                    else:
                        log.warning("actor %s: dropped a message: %s", name, exc.exc_message)
                except Exception as exc:
                    if not reply:
                        log.exception("actor %s crashed handling a sent message", name)
                        if ack:
                            transport.ack_nowait(ack)
                            acked += 1
                        done += 1
                        raise
                    reply_to(reply, encode_error(exc))
                else:
                    if reply:
                        reply_to(reply, encode_reply(result))
                if ack:
                    transport.ack_nowait(ack)
                    acked += 1
                done += 1
            await transport.write_now()  # the batch's replies and acks, in one write
        finally:
            if done < len(batch):
                _give_back(transport, batch[done:])
            if acked:
                inbox.settled(acked, loop)


def _give_back(transport: ActorTransport, rest: list[Delivery]) -> None:
    # Stopping (or crashing) mid-batch: durable messages not handled go back now.
    for _, _, ack in rest:
        if ack:
            transport.nak_nowait(ack)


# -- the process entry point ---------------------------------------------------------


def main(ready: Any, settings_json: str) -> None:
    """Process entry point (``actorq.actors.host:main``), run by a supervisor.

    SIGTERM/SIGINT stop it gracefully (exit 0); a ``send`` handler that raises makes
    it exit 1, so its supervisor restarts it by its restart type.
    """
    settings = msgspec.json.decode(settings_json, type=ActorHostSettings)
    secret = os.environ.pop(ENV_CONNECT, None)
    if secret:
        # Credentials come through the environment, never the command line (ps).
        settings = msgspec.structs.replace(
            settings, connect=msgspec.json.decode(secret, type=ConnectOptions)
        )
    for entry in reversed(settings.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    for module in settings.imports:
        importlib.import_module(module)
    cls = resolve_actor_class(settings.actor)
    if not logging.getLogger().handlers:
        default_logging()

    async def run() -> None:
        async with open_nats(
            settings.url, name=f"actorq-actor-{settings.name}", **settings.connect.kwargs()
        ) as conn:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(cancel_on_signals, nursery.cancel_scope)
                    nursery.start_soon(
                        functools.partial(
                            publish_heartbeats,
                            conn,
                            settings.namespace,
                            role="actor",
                            stats=lambda: {"name": settings.name},
                        )
                    )
                    await nursery.start(
                        functools.partial(
                            serve_actor,
                            conn,
                            cls,
                            settings.name,
                            namespace=settings.namespace,
                            mailbox=settings.mailbox,
                            args=settings.args,
                            kwargs=settings.kwargs,
                            ack_wait=settings.ack_wait,
                            max_in_flight=settings.max_in_flight,
                        )
                    )
                    ready()
            finally:
                await close_transport(conn)

    try:
        trio.run(run)
    except BaseExceptionGroup as group:
        # One crash is one exception: re-raise it alone for a readable traceback.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


def actor_process_spec(
    name: str,
    class_path: str,
    processes: int = 1,
    restart: Restart | str = Restart.PERMANENT,
    mailbox: MailboxKind = "at_most_once",
    url: str | list[str] = DEFAULT_URL,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    sys_path: list[str] | None = None,
    imports: list[str] | None = None,
    ack_wait: float = DEFAULT_ACK_WAIT,
    shutdown: float = 5.0,
    start_timeout: float = 30.0,
    max_restarts: int | None = None,
    within: float = 5.0,
    connect: ConnectOptions | None = None,
) -> ProcessSpec | SupervisorSpec:
    """The supervisor child spec of a process actor (``actorq up``'s ``[[actors]]``).

    One process: a :class:`~supervisors.ProcessSpec` with id ``name``. Several: a
    ``one_for_one`` :class:`~supervisors.SupervisorSpec` with id ``actor-<name>`` over
    processes ``<name>-0`` ... (they share the mailbox: a queue group, or the durable
    consumer); ``restart`` applies to each process, and the nested supervisor allows
    ``max_restarts`` (default 3 per process) within ``within`` seconds.
    ``args``/``kwargs`` go to the class's ``__init__`` and must be JSON values.
    ``connect`` (credentials, TLS) reaches the processes through their environment.
    """
    check_actor_name(name)
    if processes < 1:
        raise ConfigError(f"actor {name!r}: processes must be at least 1, got {processes}")
    if mailbox not in ("at_most_once", "durable"):
        raise ConfigError(
            f"actor {name!r}: mailbox={mailbox!r} is invalid; use 'at_most_once' or 'durable'"
        )
    settings = ActorHostSettings(
        name=name,
        actor=class_path,
        url=[url] if isinstance(url, str) else list(url),
        namespace=namespace,
        mailbox=mailbox,
        args=list(args),
        kwargs=dict(kwargs or {}),
        sys_path=list(sys_path or []),
        imports=list(imports or []),
        ack_wait=ack_wait,
    )
    try:
        payload = msgspec.json.encode(settings).decode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise ConfigError(f"actor {name!r}: args/kwargs must be JSON values: {exc}") from exc

    env = {ENV_CONNECT: msgspec.json.encode(connect).decode()} if connect else {}

    def child(child_id: str) -> ProcessSpec:
        return ProcessSpec(
            id=child_id,
            target="actorq.actors.host:main",
            args=(payload,),
            env=env,
            restart=Restart(restart),
            shutdown=shutdown,
            start_timeout=start_timeout,
        )

    if processes == 1:
        return child(name)
    return SupervisorSpec(
        id=f"actor-{name}",
        children=tuple(child(f"{name}-{i}") for i in range(processes)),
        max_restarts=max_restarts if max_restarts is not None else 3 * processes,
        within=within,
    )
