"""The subtree of a supervisor as data, for ``actorq ps`` and friends.

A snapshot is a tree of frozen :class:`msgspec.Struct` values: encode it with
``msgspec.json.encode(sup.snapshot())`` and decode it elsewhere with
``msgspec.json.decode(data, type=ChildSnapshot)``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .events import ChildKind, ExitReason

__all__ = ["ChildSnapshot", "ChildState", "SupervisorState"]

ChildState = Literal["starting", "running", "stopping", "restarting", "stopped", "failed"]
"""Where a child is in its life:

- ``starting``: started, not yet ready;
- ``running``: ready;
- ``stopping``: its supervisor is stopping it;
- ``restarting``: stopped and waiting for its restart (backoff, or a sibling's stop);
- ``stopped``: not running and not going to be restarted (``restart_child`` starts it);
- ``failed``: stopped abnormally and not restarted (or its supervisor gave up).
"""

SupervisorState = ChildState
"""A supervisor moves through the same states as a child."""


class ChildSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One node of a supervision tree at one instant.

    ``pid`` is the OS process id for a process child and for a supervisor (its own
    process), ``None`` for a task or a child that is not running. ``started_at`` is the
    Unix time of the current run's readiness (``None`` if not running). ``restarts``
    counts restarts by the supervisor or by ``restart_child``. ``children`` is filled
    for supervisors only, in start order. ``standby_pids`` (supervisors only) are the
    parked warm standbys of its ``standby=True`` process children: started, not
    running anything, not children.
    """

    id: str
    kind: ChildKind
    pid: int | None
    state: ChildState
    restarts: int = 0
    started_at: float | None = None
    last_exit: ExitReason | None = None
    children: tuple[ChildSnapshot, ...] = ()
    standby_pids: tuple[int, ...] = ()

    def find(self, path: str) -> ChildSnapshot:
        """Return the descendant at ``"a/b/c"`` (relative to this node); KeyError if absent."""
        node = self
        for part in path.split("/"):
            for child in node.children:
                if child.id == part:
                    node = child
                    break
            else:
                raise KeyError(f"no child {part!r} under {node.id!r}")
        return node

    def walk(self) -> list[ChildSnapshot]:
        """This node and all its descendants, depth first, in start order."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes
