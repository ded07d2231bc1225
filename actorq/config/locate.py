"""Find the line of a key in TOML text, for error messages that say where to look.

:mod:`tomllib` returns plain dicts with no positions, and msgspec's validation errors
name a path (``$.queues[1].concurency``) but no line. This module scans the text once,
line by line, and records where every key and table header sits, as paths of the same
shape: ``("queues", 1, "concurency")``.

It understands what config files use: ``[table]`` and ``[[array.of.tables]]`` headers
(bare, quoted and dotted names), ``key = value`` lines with dotted or quoted keys, and
values that span lines (arrays, inline tables, multi-line strings), whose inner lines
it skips. It is not a TOML parser: the text has already been parsed by :mod:`tomllib`,
so it only has to be right about valid TOML.

Example::

    >>> text = "[[queues]]\\nname = 'a'\\n[[queues]]\\nname = 'b'\\nconcurency = 2\\n"
    >>> locate(text, "$.queues[1].concurency")
    5
"""

from __future__ import annotations

import re

__all__ = ["KeyPath", "key_lines", "locate", "parse_path"]

#: A path into the decoded document: table keys and array indices.
KeyPath = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_PATH_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[(['\"])(.*?)\3\]")


def parse_path(path: str) -> KeyPath:
    """Turn msgspec's ``$.a[0].b`` (or ``$['odd key']``) into ``("a", 0, "b")``."""
    if not path.startswith("$"):
        raise ValueError(f"not a msgspec path: {path!r}")
    parts: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _PATH_PART.match(path, pos)
        if match is None:
            raise ValueError(f"cannot read the path {path!r} at {path[pos:]!r}")
        name, index, _, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(quoted)
        pos = match.end()
    return tuple(parts)


def _read_key(text: str, pos: int) -> tuple[list[str], int]:
    """Read a (dotted) key starting at ``pos``; return its parts and the end position."""
    parts: list[str] = []
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] in "\"'":
            quote = text[pos]
            end = pos + 1
            while end < len(text) and text[end] != quote:
                end += 2 if quote == '"' and text[end] == "\\" else 1
            raw = text[pos + 1 : end]
            # Basic strings may hold escapes; keys with escapes are rare enough that
            # decoding the common ones is all a locator needs.
            parts.append(raw.encode().decode("unicode_escape") if quote == '"' else raw)
            pos = end + 1
        else:
            match = _BARE.match(text, pos)
            if match is None:
                return parts, pos
            parts.append(match.group())
            pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return parts, pos


def _value_state(value: str, depth: int, in_multiline: str | None) -> tuple[int, str | None]:
    """Follow brackets and multi-line strings through one line of a value.

    Returns the bracket depth and the open multi-line string delimiter (if any) at
    the end of the line, so the scanner knows whether the next line is still inside
    this value.
    """
    i = 0
    while i < len(value):
        if in_multiline is not None:
            end = value.find(in_multiline, i)
            if end < 0:
                return depth, in_multiline
            i = end + 3
            in_multiline = None
            continue
        ch = value[i]
        if value.startswith('"""', i) or value.startswith("'''", i):
            in_multiline = value[i : i + 3]
            i += 3
        elif ch in "\"'":
            i += 1
            while i < len(value) and value[i] != ch:
                i += 2 if ch == '"' and value[i] == "\\" else 1
            i += 1
        elif ch == "#":
            break
        else:
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            i += 1
    return depth, in_multiline


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key and table header in ``text`` to its 1-based line number."""
    lines: dict[KeyPath, int] = {}
    arrays: dict[tuple[str, ...], int] = {}  # array-of-tables name -> elements so far
    table: KeyPath = ()
    depth = 0
    multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if depth > 0 or multiline is not None:
            depth, multiline = _value_state(line, depth, multiline)
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            is_array = stripped.startswith("[[")
            names, _ = _read_key(stripped, 2 if is_array else 1)
            table = _resolve(names, arrays, append=is_array)
            lines.setdefault(table, number)
            if is_array:
                lines.setdefault(table[:-1], number)  # the array itself: its first element
            continue
        names, pos = _read_key(line, 0)
        if not names or pos >= len(line) or line[pos] != "=":
            continue
        path = table + tuple(names)
        lines.setdefault(path, number)
        depth, multiline = _value_state(line[pos + 1 :], 0, None)
    return lines


def _resolve(names: list[str], arrays: dict[tuple[str, ...], int], *, append: bool) -> KeyPath:
    """The indexed path of a header; ``[[x]]`` starts a new element of array ``x``."""
    path: list[str | int] = []
    for i, name in enumerate(names):
        path.append(name)
        plain = tuple(names[: i + 1])
        last = i == len(names) - 1
        if last and append:
            arrays[plain] = arrays.get(plain, 0) + 1
        if plain in arrays:
            path.append(arrays[plain] - 1)
    return tuple(path)


def locate(text: str, path: str | KeyPath) -> int | None:
    """The line of ``path`` in ``text``, or of its nearest enclosing key; ``None`` if
    not even the first part is there (a missing top-level key, for instance)."""
    parts = parse_path(path) if isinstance(path, str) else path
    table = key_lines(text)
    for end in range(len(parts), 0, -1):
        line = table.get(parts[:end])
        if line is not None:
            return line
    return None
