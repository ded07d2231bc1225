"""References to actors by name, usable from any process on the same NATS.

Subjects and streams (``<ns>`` is the namespace, ``<name>`` the actor's name)::

    <ns>.actor.<name>     core NATS, queue group <name>: asks, and sends to an
                          at-most-once mailbox
    <ns>.mbox.<name>      captured by stream <ns>_mbox_<name> (work-queue retention,
                          consumer "actor"): sends to a durable mailbox

A ref learns which kind of mailbox its actor has once, on its first ``send`` (does
the stream ``<ns>_mbox_<name>`` exist?), unless it was told (refs from ``spawn`` are).

Example::

    async with actorq.nats.open_nats(url) as nc:
        greeter = actorq.ref("greeter", conn=nc, namespace="shop")
        await greeter.send(Greet("ada"))
        print(await greeter.ask(Greet("bob"), timeout=2))
"""

from __future__ import annotations

import re
from typing import Any, Literal

from actorq.actors.actor import Actor, decode_reply, dispatch_table, encode_message
from actorq.constants import DEFAULT_NAMESPACE
from actorq.exceptions import ConfigError, NotFound
from actorq.nats.actor_transport import ActorTransport, transport_for
from actorq.nats.connection import Connection
from actorq.nats.provisioning import Namespace
from actorq.wire.messages import ActorInfo, Introspect, Ping, Pong

__all__ = ["ActorRef", "MailboxKind", "actor_subject", "mailbox_stream", "mailbox_subject", "ref"]

MailboxKind = Literal["at_most_once", "durable"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def check_actor_name(name: str) -> None:
    """Actor names become subject tokens and stream names: keep them plain."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"actor name {name!r} may only contain letters, digits, '_' and '-'; "
            "pick a name like 'greeter' or 'greeter-2'"
        )


def actor_subject(namespace: str, name: str) -> str:
    """Core subject of an actor (asks, at-most-once sends)."""
    return Namespace(namespace).subject(f"actor.{name}")


def mailbox_subject(namespace: str, name: str) -> str:
    """Subject a durable mailbox's stream captures."""
    return Namespace(namespace).subject(f"mbox.{name}")


def mailbox_stream(namespace: str, name: str) -> str:
    """Stream of a durable mailbox."""
    return Namespace(namespace).stream(f"mbox_{name}")


class ActorRef:
    """Talks to the actor ``name`` over ``conn``; cheap to create, safe to share.

    ``actor`` (the class, when known) lets :meth:`ask` decode replies into the
    handler's annotated return type; without it, pass ``returns=`` or get plain
    msgpack values (structs as dicts).
    """

    def __init__(
        self,
        name: str,
        *,
        conn: Connection,
        namespace: str = DEFAULT_NAMESPACE,
        actor: type[Actor] | None = None,
        mailbox: MailboxKind | None = None,
    ) -> None:
        check_actor_name(name)
        self.name = name
        self.namespace = namespace
        self.conn = conn
        self.actor = actor
        self.mailbox: MailboxKind | None = mailbox
        self.subject = actor_subject(namespace, name)
        self._mbox_subject = mailbox_subject(namespace, name)
        self._transport: ActorTransport | None = None
        self._returns = dispatch_table(actor).returns if actor is not None else {}

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r}, namespace={self.namespace!r})"

    async def _get_transport(self) -> ActorTransport:
        if self._transport is None:
            self._transport = await transport_for(self.conn)
        return self._transport

    async def _resolve(self) -> MailboxKind:
        if self.mailbox is None:
            try:
                await self.conn.jsm("stream_info", mailbox_stream(self.namespace, self.name))
                self.mailbox = "durable"
            except NotFound:
                self.mailbox = "at_most_once"
        return self.mailbox

    async def send(self, msg: object) -> None:
        """Fire and forget.

        At-most-once mailbox: returns at once (the message is queued for the
        connection, in order); if no actor process is subscribed when it reaches the
        server, it is dropped. Durable mailbox: returns once JetStream has stored it;
        it is then handled at least once, even if the actor is down right now.
        """
        data = encode_message(msg)
        transport = self._transport or await self._get_transport()
        if self.mailbox == "at_most_once" or await self._resolve() == "at_most_once":
            await transport.publish(self.subject, data)
        else:
            await self.conn.js_publish(self._mbox_subject, data)

    async def send_many(self, msgs: list[Any]) -> None:
        """Send several messages; for a durable mailbox, one pipelined batch."""
        datas = [encode_message(m) for m in msgs]
        transport = self._transport or await self._get_transport()
        if await self._resolve() == "at_most_once":
            for data in datas:
                await transport.publish(self.subject, data)
        else:
            from actorq.nats.connection import OutMsg

            await self.conn.js_publish_many([OutMsg(self._mbox_subject, d) for d in datas])

    async def ask(self, msg: object, *, timeout: float = 5.0, returns: Any = None) -> Any:  # noqa: ASYNC109
        """Send ``msg`` and return the handler's reply.

        Raises :class:`~actorq.RemoteError` (type, message, remote traceback) if the
        handler raised, :class:`~actorq.exceptions.UnhandledMessage` if the actor has no handler
        for the type, :class:`~actorq.exceptions.ActorUnavailable` at once if no process serves
        the name, :class:`~actorq.AskTimeout` after ``timeout`` seconds. Asks always
        travel over core NATS, whatever the mailbox kind (see docs/actors.md).
        """
        data = encode_message(msg)
        transport = self._transport or await self._get_transport()
        reply = await transport.request(self.subject, data, timeout=timeout)
        if returns is None:
            returns = self._returns.get(type(msg))
        return decode_reply(self.name, reply, returns)

    async def ping(self, *, timeout: float = 5.0) -> Pong:  # noqa: ASYNC109
        """Ask the actor (any one of its processes) whether it is there.

        Every actor answers, user and runtime alike; raises like :meth:`ask`.
        """
        pong: Pong = await self.ask(Ping(), timeout=timeout, returns=Pong)
        return pong

    async def introspect(self, *, timeout: float = 5.0) -> ActorInfo:  # noqa: ASYNC109
        """Ask the actor what it is and what it is doing: role, pid, host, start time
        and its figures (see :class:`~actorq.wire.messages.ActorInfo`)."""
        info: ActorInfo = await self.ask(Introspect(), timeout=timeout, returns=ActorInfo)
        return info


def ref(
    name: str,
    *,
    conn: Connection,
    namespace: str = DEFAULT_NAMESPACE,
    actor: type[Actor] | None = None,
    mailbox: MailboxKind | None = None,
) -> ActorRef:
    """A reference to the actor ``name`` over ``conn`` (see :class:`ActorRef`).

    Example::

        async with actorq.nats.open_nats(url) as nc:
            await actorq.ref("greeter", conn=nc).send(Greet("ada"))
    """
    return ActorRef(name, conn=conn, namespace=namespace, actor=actor, mailbox=mailbox)
