"""The entry points of the runtime's own processes: queue, result and scheduler actors.

A supervisor starts each in a fresh interpreter
(``python -m supervisors.child_runtime actorq.runtime.children:queue_actor SETTINGS_JSON``;
``actorq up`` wraps that in :mod:`actorq.runtime.child` first). Each runs its actor
(:mod:`actorq.jobs`) until SIGTERM/SIGINT, and beside it, on the same connection, the
:class:`~actorq.runtime.probes.RuntimeProbe` that answers the actor protocol for it.
"""

from __future__ import annotations

import functools
import importlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import trio

from actorq.jobs.queue_actor import QueueActor, QueueActorSettings, serve_queue_actor
from actorq.jobs.result_actor import ResultActor, ResultActorSettings, serve_result_actor
from actorq.jobs.scheduler_actor import SchedulerActor, SchedulerSettings, serve_scheduler_actor
from actorq.nats.connection import Connection
from actorq.process.entry import default_logging, run_until_signalled
from actorq.process.heartbeat import queue_stats
from actorq.runtime.probes import RESULTS_PROBE, SCHEDULER_PROBE, queue_probe, serve_probe
from supervisors import on_standby

__all__ = [
    "QUEUE_TARGET",
    "RESULTS_TARGET",
    "SCHEDULER_TARGET",
    "queue_actor",
    "result_actor",
    "scheduler",
]

log = logging.getLogger("actorq.runtime")
queue_log = logging.getLogger("actorq.queue")

#: The supervisor targets of the three roles.
QUEUE_TARGET = "actorq.runtime.children:queue_actor"
RESULTS_TARGET = "actorq.runtime.children:result_actor"
SCHEDULER_TARGET = "actorq.runtime.children:scheduler"

A = TypeVar("A")


def _probe(
    namespace: str, name: str, role: str, stats: Callable[[A], dict[str, Any]]
) -> Callable[[Connection, A], Awaitable[None]]:
    """What a role's serve function runs beside it: its probe actor. A probe that
    cannot start (say, a least-privilege user may not subscribe to actor subjects)
    is logged and left out; the role's real work goes on."""

    async def run(conn: Connection, actor: A) -> None:
        try:
            await serve_probe(conn, namespace, name, role, lambda: stats(actor))
        except Exception as exc:
            log.warning("%s: no probe actor %r (ping and introspect): %s", role, name, exc)

    return run


def _queue_stats(actor: QueueActor) -> dict[str, Any]:
    return {
        **queue_stats(actor),
        "running": len(actor.running),
        "capacity": actor.settings.concurrency,
    }


def _result_stats(actor: ResultActor) -> dict[str, Any]:
    return {
        "outcomes": actor.outcomes_seen,
        "conflicts": actor.conflicts,
        "released": actor.deps.released,
        "dependency_failures": actor.deps.failed,
    }


def _scheduler_stats(actor: SchedulerActor) -> dict[str, Any]:
    return {
        "leading": actor.lease.leading if actor.lease is not None else False,
        "fired": actor.fired,
        "skipped": actor.skipped,
        "stale": actor.stale,
    }


def _prepare_queue_actor(settings_json: str) -> None:
    """What a parked warm standby of a queue actor does ahead (``standby=True`` in
    :func:`~actorq.runtime.specs.queue_supervisor_spec`): this module's imports are done
    by then; add the job modules (``imports``, on ``sys_path``). It does not connect:
    a standby runs nothing until a restart activates it."""
    settings = msgspec.json.decode(settings_json, type=QueueActorSettings)
    for path in reversed(settings.sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    for module in settings.imports:
        importlib.import_module(module)


@on_standby(_prepare_queue_actor)
def queue_actor(ready: Callable[[], None], settings_json: str) -> None:
    """A queue actor process. SIGTERM/SIGINT stop it gracefully; it exits 0 when stopped
    or recycled (a ``permanent`` child is then started afresh by its supervisor)."""
    settings = msgspec.json.decode(settings_json, type=QueueActorSettings)
    default_logging()
    probe = _probe(settings.namespace, queue_probe(settings.queue), "queue", _queue_stats)

    async def run() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, stop, settings.queue)

            async def actor_task(task_status: trio.TaskStatus[None]) -> None:
                reason = await serve_queue_actor(
                    settings, stop=stop, extra=probe, task_status=_Relay(task_status)
                )
                queue_log.info("queue actor %s exits: %s", settings.queue, reason)
                nursery.cancel_scope.cancel()

            await nursery.start(actor_task)
            ready()

    trio.run(run)


def result_actor(ready: Callable[[], None], settings_json: str) -> None:
    """A result actor process. Runs until SIGTERM/SIGINT; it holds nothing that needs
    draining (unacked outcomes are simply delivered again)."""
    settings = msgspec.json.decode(settings_json, type=ResultActorSettings)
    serve = functools.partial(
        serve_result_actor,
        settings.url,
        namespace=settings.namespace,
        connect=settings.connect,
        extra=_probe(settings.namespace, RESULTS_PROBE, "results", _result_stats),
    )
    run_until_signalled(ready, serve)


def scheduler(ready: Callable[[], None], settings_json: str) -> None:
    """A scheduler actor process. Runs until SIGTERM/SIGINT, then gives its lease up."""
    settings = msgspec.json.decode(settings_json, type=SchedulerSettings)
    serve = functools.partial(
        serve_scheduler_actor,
        settings.url,
        namespace=settings.namespace,
        lease_ttl=settings.lease_ttl,
        ack_wait=settings.ack_wait,
        name=settings.name,
        connect=settings.connect,
        extra=_probe(settings.namespace, SCHEDULER_PROBE, "scheduler", _scheduler_stats),
    )
    run_until_signalled(ready, serve)


async def _stop_on_signal(stop: trio.Event, queue: str) -> None:
    # Keeps receiving until the process ends: `actorq up` sends SIGTERM to every
    # queue actor at once and the supervisor sends its own when it stops the child;
    # a second signal must not kill a queue actor that is draining its jobs (its
    # supervisor kills it when the shutdown timeout has passed).
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not stop.is_set():
                queue_log.info(
                    "queue actor %s: %s, fetching no more", queue, signal.Signals(signum).name
                )
            stop.set()


class _Relay:
    """Passes ``started()`` on without the actor object (which cannot cross processes)."""

    def __init__(self, inner: trio.TaskStatus[None]) -> None:
        self._inner = inner

    def started(self, value: object = None) -> None:
        self._inner.started()
