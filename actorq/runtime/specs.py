"""Supervisor child specs for the job queue's actors, as processes.

The queue and result actors run as fresh interpreters under :mod:`supervisors`
(``python -m supervisors.child_runtime actorq.runtime.children:queue_actor SETTINGS_JSON``), so a
crashed or recycled one is restarted under OTP rules and none outlives its
supervisor. ``actorq up`` builds its tree from these; they are usable directly too::

    settings = QueueActorSettings(queue="emails", url=[url], concurrency=20)
    async with open_supervisor([result_actor_spec([url]), queue_supervisor_spec(settings, 2)]):
        await trio.sleep_forever()
"""

from __future__ import annotations

import msgspec

from actorq.constants import DEFAULT_NAMESPACE
from actorq.jobs.queue_actor import QueueActorSettings
from actorq.jobs.result_actor import ResultActorSettings
from actorq.jobs.scheduler_actor import SchedulerSettings
from actorq.nats.options import ConnectOptions
from supervisors import Backoff, ProcessSpec, SupervisorSpec

__all__ = ["queue_supervisor_spec", "result_actor_spec", "scheduler_actor_spec"]


def queue_supervisor_spec(
    settings: QueueActorSettings,
    processes: int = 1,
    *,
    max_restarts: int | None = None,
    within: float = 10.0,
    backoff: Backoff | None = None,
    standby: bool = True,
) -> SupervisorSpec:
    """A ``one_for_one`` supervisor of ``processes`` queue actor processes for one queue.

    Every child is ``permanent``: a crash, a ``kill -9`` and a recycle (a graceful
    exit after N jobs or above an RSS limit) all start a fresh process, without
    touching its siblings. Each gets ``shutdown_timeout`` + 5 s to drain on SIGTERM
    before SIGKILL. ``max_restarts`` defaults to 3 per process within ``within``.

    ``standby`` keeps one warm spare per queue (``ProcessSpec(standby=True)``: an
    interpreter with actorq and the job modules imported, parked, not connected), so
    a restart skips interpreter start-up and imports; it costs one idle process's
    memory per queue.
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    payload = msgspec.json.encode(settings).decode()
    children = tuple(
        ProcessSpec(
            id=f"{settings.queue}-{i}",
            target="actorq.runtime.children:queue_actor",
            args=(payload,),
            shutdown=settings.shutdown_timeout + 5,
            start_timeout=30.0,
            standby=standby,
        )
        for i in range(processes)
    )
    return SupervisorSpec(
        id=f"queue-{settings.queue}",
        children=children,
        max_restarts=max_restarts if max_restarts is not None else 3 * processes,
        within=within,
        backoff=backoff or Backoff(),
    )


def result_actor_spec(
    url: list[str], namespace: str = DEFAULT_NAMESPACE, *, connect: ConnectOptions | None = None
) -> ProcessSpec:
    """The result actor as a ``permanent`` process child.

    ``connect`` (credentials, TLS) travels in its settings, on its command line: keep
    secrets out of it, as ``actorq up`` does (its children get them from their
    environment, see :mod:`actorq.runtime.child`).
    """
    settings = ResultActorSettings(
        url=url, namespace=namespace, connect=connect or ConnectOptions()
    )
    return ProcessSpec(
        id="results",
        target="actorq.runtime.children:result_actor",
        args=(msgspec.json.encode(settings).decode(),),
        shutdown=5.0,
        start_timeout=30.0,
    )


def scheduler_actor_spec(
    url: list[str],
    namespace: str = DEFAULT_NAMESPACE,
    *,
    lease_ttl: float = 5.0,
    connect: ConnectOptions | None = None,
) -> ProcessSpec:
    """The scheduler actor as a ``permanent`` process child.

    Run one per runtime: when several runtimes share a NATS, their schedulers elect
    one leader (a KV lease), and another takes over within about ``lease_ttl * 4/3``
    seconds when it dies. ``connect`` as for :func:`result_actor_spec`.
    """
    settings = SchedulerSettings(
        url=url, namespace=namespace, lease_ttl=lease_ttl, connect=connect or ConnectOptions()
    )
    return ProcessSpec(
        id="scheduler",
        target="actorq.runtime.children:scheduler",
        args=(msgspec.json.encode(settings).decode(),),
        shutdown=5.0,
        start_timeout=30.0,
    )
