"""Payload codecs: how a job's function, arguments and result become bytes.

A :class:`Codec` turns a call ``(func, args, kwargs)`` into the ``payload`` of a
:class:`~actorq.wire.messages.JobEnvelope` and back, and a job's return value into the
``result`` of a :class:`~actorq.wire.messages.JobOutcome` and back. Two are built in:

========  ====================================================================
``pickle``  :class:`PickleCodec` (default): cloudpickle, so lambdas, closures and
            any picklable argument work. Unpickling runs code: only ever decode
            payloads from publishers you trust, i.e. sign them.
``safe``    :class:`SafeCodec`: the function travels as its import path
            (``"pkg.mod:qualname"``) and the arguments as msgpack data, so decoding
            never runs code beyond importing the module. Restrict which modules may
            be imported with ``allow=("myapp.",)`` at any untrusted boundary.
========  ====================================================================

Signing: give a codec a ``signing_key`` (bytes, or a :class:`Signer`) and every payload
it encodes can be signed with HMAC-SHA256 (``sign_call`` / ``sign_result``), and every
payload it decodes must carry a valid signature. The signature is checked *before* a
single byte is unpickled or imported, so a worker never runs what an unauthenticated
publisher wrote; a missing or wrong signature raises :class:`SignatureError`.

Typical use, sender then worker::

    codec = get_codec("pickle", signing_key=key)
    payload = codec.encode_call(send_mail, ("ann@example.com",), {"subject": "hi"})
    envelope = JobEnvelope(..., codec=codec.name, payload=payload,
                           signature=codec.sign_call(payload))

    func, args, kwargs = get_codec(envelope.codec, signing_key=key).decode_call(
        envelope.payload, envelope.signature)
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib
import pickle
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Protocol

import cloudpickle
import msgspec

from actorq.exceptions import CodecError, SignatureError

__all__ = [
    "Call",
    "Codec",
    "PickleCodec",
    "SafeCodec",
    "Signer",
    "as_signer",
    "codec_names",
    "function_path",
    "get_codec",
    "register_codec",
]

#: A decoded call: the function and the arguments to call it with.
Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def function_path(func: Callable[..., Any]) -> str:
    """The display name ``"pkg.module:qualname"`` of a callable (for logs and envelopes).

    Partials show the function they wrap; callable objects show their class.
    """
    while isinstance(func, functools.partial):
        func = func.func
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if module is None or qualname is None:
        module, qualname = type(func).__module__, type(func).__qualname__
    return f"{module}:{qualname}"


# -- signing ---------------------------------------------------------------------------


class Signer:
    """HMAC-SHA256 signatures over payloads with a shared secret.

    ``previous`` secrets are still accepted by :meth:`verify` (never used to sign), so a
    key can be rotated without refusing jobs already in flight: deploy the new key with
    the old one as ``previous`` everywhere, then drop the old one.

    ``context`` binds a signature to its use (the codecs pass e.g. ``b"pickle:call"``),
    so a signed result can never be replayed as a signed call.
    """

    __slots__ = ("_bases", "_keys")

    #: Length in bytes of every signature.
    digest_size: Final = hashlib.sha256().digest_size

    def __init__(self, secret: bytes, *, previous: Sequence[bytes] = ()) -> None:
        for key in (secret, *previous):
            if not isinstance(key, bytes):
                raise TypeError(
                    f"a signing secret must be bytes, got {type(key).__name__}; "
                    "encode text secrets first, e.g. secret.encode()"
                )
            if not key:
                raise ValueError("a signing secret must not be empty; use e.g. 32 random bytes")
        self._keys = (secret, *previous)
        # HMAC state after key and context, per (key, context): copying it per message
        # skips the key schedule, a third of the cost of a small message's signature.
        self._bases: dict[tuple[int, bytes], Any] = {}

    def __repr__(self) -> str:
        # Never show the secret, even in a traceback's locals.
        return f"Signer(<{len(self._keys)} key(s)>)"

    def _mac(self, index: int, payload: bytes, context: bytes) -> bytes:
        base = self._bases.get((index, context))
        if base is None:
            # Length-prefix the context so (context, payload) pairs cannot collide.
            prefix = len(context).to_bytes(4, "big") + context
            base = self._bases[index, context] = hmac.new(self._keys[index], prefix, hashlib.sha256)
        mac = base.copy()
        mac.update(payload)
        digest: bytes = mac.digest()
        return digest

    def sign(self, payload: bytes, *, context: bytes = b"") -> bytes:
        """The signature of ``payload`` under the current secret."""
        return self._mac(0, payload, context)

    def verify(self, payload: bytes, signature: bytes | None, *, context: bytes = b"") -> None:
        """Return if ``signature`` is valid for ``payload``; raise :class:`SignatureError`.

        Comparison is constant-time (:func:`hmac.compare_digest`), and every key is tried
        so the time taken does not reveal which one matched.
        """
        if signature is None:
            raise SignatureError(
                "payload is not signed but a signing key is configured; "
                "the publisher must use the same signing key as this worker"
            )
        matched = False
        for index in range(len(self._keys)):
            matched |= hmac.compare_digest(self._mac(index, payload, context), signature)
        if not matched:
            raise SignatureError(
                "payload signature does not match; it was tampered with or signed with "
                "another key. Check that publisher and worker share the same signing key"
            )


def as_signer(signing_key: bytes | Signer | None) -> Signer | None:
    """``signing_key`` as a :class:`Signer` (bytes become one; ``None`` stays ``None``)."""
    if signing_key is None or isinstance(signing_key, Signer):
        return signing_key
    return Signer(signing_key)


# -- the protocol ----------------------------------------------------------------------


class Codec(Protocol):
    """What the runtime needs from a payload codec."""

    @property
    def name(self) -> str:
        """Registry name, stored in each envelope so the worker picks the same codec."""
        ...

    def encode_call(
        self, func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> bytes:
        """Encode a call; raise :class:`CodecError` naming what cannot be encoded."""
        ...

    def decode_call(self, data: bytes, signature: bytes | None = None) -> Call:
        """Verify (if signing) then decode a call; raise :class:`CodecError`."""
        ...

    def encode_result(self, value: Any) -> bytes:
        """Encode a job's return value; raise :class:`CodecError` if it cannot be."""
        ...

    def decode_result(self, data: bytes, signature: bytes | None = None) -> Any:
        """Verify (if signing) then decode a return value; raise :class:`CodecError`."""
        ...

    def sign_call(self, payload: bytes) -> bytes | None:
        """The signature for an encoded call, or ``None`` when this codec does not sign."""
        ...

    def sign_result(self, payload: bytes) -> bytes | None:
        """The signature for an encoded result, or ``None`` when this codec does not sign."""
        ...


#: Results up to this many bytes have their signatures remembered, up to this many.
_SMALL_RESULT = 16
_SMALL_RESULTS_KEPT = 256


class _SigningCodec:
    """Signing shared by the built-in codecs; subclasses set ``name``."""

    name: str = ""

    def __init__(self, *, signing_key: bytes | Signer | None = None) -> None:
        self.signer = as_signer(signing_key)
        # Signatures of small results seen before (None, True, 0, "ok"...): most jobs
        # return one of a few such values, and a lookup is far cheaper than an HMAC.
        self._small_results: dict[bytes, bytes] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(signed={self.signer is not None})"

    def _context(self, purpose: str) -> bytes:
        return f"actorq:{self.name}:{purpose}".encode()

    def _sign(self, payload: bytes, purpose: str) -> bytes | None:
        if self.signer is None:
            return None
        return self.signer.sign(payload, context=self._context(purpose))

    def _verify(self, payload: bytes, signature: bytes | None, purpose: str) -> None:
        # Without a key there is nothing to check against; a signature that comes
        # along anyway is ignored, as the envelope's other fields are.
        if self.signer is not None:
            self.signer.verify(payload, signature, context=self._context(purpose))

    def sign_call(self, payload: bytes) -> bytes | None:
        """The signature for an encoded call, or ``None`` when this codec does not sign."""
        return self._sign(payload, "call")

    def sign_result(self, payload: bytes) -> bytes | None:
        """The signature for an encoded result, or ``None`` when this codec does not sign."""
        if len(payload) > _SMALL_RESULT:
            return self._sign(payload, "result")
        signature = self._small_results.get(payload)
        if signature is None:
            signature = self._sign(payload, "result")
            if signature is not None and len(self._small_results) < _SMALL_RESULTS_KEPT:
                self._small_results[payload] = signature
        return signature


def _describe(value: Any) -> str:
    return f"a {type(value).__module__}.{type(value).__qualname__}".replace(" builtins.", " ")


def _first_failing(
    args: Sequence[Any], kwargs: Mapping[str, Any], fails: Callable[[Any], bool]
) -> str | None:
    """Name the first argument for which ``fails`` is true, for error messages."""
    for i, value in enumerate(args):
        if fails(value):
            return f"argument {i} ({_describe(value)})"
    for key, value in kwargs.items():
        if fails(value):
            return f"keyword argument {key!r} ({_describe(value)})"
    return None


#: Default for ``kwargs``: an empty mapping nobody can mutate.
_NO_KWARGS: Final[Mapping[str, Any]] = MappingProxyType({})


# -- pickle ----------------------------------------------------------------------------


_PLAIN_SCALARS = frozenset({type(None), bool, int, float, str, bytes})


class PickleCodec(_SigningCodec):
    """cloudpickle payloads: any function (lambdas, closures) and any picklable value.

    Decoding unpickles, and unpickling can run arbitrary code: give workers that read
    from anything but a trusted publisher a ``signing_key``.
    """

    name = "pickle"

    def encode_call(
        self,
        func: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> bytes:
        """cloudpickle ``(func, args, kwargs)``; name the part that cannot be pickled."""
        call = (func, tuple(args), dict(kwargs))
        try:
            data: bytes = cloudpickle.dumps(call)
        except Exception as exc:
            raise self._unpicklable(func, call[1], call[2], exc) from exc
        return data

    @staticmethod
    def _unpicklable(
        func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception
    ) -> CodecError:
        # Pickling the whole call failed; pickle each part alone to name the culprit.
        def fails(value: Any) -> bool:
            try:
                cloudpickle.dumps(value)
            except Exception:
                return True
            return False

        advice = (
            "pass something picklable instead (an id, a path, plain data) and open the "
            "resource inside the job"
        )
        if fails(func):
            what = f"the job function {function_path(func)}"
            advice = (
                "define it at module level, or make sure everything it closes over "
                "(locks, sockets, open files, clients) is picklable"
            )
        else:
            what = _first_failing(args, kwargs, fails) or "the call"
        return CodecError(f"cannot pickle {what}: {type(exc).__name__}: {exc}; {advice}")

    def decode_call(self, data: bytes, signature: bytes | None = None) -> Call:
        """Check the signature (when signing), then unpickle a call."""
        self._verify(data, signature, "call")
        call = self._loads(data, "job payload")
        if not (
            isinstance(call, tuple)
            and len(call) == 3
            and callable(call[0])
            and isinstance(call[1], tuple)
            and isinstance(call[2], dict)
        ):
            raise CodecError(
                f"job payload holds {_describe(call)}, not a (function, args, kwargs) "
                "tuple; it was not written by actorq's pickle codec"
            )
        return call

    def encode_result(self, value: Any) -> bytes:
        """cloudpickle a job's return value."""
        if type(value) in _PLAIN_SCALARS:
            # The stdlib pickler makes the same bytes for these, ~4x faster.
            return pickle.dumps(value, protocol=pickle.DEFAULT_PROTOCOL)
        try:
            data: bytes = cloudpickle.dumps(value)
        except Exception as exc:
            raise CodecError(
                f"cannot pickle the job's return value ({_describe(value)}): "
                f"{type(exc).__name__}: {exc}; return plain data instead"
            ) from exc
        return data

    def decode_result(self, data: bytes, signature: bytes | None = None) -> Any:
        """Check the signature (when signing), then unpickle a return value."""
        self._verify(data, signature, "result")
        return self._loads(data, "job result")

    @staticmethod
    def _loads(data: bytes, what: str) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise CodecError(
                f"cannot unpickle {what}: {type(exc).__name__}: {exc}; the worker needs "
                "the same modules (and versions) installed as the sender"
            ) from exc


# -- safe ------------------------------------------------------------------------------


class _SafeCall(msgspec.Struct, frozen=True, array_like=True):
    """Wire form of a call under the safe codec: ``[function, args, kwargs]``."""

    function: str
    args: list[Any]
    kwargs: dict[str, Any]


_SAFE_ENCODER: Final = msgspec.msgpack.Encoder()
_SAFE_CALL: Final = msgspec.msgpack.Decoder(_SafeCall)
_SAFE_VALUE: Final = msgspec.msgpack.Decoder()


class SafeCodec(_SigningCodec):
    """Functions by import path, arguments and results as msgpack data: no code in payloads.

    ``allow`` lists the packages or modules a decoded call may import, e.g.
    ``allow=("myapp.tasks", "billing")``; an entry allows that module and everything
    below it (a trailing ``"."`` is accepted: ``"myapp."`` means ``myapp`` and below).
    It is checked before anything is imported. With ``allow=None`` any importable
    function can be named, ``os:system`` included: set it at untrusted boundaries.

    Arguments must be msgspec-encodable (``None``, bool, int, float, str, bytes, lists,
    tuples, dicts, datetimes, UUIDs, Structs, dataclasses, ...). They arrive as their
    msgpack form: tuples as lists, Structs and dataclasses as dicts. Convert them in
    the job with :func:`msgspec.convert` if it needs the richer types back.
    """

    name = "safe"

    def __init__(
        self,
        allow: Sequence[str] | None = None,
        *,
        signing_key: bytes | Signer | None = None,
    ) -> None:
        super().__init__(signing_key=signing_key)
        if isinstance(allow, str):
            # A bare string would be read as a list of one-letter prefixes.
            allow = (allow,)
        self.allow = None if allow is None else tuple(p.rstrip(".") for p in allow)
        if self.allow is not None and not all(self.allow):
            raise ValueError("an allow-list entry is empty; name a package such as 'myapp'")

    def __repr__(self) -> str:
        return f"SafeCodec(allow={self.allow!r}, signed={self.signer is not None})"

    def _check_allowed(self, module: str) -> None:
        if self.allow is None:
            return
        if not any(module == p or module.startswith(p + ".") for p in self.allow):
            raise CodecError(
                f"module {module!r} is not in the safe codec's allow-list {list(self.allow)}; "
                "add its package to `allow` if its functions are meant to be jobs"
            )

    def encode_call(
        self,
        func: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] = _NO_KWARGS,
    ) -> bytes:
        """Encode ``func`` by import path and its arguments as msgpack."""
        path = self._import_path(func)
        self._check_allowed(path.partition(":")[0])
        try:
            return _SAFE_ENCODER.encode(_SafeCall(path, list(args), dict(kwargs)))
        except (TypeError, msgspec.EncodeError, OverflowError) as exc:
            culprit = _first_failing(args, kwargs, lambda v: not _encodable(v))
            raise CodecError(
                f"the safe codec cannot encode {culprit or 'the arguments'}: {exc}; pass plain "
                "data (str, int, float, bool, None, bytes, lists, dicts, Structs) or use "
                "the pickle codec"
            ) from exc

    @staticmethod
    def _import_path(func: Callable[..., Any]) -> str:
        """``"module:qualname"`` of ``func``, or :class:`CodecError` if a worker could not
        import the very same object by that path."""
        module = getattr(func, "__module__", None)
        qualname = getattr(func, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(qualname, str):
            raise CodecError(
                f"the safe codec sends functions by import path, and {_describe(func)} has "
                "none; pass a module-level function"
            )
        path = f"{module}:{qualname}"
        if "<lambda>" in qualname or "<locals>" in qualname:
            raise CodecError(
                f"the safe codec cannot send {path}: lambdas, closures and functions "
                "defined inside other functions cannot be imported by a worker; define it "
                "at module level, or use the pickle codec"
            )
        if module == "__main__":
            raise CodecError(
                f"the safe codec cannot send {path}: a worker's __main__ is not the "
                "sender's; move the function into an importable module"
            )
        try:
            found = _resolve(module, qualname)
        except CodecError as exc:
            raise CodecError(f"the safe codec cannot send {path}: {exc}") from exc
        # Bound methods compare equal (not identical) each time they are looked up.
        if found is not func and found != func:
            raise CodecError(
                f"the safe codec cannot send {path}: that path leads to a different object "
                "(a decorated or bound function?); pass the object importable at that path"
            )
        return path

    def decode_call(self, data: bytes, signature: bytes | None = None) -> Call:
        """Check the signature, then the allow-list, then import the function."""
        self._verify(data, signature, "call")
        try:
            call = _SAFE_CALL.decode(data)
        except msgspec.DecodeError as exc:
            raise CodecError(f"invalid safe-codec job payload: {exc}") from exc
        module, sep, qualname = call.function.partition(":")
        if not sep or not module or not qualname:
            raise CodecError(
                f"invalid safe-codec job payload: function {call.function!r} is not "
                "'module:qualname'"
            )
        self._check_allowed(module)
        func = _resolve(module, qualname)
        if not callable(func):
            raise CodecError(f"{call.function} is {_describe(func)}, which is not callable")
        return func, tuple(call.args), call.kwargs

    def encode_result(self, value: Any) -> bytes:
        """Encode a job's return value as msgpack."""
        try:
            return _SAFE_ENCODER.encode(value)
        except (TypeError, msgspec.EncodeError, OverflowError) as exc:
            raise CodecError(
                f"the safe codec cannot encode the job's return value ({_describe(value)}): "
                f"{exc}; return plain data, or use the pickle codec"
            ) from exc

    def decode_result(self, data: bytes, signature: bytes | None = None) -> Any:
        """Check the signature, then decode a return value from msgpack."""
        self._verify(data, signature, "result")
        try:
            return _SAFE_VALUE.decode(data)
        except msgspec.DecodeError as exc:
            raise CodecError(f"invalid safe-codec job result: {exc}") from exc


def _encodable(value: Any) -> bool:
    try:
        _SAFE_ENCODER.encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError):
        return False
    return True


def _resolve(module: str, qualname: str) -> Any:
    """Import ``module`` and walk ``qualname``; refuse dunder attributes on the way."""
    parts = qualname.split(".")
    # Dunders are how sandbox escapes walk from an allowed object to anything
    # (``x.__class__.__subclasses__``); a job function never needs one on its path.
    if any(not part.isidentifier() or part.startswith("__") for part in parts):
        raise CodecError(f"{module}:{qualname} is not a plain 'module:qualname' path")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise CodecError(
            f"cannot import module {module!r}: {exc}; install the job's code on the worker"
        ) from exc
    try:
        for part in parts:
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise CodecError(
            f"module {module!r} has no {qualname!r}; the worker may run an older version "
            "of the job's code"
        ) from exc
    return obj


# -- registry --------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., Codec]] = {
    PickleCodec.name: PickleCodec,
    SafeCodec.name: SafeCodec,
}


def register_codec(name: str, factory: Callable[..., Codec]) -> None:
    """Make ``get_codec(name, ...)`` build codecs with ``factory(**options)``."""
    _REGISTRY[name] = factory


def codec_names() -> list[str]:
    """The names :func:`get_codec` knows, sorted."""
    return sorted(_REGISTRY)


def get_codec(name: str, *, signing_key: bytes | Signer | None = None, **options: Any) -> Codec:
    """Build the codec registered as ``name`` (``"pickle"`` or ``"safe"``).

    ``options`` go to its constructor, e.g. ``get_codec("safe", allow=["myapp"])``.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise CodecError(f"unknown codec {name!r}; choose one of {codec_names()}") from None
    try:
        return factory(signing_key=signing_key, **options)
    except TypeError as exc:
        raise CodecError(f"invalid options for codec {name!r}: {exc}") from exc
