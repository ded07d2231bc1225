"""The runtime's own processes speak the actor protocol too.

Every queue, result and scheduler actor process serves a small :class:`RuntimeProbe`
actor on its own connection, so ``ref("_results").ping()`` or
``ref("_queue-emails").introspect()`` reach the runtime the way they reach any user
actor: one way for the CLI and a dashboard to ask anything that runs.

The probes run beside the hot loops, never in them: a ping costs a message on the
connection's actor link, nothing on the job path.

Names (one per role; the processes of a role share it, so an ask reaches one of them):

=====================  ==================================
``_results``           the result actors
``_scheduler``         the scheduler actors
``_queue-<queue>``     the queue actors of ``<queue>``
=====================  ==================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from actorq.actors.actor import Actor
from actorq.actors.host import serve_actor
from actorq.nats.connection import Connection

__all__ = ["RESULTS_PROBE", "SCHEDULER_PROBE", "RuntimeProbe", "queue_probe", "serve_probe"]

#: The probe name of the result actors.
RESULTS_PROBE = "_results"
#: The probe name of the scheduler actors.
SCHEDULER_PROBE = "_scheduler"

Stats = Callable[[], dict[str, Any]]


def queue_probe(queue: str) -> str:
    """The probe name of ``queue``'s actors."""
    return f"_queue-{queue}"


class RuntimeProbe(Actor):
    """Answers ping and introspect for a runtime process; ``stats()`` is the role's."""

    def __init__(self, role: str, stats: Stats) -> None:
        self.role = role
        self._stats = stats

    def stats(self) -> dict[str, int | float | str | bool | None]:
        """The role's figures, reduced to the scalars :class:`ActorInfo` carries."""
        return {k: v for k, v in self._stats().items() if _scalar(v)}


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, int | float | str | bool)


async def serve_probe(
    conn: Connection,
    namespace: str,
    name: str,
    role: str,
    stats: Stats,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the probe ``name`` on ``conn`` until cancelled (ready once subscribed)."""
    await serve_actor(
        conn, RuntimeProbe, name, namespace=namespace, kwargs={"role": role, "stats": stats},
        task_status=task_status,
    )  # fmt: skip
