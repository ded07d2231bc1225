"""``actorq up``: the whole supervised runtime from one config, until signalled.

The tree, started in this order and stopped in reverse::

    actorq up                         (this process)
     ├── nats supervisor              when [nats] has no url (runtime/nats_child.py)
     │    └── nats-server             embedded; restarted on the same port and data dir
     └── root supervisor              [supervisor] strategy, intensity
          ├── results                 result actor process
          ├── scheduler               scheduler actor process ([scheduler] enabled)
          ├── queue-<name>            one_for_one supervisor per [[queues]] entry
          │    └── <name>-0 ... N-1   queue actor processes
          └── <actor> / actor-<name>  user actors ([[actors]])

The nats-server has a supervisor of its own, opened around the root supervisor and
closed after it, so it outlives every actor, including during their shutdown. When it
dies it is started again at once; if it cannot be, ``actorq up`` exits non-zero
(:class:`~supervisors.RestartIntensityExceeded` naming the server's last error).

Signals: the first SIGINT/SIGTERM stops the tree gracefully: every queue actor is
sent SIGTERM at once, so all of them stop fetching at the same moment (not one after
another as the tree stops them in reverse order), and finish in-flight jobs up to
their ``shutdown_timeout``; what is still running then is left for redelivery. The
whole stop is bounded by ``[supervisor] shutdown_timeout``; a second signal kills
every child at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import msgspec
import trio

from actorq.actors.host import actor_process_spec
from actorq.config.schema import Config
from actorq.exceptions import ActorqError, ConfigError
from actorq.jobs.queue_actor import QueueActorSettings
from actorq.jobs.streams import JobStreams
from actorq.nats.connection import open_nats
from actorq.nats.embedded_server import ServerAuth
from actorq.nats.local_credentials import (
    LocalCredentials,
    credentials_path,
    generate_password,
    generate_signing_key,
    read_credentials,
    write_credentials,
)
from actorq.nats.options import ConnectOptions
from actorq.process.heartbeat import provision_procs, publish_tree
from actorq.runtime.child import ENV_CHILD, configure_logging
from actorq.runtime.child_log import log_child_events, plain_reason
from actorq.runtime.metrics import serve_metrics
from actorq.runtime.nats_child import open_supervised_server
from actorq.runtime.specs import queue_supervisor_spec, result_actor_spec, scheduler_actor_spec
from supervisors import ChildSnapshot, ChildSpec, ProcessSpec, SupervisorSpec, open_supervisor
from supervisors.process_child import kill_all_children
from supervisors.serve import raise_single

__all__ = ["SUMMARY_READY", "Secrets", "UpResult", "build_children", "prepare_secrets", "run_up"]

log = logging.getLogger("actorq.runtime.up")

#: The first line of the summary starts with this once the whole tree is ready.
SUMMARY_READY = "actorq ready"


class UpResult(msgspec.Struct, frozen=True, kw_only=True):
    """How :func:`run_up` ended: the signal that stopped it (``None``: none)."""

    signal: int | None = None


class Secrets(msgspec.Struct, frozen=True, kw_only=True):
    """What makes a runtime private, resolved once at start (see :func:`prepare_secrets`).

    ``connect`` is how every process connects (credentials included); ``server`` what
    the embedded server requires (``None``: external NATS); ``signing_key`` and
    ``previous_signing_keys`` (hex) what queue actors accept; ``generated`` names what
    was made fresh on this start.
    """

    connect: ConnectOptions
    server: ServerAuth | None = None
    signing_key: str | None = None
    previous_signing_keys: list[str] = []
    generated: list[str] = []

    def __repr__(self) -> str:
        # Never show a key, even in a traceback's locals.
        return f"Secrets(connect={self.connect!r}, server={self.server!r}, keys=***)"


def prepare_secrets(config: Config, environ: Mapping[str, str] | None = None) -> Secrets:
    """The credentials and signing keys ``actorq up`` runs with.

    The embedded server always requires auth: ``[nats] user``/``password`` or
    ``token`` when the config gives them, else the user and password kept in the data
    dir's credentials file, generated on the first start. Pickled jobs are always
    signed: with the key ``[security] signing_key_env`` names, else the key kept in the
    same file, generated on the first start. Only a runtime that accepts no pickle
    (``codecs = ["safe"]``) may run without a key.
    """
    env = os.environ if environ is None else environ
    nats = config.nats
    stored = read_credentials(credentials_path(nats.data_dir)) or LocalCredentials()
    connect = ConnectOptions.from_mapping(msgspec.to_builtins(nats))
    generated: list[str] = []
    server: ServerAuth | None = None
    if nats.embedded:
        if nats.creds:
            raise ConfigError(
                "[nats] creds (JWT + NKey) needs an external NATS server with accounts; "
                "for the embedded one use user/password or token, or leave them out"
            )
        if not (connect.user or connect.token):
            if stored.user and stored.password:
                user, password = stored.user, stored.password
            else:
                user, password = "actorq", generate_password()
                generated.append("NATS password")
            connect = msgspec.structs.replace(connect, user=user, password=password)
        server = ServerAuth(
            user=connect.user,
            password=connect.password,
            token=connect.token,
            tls_cert=nats.server_tls_cert,
            tls_key=nats.server_tls_key,
        )
    security = config.security
    key: str | None = None
    previous: list[str] = []
    if security.signing_key_env:
        key = env.get(security.signing_key_env, "").strip() or None
        if security.previous_signing_keys_env:
            raw = env.get(security.previous_signing_keys_env, "")
            previous = [k.strip() for k in raw.split(",") if k.strip()]
    elif "pickle" in security.codecs:
        key = stored.signing_key
        if key is None:
            key = generate_signing_key()
            generated.append("signing key")
    return Secrets(
        connect=connect,
        server=server,
        signing_key=key,
        previous_signing_keys=previous,
        generated=generated,
    )


def _save_secrets(config: Config, urls: list[str], secrets: Secrets) -> Path:
    """Keep what local clients need in the data dir's credentials file (0600)."""
    path = credentials_path(config.nats.data_dir)
    connect = secrets.connect
    write_credentials(
        path,
        LocalCredentials(
            url=urls,
            user=connect.user,
            password=connect.password,
            token=connect.token,
            signing_key=secrets.signing_key,
        ),
    )
    if secrets.generated:
        log.info("generated %s, kept in %s", " and ".join(secrets.generated), path)
        if "signing key" in secrets.generated and not config.nats.embedded:
            log.warning(
                "a signing key was generated for this host only; every host and client of "
                "namespace %r needs the same one: set [security] signing_key_env everywhere "
                "(see docs/security.md)",
                config.namespace,
            )
    return path


def _child_env(config: Config, secrets: Secrets) -> dict[str, str]:
    setup = {
        "logging": {"level": config.logging.level, "format": config.logging.format},
        "connect": msgspec.to_builtins(secrets.connect),
        "signing_key": secrets.signing_key,
        "previous_signing_keys": secrets.previous_signing_keys,
    }
    if config.tracing.setup is not None:
        setup["tracing"] = {
            "setup": config.tracing.setup,
            "sys_path": [os.path.abspath(p) for p in config.sys_path],
        }
    return {ENV_CHILD: json.dumps(setup)}


def _wrap(spec: ChildSpec, env: dict[str, str]) -> ChildSpec:
    """Route a child through ``actorq.runtime.child`` (logging, NATS auth, signing key)."""
    if isinstance(spec, SupervisorSpec):
        return msgspec.structs.replace(spec, children=tuple(_wrap(c, env) for c in spec.children))
    if not isinstance(spec, ProcessSpec):
        return spec
    return msgspec.structs.replace(
        spec,
        target="actorq.runtime.child:main",
        args=(spec.target, *spec.args),
        env={**spec.env, **env},
    )


def _queue_settings(config: Config, urls: list[str], index: int) -> QueueActorSettings:
    queue = config.queues[index]
    return QueueActorSettings(
        queue=queue.name,
        url=urls,
        namespace=config.namespace,
        concurrency=queue.concurrency,
        ack_wait=queue.ack_wait,
        track_started=queue.track_started,
        recycle_after_jobs=queue.recycle_after_jobs,
        recycle_above_rss_mb=queue.recycle_above_rss_mb,
        imports=list(config.imports),
        sys_path=[os.path.abspath(p) for p in config.sys_path],
        shutdown_timeout=queue.shutdown_timeout,
        default_timeout=queue.timeout,
        codecs=list(config.security.codecs),
        safe_allow=config.security.safe_allow,
        max_bytes=config.results.max_bytes,
    )


def build_children(
    config: Config, urls: list[str], secrets: Secrets | None = None
) -> list[ChildSpec]:
    """The root supervisor's children for ``config``, connecting to ``urls`` with
    ``secrets`` (default: :func:`prepare_secrets`)."""
    secrets = prepare_secrets(config) if secrets is None else secrets
    sup = config.supervisor
    children: list[ChildSpec] = [result_actor_spec(urls, config.namespace)]
    if config.scheduler.enabled:
        children.append(
            scheduler_actor_spec(urls, config.namespace, lease_ttl=config.scheduler.lease_ttl)
        )
    for i, queue in enumerate(config.queues):
        children.append(
            queue_supervisor_spec(
                _queue_settings(config, urls, i),
                queue.processes,
                max_restarts=sup.max_restarts * queue.processes,
                within=sup.within,
                standby=queue.standby,
            )
        )
    for actor in config.actors:
        children.append(
            actor_process_spec(
                actor.name,
                actor.cls,
                actor.processes,
                actor.restart,
                actor.mailbox,
                urls,
                config.namespace,
                args=list(actor.args),
                kwargs=dict(actor.kwargs),
                sys_path=[os.path.abspath(p) for p in config.sys_path],
                imports=list(config.imports),
                max_restarts=sup.max_restarts * actor.processes,
                within=sup.within,
            )
        )
    env = _child_env(config, secrets)
    return [_wrap(child, env) for child in children]


@asynccontextmanager
async def _nats_urls(config: Config, secrets: Secrets) -> AsyncIterator[tuple[list[str], str]]:
    """The URLs to use, starting the embedded server (supervised: restarted on the same
    port and data dir when it dies) if there are none; and a note."""
    nats = config.nats
    if not nats.embedded:
        yield nats.urls, "external"
        return
    async with open_supervised_server(
        host=nats.host,
        port=nats.port or None,
        data_dir=nats.data_dir,
        auth=secrets.server,
        allow_insecure_bind=nats.allow_insecure_bind,
    ) as server:
        yield [server.url], f"embedded nats-server pid {server.pid()}, data dir {nats.data_dir}"


async def _provision(config: Config, urls: list[str], secrets: Secrets) -> None:
    """Create the streams and buckets with this config's settings (result TTL) and
    prove NATS is reachable, before any actor starts."""
    options = secrets.connect.kwargs()
    async with open_nats(
        urls, name="actorq-up", connect_timeout=config.nats.connect_timeout, **options
    ) as conn:
        await JobStreams(config.namespace).provision(
            conn, result_ttl=config.results.ttl, replicas=config.nats.replicas
        )
        await provision_procs(conn, config.namespace, config.nats.replicas)


def summary(
    snapshot: ChildSnapshot, urls: Sequence[str], note: str, namespace: str, elapsed: float
) -> str:
    """The text printed once the tree is ready: where NATS is, every process and pid."""
    lines = [
        f"{SUMMARY_READY} in {elapsed:.2f}s: {', '.join(urls)} ({note}), namespace {namespace}"
    ]

    def add(node: ChildSnapshot, depth: int) -> None:
        pad = "  " * depth
        if node.kind == "supervisor":
            lines.append(f"{pad}{node.id}/")
        else:
            lines.append(f"{pad}{node.id:<{max(1, 26 - len(pad))}} pid {node.pid}")
        for child in node.children:
            add(child, depth + 1)

    for child in snapshot.children:
        add(child, 1)
    lines.append("SIGINT/SIGTERM stops gracefully; a second one stops at once.")
    return "\n".join(lines)


async def _watch_signals(
    receiver: AsyncIterator[int],
    body: trio.CancelScope,
    got: list[int],
    grace: float,
    nursery: trio.Nursery,
    tree: list[Callable[[], ChildSnapshot]] | None = None,
) -> None:
    async for signum in receiver:
        got.append(signum)
        name = signal.Signals(signum).name
        if len(got) == 1:
            log.warning("%s: stopping gracefully (up to %ss); again to stop at once", name, grace)
            for snapshot in tree or ():
                _stop_fetching_everywhere(snapshot())
            body.cancel()
            nursery.start_soon(_kill_after, grace)
        elif len(got) == 2:
            log.warning("%s again: killing every process", name)
            kill_all_children()
        else:
            os._exit(128 + signum)


def _stop_fetching_everywhere(tree: ChildSnapshot) -> None:
    """SIGTERM every queue actor process at once: each stops fetching at this moment and
    drains; the tree's own stop, in reverse order, then only waits for them."""
    pids = [
        child.pid
        for queue in tree.children
        if queue.kind == "supervisor" and queue.id.startswith("queue-")
        for child in queue.children
        if child.kind == "process" and child.pid is not None
    ]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    log.info("asked %d queue actors to stop fetching", len(pids))


async def _kill_after(grace: float) -> None:
    await trio.sleep(grace)
    log.error("graceful stop took over %ss: killing every process", grace)
    kill_all_children()


async def _serve(
    config: Config,
    secrets: Secrets,
    nats: tuple[list[str], str],
    started: float,
    echo: Callable[[str], None],
    tree_view: list[Callable[[], ChildSnapshot]],
) -> None:
    sup = config.supervisor
    urls, note = nats
    _save_secrets(config, urls, secrets)
    await _provision(config, urls, secrets)
    children = build_children(config, urls, secrets)
    async with open_supervisor(
        children,
        id="actorq",
        strategy=sup.strategy,
        max_restarts=sup.max_restarts,
        within=sup.within,
    ) as tree, trio.open_nursery() as side:
        # Every child exit and restart, one line each (actorq.runtime.child_log).
        side.start_soon(log_child_events, tree.subscribe())
        if config.metrics.port is not None:
            await side.start(
                partial(
                    serve_metrics, urls, secrets.connect.kwargs(), config.namespace,
                    tree.snapshot, host=config.metrics.host, port=config.metrics.port,
                )
            )  # fmt: skip
        tree_view.append(tree.snapshot)
        # The tree is in the heartbeat bucket before `ready` is printed, so `actorq ps`
        # right after it shows every child by name.
        await side.start(partial(_publish_tree, config, urls, secrets, tree.snapshot))
        elapsed = time.monotonic() - started
        echo(summary(tree.snapshot(), urls, note, config.namespace, elapsed))
        log.info("ready in %.2fs", elapsed)
        if config.dashboard.enabled:
            # After the summary, so its "dashboard at" line always follows `ready`.
            side.start_soon(_serve_dashboard, config, urls, secrets, echo)
        try:
            await trio.sleep_forever()
        finally:
            side.cancel_scope.cancel()


async def _publish_tree(
    config: Config,
    urls: list[str],
    secrets: Secrets,
    snapshot: Callable[[], object],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Put the tree's snapshot in the heartbeat bucket until cancelled (see
    :func:`actorq.process.heartbeat.publish_tree`); without NATS, only wait to be cancelled."""
    options = secrets.connect.kwargs()
    once = _StartedOnce(task_status)
    try:
        async with open_nats(
            urls, name="actorq-up", connect_timeout=config.nats.connect_timeout, **options
        ) as conn:
            await publish_tree(conn, config.namespace, snapshot, task_status=once)
    except (ActorqError, OSError) as exc:
        log.warning("supervision tree not published: %s", exc)
    once.started()  # without NATS (or after it failed): ready all the same
    await trio.sleep_forever()


class _StartedOnce:
    """A task status whose ``started()`` may be called again (then does nothing)."""

    def __init__(self, inner: trio.TaskStatus[None]) -> None:
        self._inner: trio.TaskStatus[None] | None = inner

    def started(self, value: None = None) -> None:
        if self._inner is not None:
            self._inner.started()
            self._inner = None


async def _serve_dashboard(
    config: Config, urls: list[str], secrets: Secrets, echo: Callable[[str], None]
) -> None:
    """``[dashboard]``: serve the web dashboard in this process's own Trio loop until
    cancelled; a failure (say, the port is taken) is logged, never stops the runtime."""
    from actorq.dashboard import serve_dashboard
    from actorq.jobs.client import open_client

    options = secrets.connect.kwargs()
    try:
        async with (
            open_client(
                urls, namespace=config.namespace, name="actorq-dashboard",
                connect_timeout=config.nats.connect_timeout, **options,
            ) as client,
            trio.open_nursery() as nursery,
        ):  # fmt: skip
            info = await nursery.start(serve_dashboard, client, config.dashboard)
            echo(f"dashboard at {info.login_url if info.generated else info.url}")
    except (ActorqError, OSError) as exc:
        log.error("dashboard not served: %s", exc)


async def run_up(
    config: Config,
    *,
    echo: Callable[[str], None] = print,
    started: float | None = None,
) -> UpResult:
    """Run the runtime of ``config`` until SIGINT/SIGTERM; return how it stopped.

    ``echo`` receives the summary once every process reported ready. Raises
    :class:`~supervisors.RestartIntensityExceeded` when the tree gives up,
    :class:`~actorq.exceptions.ServerError` / :class:`~actorq.ConnectionFailed` when NATS is not
    there, and the supervisors' ``StartError`` when a child cannot start.
    """
    started = time.monotonic() if started is None else started
    configure_logging(config.logging.level, config.logging.format)
    sup = config.supervisor
    got: list[int] = []
    tree_view: list[Callable[[], ChildSnapshot]] = []
    secrets = prepare_secrets(config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as receiver:
        try:
            async with trio.open_nursery() as nursery:
                body = trio.CancelScope()
                nursery.start_soon(
                    _watch_signals, receiver, body, got, sup.shutdown_timeout, nursery,
                    tree_view,
                )  # fmt: skip
                # The server's block is outside the body's scope: a stop cancels the
                # actors, which drain while the server still runs; it stops after them.
                async with _nats_urls(config, secrets) as nats:
                    with body:
                        await _serve(config, secrets, nats, started, echo, tree_view)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise_single(group)  # the caller wants the lone cause, not a group
    log.info("stopped")
    return UpResult(signal=got[0] if got else None)


def describe_failure(exc: BaseException) -> str:
    """One line on why the tree gave up, for the exit message."""
    from supervisors import RestartIntensityExceeded

    if isinstance(exc, RestartIntensityExceeded):
        return (
            f"supervisor {exc.supervisor!r} gave up: child {exc.child_id!r} failed, more than "
            f"{exc.max_restarts} restarts within {exc.within:g}s; last: "
            f"{plain_reason(exc.reason.describe())}"
        )
    return f"{type(exc).__name__}: {exc}"
