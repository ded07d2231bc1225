"""The dashboard's view of the heartbeat bucket: every process report and supervision
tree, kept current by one watch (push), so no page and no live update reads the
bucket itself (see :mod:`actorq.process.heartbeat` for what is published there)."""

from __future__ import annotations

import logging
import time

import msgspec
import trio

from actorq.nats.connection import Connection
from actorq.nats.provisioning import KvSpec, ensure_kv
from actorq.process.heartbeat import TTL, ProcReport, is_tree_key, procs_bucket
from supervisors import ChildSnapshot

__all__ = ["ProcessIndex"]

log = logging.getLogger("actorq.dashboard")


class ProcessIndex:
    """Reports and trees by key, from a watch of ``<ns>_procs``."""

    def __init__(self) -> None:
        self._reports: dict[str, ProcReport] = {}
        self._trees: dict[str, ChildSnapshot] = {}
        #: Set once the watch delivered what the bucket held when it began.
        self.ready = trio.Event()

    def apply(self, key: str, value: bytes | None) -> None:
        """Take one change of the bucket: a report or tree stored (``value``) or gone."""
        if value is None:
            self._reports.pop(key, None)
            self._trees.pop(key, None)
            return
        try:
            if is_tree_key(key):
                self._trees[key] = msgspec.json.decode(value, type=ChildSnapshot)
            else:
                self._reports[key] = msgspec.json.decode(value, type=ProcReport)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("heartbeat entry %s cannot be decoded; not shown", key)

    def reports(self) -> list[ProcReport]:
        """Every report younger than the bucket's TTL (older ones expired there)."""
        cutoff = time.time() - TTL
        return [r for r in self._reports.values() if r.at >= cutoff]

    def trees(self) -> list[ChildSnapshot]:
        """Every published supervision tree."""
        return list(self._trees.values())

    async def serve(
        self,
        conn: Connection,
        namespace: str,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Watch the heartbeat bucket until cancelled (made, as the publishers make it,
        when no process reported yet); started once the watch is open."""
        kv = await ensure_kv(conn, KvSpec(bucket=procs_bucket(namespace), ttl=TTL))
        async with kv.watch(">") as updates:
            task_status.started()
            async for entry in updates:
                if entry is None:
                    self.ready.set()
                    continue
                self.apply(entry.key, entry.value if entry.operation == "PUT" else None)
