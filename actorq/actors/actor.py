"""User actors: subclass :class:`Actor`, mark typed handlers with :func:`handler`.

A message type is a ``msgspec.Struct`` declared with ``tag=True``: on the wire a
message is its struct encoded as msgpack, and the tag (the class name by default) is
how the receiving actor picks the handler. Two classes with the same name in different
modules are the same message type to actors; give one ``tag="..."`` to tell them
apart. A handler returns anything msgspec can encode (a Struct, a dict, a number,
``None``); that is the reply to an ``ask``.

Example::

    class Greet(msgspec.Struct, tag=True):
        name: str

    class Greeter(actorq.Actor):
        async def on_start(self) -> None:
            self.greeted = 0

        @actorq.handler
        async def greet(self, msg: Greet) -> str:
            self.greeted += 1
            return f"hello {msg.name}"

    async with actorq.open_actor_supervisor(url) as sup:
        ref = await sup.spawn(Greeter, name="greeter")
        assert await ref.ask(Greet("ada")) == "hello ada"

Handlers are Trio coroutines and run one at a time, in arrival order: an actor's own
state needs no locks. The wire format of replies is in :func:`encode_reply`.
"""

from __future__ import annotations

import inspect
import os
import socket
import time
import traceback as _traceback
import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Union

import msgspec

from actorq.exceptions import ActorDefinitionError, RemoteError, UnhandledMessage
from actorq.wire.messages import ActorInfo, Introspect, Ping, Pong

if TYPE_CHECKING:
    from actorq.actors.refs import ActorRef
    from actorq.nats.connection import Connection

__all__ = ["Actor", "DispatchTable", "dispatch_table", "handler"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_encoder = msgspec.msgpack.Encoder()
_decode_reply = msgspec.msgpack.Decoder(tuple[int, msgspec.Raw]).decode
_REPLY_OK = 0
_REPLY_ERROR = 1
_REPLY_UNHANDLED = 2
_HOST = socket.gethostname()


def handler(fn: F) -> F:
    """Mark an ``async def name(self, msg: SomeMessage) -> Reply`` method as a handler.

    The annotation of ``msg`` (a ``msgspec.Struct`` with ``tag=True``) says which
    messages it handles; one handler per message type.
    """
    if not inspect.iscoroutinefunction(fn):
        raise ActorDefinitionError(f"@handler {fn.__qualname__} must be an `async def` method")
    fn.__actorq_handler__ = True  # type: ignore[attr-defined]
    return fn  # type: ignore[return-value]


class Actor:
    """Base class of user actors. Subclass it; spawn it with ``sup.spawn(Cls, name=...)``.

    Set up state in ``__init__`` (its arguments are the ``spawn`` arguments) or in
    :meth:`on_start`. While running, ``self.name``, ``self.namespace`` and
    ``self.conn`` are set, and :meth:`ref` reaches any actor by name.
    """

    name: str = ""
    namespace: str = ""
    conn: Connection
    #: What :class:`~actorq.wire.messages.ActorInfo` calls this kind of actor.
    role: str = "actor"
    #: Unix time the actor started (set before :meth:`on_start`).
    started_at: float = 0.0
    _dispatch: ClassVar[DispatchTable | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = None  # each class builds (and caches) its own table

    async def on_start(self) -> None:
        """Called before the first message; an exception here fails the start."""

    async def on_stop(self) -> None:
        """Called once when the actor stops for any reason (bounded to 5 s, shielded)."""

    def stats(self) -> dict[str, int | float | str | bool | None]:
        """Figures this actor reports when introspected (``ref.introspect()``,
        ``actorq actors``); override it to add your own. Keep it cheap and non-blocking."""
        return {}

    # The actor protocol: every actor answers these (see actorq.wire.messages).

    @handler
    async def _actorq_ping(self, msg: Ping) -> Pong:
        return Pong(name=self.name, pid=os.getpid(), host=_HOST)

    @handler
    async def _actorq_introspect(self, msg: Introspect) -> ActorInfo:
        return ActorInfo(
            name=self.name, role=self.role, pid=os.getpid(), host=_HOST,
            started_at=self.started_at or time.time(), stats=self.stats(),
        )  # fmt: skip

    def ref(self, name: str, *, namespace: str | None = None) -> ActorRef:
        """A reference to the actor ``name`` (same namespace by default), on this
        actor's own connection::

            await self.ref("audit").send(Audited(self.name))
        """
        from actorq.actors.refs import ActorRef

        key = (name, namespace or self.namespace)
        cache: dict[tuple[str, str], ActorRef] = self.__dict__.setdefault("_refs", {})
        found = cache.get(key)
        if found is None:
            # Cached: a ref learns its mailbox kind once, with a request.
            found = cache[key] = ActorRef(name, conn=self.conn, namespace=key[1])
        return found


class DispatchTable:
    """Message type -> handler of one actor class, and the decoder of its messages."""

    def __init__(self, cls: type[Actor], handlers: dict[type, Callable[..., Awaitable[Any]]],
                 returns: dict[type, Any]) -> None:  # fmt: skip
        self.cls = cls
        self.handlers = handlers
        self.returns = returns
        types = tuple(handlers)
        self.decoder: msgspec.msgpack.Decoder[Any] | None = None
        if types:
            union = types[0] if len(types) == 1 else Union[types]  # noqa: UP007
            self.decoder = msgspec.msgpack.Decoder(union)
        self.tags = {_tag_of(t): t for t in types}

    def decode(self, data: bytes) -> Any:
        """Decode a message; raises :class:`UnhandledMessage` for a type it has no handler for."""
        if self.decoder is None:
            text = f"{self.cls.__name__} has no handlers"
            raise UnhandledMessage("", "UnhandledMessage", text, "")
        try:
            return self.decoder.decode(data)
        except msgspec.ValidationError as exc:
            tag = _peek_tag(data)
            known = ", ".join(sorted(self.tags)) or "none"
            if tag is not None and tag not in self.tags:
                text = (f"{self.cls.__name__} has no handler for message type {tag!r} "
                        f"(it handles: {known})")  # fmt: skip
            else:
                text = f"{self.cls.__name__} could not decode a message: {exc}"
            raise UnhandledMessage("", "UnhandledMessage", text, "") from exc
        except msgspec.DecodeError as exc:
            text = f"{self.cls.__name__} got bytes that are not a msgpack message: {exc}"
            raise UnhandledMessage("", "UnhandledMessage", text, "") from exc


def _tag_of(tp: type) -> str:
    tag = tp.__struct_config__.tag  # type: ignore[attr-defined]
    return str(tag)


def _peek_tag(data: bytes) -> str | None:
    try:
        value = msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        return None
    if isinstance(value, dict):
        tag = value.get("type")
        return str(tag) if tag is not None else None
    return None


def dispatch_table(cls: type[Actor]) -> DispatchTable:
    """Build (once per class) and return ``cls``'s dispatch table.

    Raises :class:`ActorDefinitionError` naming the method and what to change when a
    handler's message type is missing, not a tagged ``msgspec.Struct``, or handled twice.
    """
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise ActorDefinitionError(f"{cls!r} is not a subclass of actorq.Actor")
    cached = cls.__dict__.get("_dispatch")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    handlers: dict[type, Callable[..., Awaitable[Any]]] = {}
    returns: dict[type, Any] = {}
    for attr in dir(cls):
        fn = getattr(cls, attr, None)
        if fn is None or not getattr(fn, "__actorq_handler__", False):
            continue
        where = f"{cls.__name__}.{attr}"
        try:
            hints = typing.get_type_hints(fn)
        except Exception as exc:
            raise ActorDefinitionError(
                f"{where}: cannot resolve its annotations ({exc}); import the message "
                "types at module level"
            ) from exc
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
        if len(params) != 1 or params[0].name not in hints:
            raise ActorDefinitionError(
                f"{where}: a handler takes exactly one annotated argument, the message: "
                f"`async def {attr}(self, msg: MyMessage) -> Reply`"
            )
        tp = hints[params[0].name]
        if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
            raise ActorDefinitionError(
                f"{where}: handles {tp!r}, which is not a msgspec.Struct; declare "
                "`class MyMessage(msgspec.Struct, tag=True)`"
            )
        if tp.__struct_config__.tag is None:
            raise ActorDefinitionError(
                f"{where}: message type {tp.__name__} has no tag, so actors cannot tell it "
                f"from other messages; declare it `class {tp.__name__}(msgspec.Struct, tag=True)`"
            )
        if tp in handlers:
            raise ActorDefinitionError(
                f"{where}: {tp.__name__} already has a handler ({handlers[tp].__name__}); keep one"
            )
        handlers[tp] = fn
        returns[tp] = hints.get("return", Any)
    table = DispatchTable(cls, handlers, returns)
    cls._dispatch = table
    return table


# -- the wire format ------------------------------------------------------------------


def encode_message(msg: object) -> bytes:
    """A message as sent to an actor: its msgpack encoding (tag included)."""
    if not isinstance(msg, msgspec.Struct) or type(msg).__struct_config__.tag is None:
        raise TypeError(
            f"{type(msg).__name__} cannot be sent to an actor: messages are "
            "`msgspec.Struct` classes declared with tag=True"
        )
    return _encoder.encode(msg)


def encode_reply(value: object) -> bytes:
    """A reply: msgpack ``[0, value]``; errors are ``[1, [type, message, traceback]]``
    and ``[2, [...]]`` for a message the actor has no handler for."""
    try:
        return _encoder.encode((_REPLY_OK, value))
    except (TypeError, msgspec.EncodeError) as exc:
        return encode_error(TypeError(f"the handler's reply cannot be encoded: {exc}"))


def encode_error(exc: BaseException) -> bytes:
    """The error reply for an exception raised by a handler."""
    if isinstance(exc, UnhandledMessage):
        return _encoder.encode((_REPLY_UNHANDLED, (exc.exc_type, exc.exc_message, "")))
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    text = "".join(_traceback.format_exception(exc))
    return _encoder.encode((_REPLY_ERROR, (name, str(exc), text)))


def decode_reply(actor: str, data: bytes, returns: Any) -> Any:
    """The value of a reply, decoded as ``returns``; raises the remote error it carries."""
    status, raw = _decode_reply(data)
    if status == _REPLY_OK:
        if returns is None or returns is Any:
            return msgspec.msgpack.decode(raw)
        return msgspec.msgpack.decode(raw, type=returns)
    exc_type, exc_message, tb = msgspec.msgpack.decode(raw, type=tuple[str, str, str])
    cls = UnhandledMessage if status == _REPLY_UNHANDLED else RemoteError
    raise cls(actor, exc_type, exc_message, tb)
