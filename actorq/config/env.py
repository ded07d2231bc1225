"""``ACTORQ_*`` environment variables that override keys of the config file.

The name after the prefix is the key path in upper case with ``_`` between parts:
``ACTORQ_NAMESPACE``, ``ACTORQ_NATS_URL``, ``ACTORQ_LOGGING_LEVEL``,
``ACTORQ_QUEUES_0_CONCURRENCY`` (an element of ``[[queues]]`` by its index in the
file). Keys themselves hold ``_`` (``data_dir``), so a name is matched against the
schema, longest key first, rather than split blindly.

Values stay text here; the caller converts them with msgspec's lax mode, which turns
``"4222"`` into ``4222`` and ``"true"`` into ``True`` for the key's type.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from actorq.config.locate import KeyPath

__all__ = ["ENV_PREFIX", "OverrideError", "env_overrides", "field_types", "show", "struct_of"]

#: Environment variables that override config keys start with this.
ENV_PREFIX = "ACTORQ_"


class OverrideError(ValueError):
    """An override cannot be applied: ``var`` set ``path``, and ``problem`` says why."""

    def __init__(self, var: str, path: KeyPath, problem: str) -> None:
        self.var = var
        self.path = path
        self.problem = problem
        super().__init__(f"{var}: {show(path)}: {problem}")


def show(path: KeyPath) -> str:
    """``("queues", 1, "name")`` as the user reads it: ``queues[1].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def field_types(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """Encoded key name -> type of every field of ``struct``."""
    return {f.encode_name: f.type for f in msgspec.structs.fields(struct)}


def struct_of(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct a field holds, directly or as ``list[Struct]``."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return struct_of(item)
    return None


def env_overrides(
    data: dict[str, Any], environ: Mapping[str, str], root: type[msgspec.Struct]
) -> dict[KeyPath, str]:
    """Apply the ``ACTORQ_*`` variables of ``environ`` to decoded TOML ``data``, in place.

    ``root`` is the schema. Lists are comma-separated; an empty value clears a key that
    may be empty (``ACTORQ_NATS_URL=`` means the embedded server). Variables that name
    no key are ignored, since ``ACTORQ_`` also prefixes settings that are not keys
    (``ACTORQ_NATS_SERVER``, a signing key). Returns the key paths set, each with the
    variable that set it; raises :class:`OverrideError` for an element the file lacks.
    """
    applied: dict[KeyPath, str] = {}
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX):
            continue
        target = _target(root, var[len(ENV_PREFIX) :].lower())
        if target is None:
            continue
        path, tp = target
        _set(data, path, _value(environ[var], tp), tp, var)
        applied[path] = var
    return applied


def _target(struct: type[msgspec.Struct], rest: str) -> tuple[KeyPath, Any] | None:
    fields = field_types(struct)
    # Longest key first, so ``nats_data_dir`` is never read as ``nats`` + ``data_dir``
    # of something shorter.
    for key in sorted(fields, key=len, reverse=True):
        tp = fields[key]
        name = key.lower()
        if rest == name:
            return (key,), tp
        inner = struct_of(tp)
        if inner is None or not rest.startswith(name + "_"):
            continue
        tail = rest[len(name) + 1 :]
        prefix: KeyPath = (key,)
        if typing.get_origin(tp) is list:
            index, _, tail = tail.partition("_")
            if not index.isdigit():
                continue
            prefix = (key, int(index))
        found = _target(inner, tail)
        if found is not None:
            return (*prefix, *found[0]), found[1]
    return None


def _value(raw: str, tp: Any) -> Any:
    if raw == "":
        return None
    if _accepts(tp, list) and ("," in raw or not _accepts(tp, str)):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _members(tp: Any) -> tuple[Any, ...]:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(m for arg in typing.get_args(tp) for m in _members(arg))
    return (tp,)


def _accepts(tp: Any, kind: type) -> bool:
    return any(m is kind or typing.get_origin(m) is kind for m in _members(tp))


def _set(data: dict[str, Any], path: KeyPath, value: Any, tp: Any, var: str) -> None:
    node: Any = data
    for i, part in enumerate(path[:-1]):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise OverrideError(
                    var, path[: i + 1], "the file has no such element; add it there first"
                )
            node = node[part]
        else:
            node = node.setdefault(part, [] if isinstance(path[i + 1], int) else {})
    last = path[-1]
    if value is None and not _accepts(tp, type(None)):
        node.pop(last, None)  # back to the default: this key cannot be empty
    else:
        node[last] = value
