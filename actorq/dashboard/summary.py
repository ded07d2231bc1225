"""Bounded, payload-safe summaries of job arguments and results for the dashboard.

Nothing here unpickles: a pickled payload is only *parsed* (:func:`pickletools.genops`
walks its opcodes without running any), and the plain literals it holds (strings,
numbers) are listed. A ``safe`` codec payload is msgpack data, decoded to plain values.
Either way the summary is cut to :data:`LIMIT` characters; escaping is the renderer's
job (the pages set text, never HTML). Signatures, keys and raw bytes are never shown.
"""

from __future__ import annotations

import pickletools
from typing import Any

import msgspec

__all__ = ["LIMIT", "summarize"]

#: The longest summary, in characters.
LIMIT = 300
#: Only this much of a pickle is parsed.
_SCAN = 64 * 1024
_LITERAL_OPS = frozenset(
    {
        "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING",
        "BINSTRING", "SHORT_BINSTRING", "BININT", "BININT1", "BININT2", "INT", "LONG",
        "LONG1", "BINFLOAT", "FLOAT",
    }
)  # fmt: skip


def _cut(text: str, limit: int = LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pickle_literals(data: bytes) -> list[Any]:
    """The literal values of a pickle, in order; the module and name strings that
    import a global (a function reference) are left out."""
    found: list[Any] = []
    try:
        for opcode, arg, _pos in pickletools.genops(data[:_SCAN]):
            name = opcode.name
            if name == "STACK_GLOBAL":
                del found[-2:]  # module and qualified name of the global
            elif name in _LITERAL_OPS and arg is not None:
                found.append(arg)
            if len(found) > 64:
                break
    except Exception:  # a cut or malformed pickle: keep what was read
        pass
    return found


def summarize(codec: str, data: bytes | None, *, call: bool = True) -> str:
    """A one-line, bounded summary of a payload (``call``: a job's arguments, else a
    result), safe to show: it never runs code from the payload."""
    if data is None:
        return ""
    if codec == "safe":
        try:
            value = msgspec.msgpack.decode(data)
        except msgspec.DecodeError:
            return f"({len(data)} bytes, not decodable)"
        if call and isinstance(value, list | tuple) and len(value) == 3:
            _fn, args, kwargs = value
            parts = [repr(a) for a in args or ()]
            parts += [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
            return _cut("(" + ", ".join(parts) + ")")
        return _cut(repr(value))
    literals = _pickle_literals(data)
    shown = ", ".join(repr(v) for v in literals)
    return _cut(f"{codec}, {len(data)} bytes; literals: {shown or 'none'}")
