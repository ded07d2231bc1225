"""``actorq queues``, ``actorq queue purge`` and ``actorq doctor``: what the queues hold,
emptying one, and whether the server and the runtime are in working order."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import msgspec
import trio
import typer

from actorq.cli.common import (
    RET_CONNECT,
    RET_DOCTOR,
    ConfigOpt,
    JsonOpt,
    NamespaceOpt,
    Target,
    UrlOpt,
    age,
    print_json,
    resolve,
    sync_client,
    table,
)
from actorq.exceptions import ActorqError, NotFound
from actorq.jobs.stats import QueueStats as QueueStats
from actorq.jobs.stats import queue_stats as queue_stats

queue_app = typer.Typer(help="Act on one queue.", no_args_is_help=True)

#: Oldest JetStream server with message schedules (delayed jobs and schedules need it).
MIN_SERVER = (2, 12)


def queues(
    json_: JsonOpt = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Per queue: pending, in flight (ack pending), redelivered, workers, jobs/s,
    oldest pending."""
    target = resolve(url, config, namespace)
    with sync_client(target) as client:
        stats = client.run(queue_stats)
    if json_:
        print_json(stats)
        return
    rows = [
        [s.queue, str(s.pending), str(s.in_flight), str(s.redelivered), str(s.workers),
         f"{s.jobs_per_s:.1f}", age(s.oldest_pending_age)]
        for s in stats
    ]  # fmt: skip
    table(
        ["QUEUE", "PENDING", "IN FLIGHT", "REDELIVERED", "WORKERS", "JOBS/S", "OLDEST"], rows
    )


@queue_app.command("purge")
def purge(
    name: Annotated[str, typer.Argument(help="The queue to empty.")],
    force: Annotated[bool, typer.Option("--force", help="Do not ask for confirmation.")] = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Remove every waiting job of queue NAME (running jobs are not touched)."""
    target = resolve(url, config, namespace)
    # typer.confirm raises Abort on end of input: with no answer nothing is purged.
    if not force and not typer.confirm(
        f"Remove every waiting job of queue {name!r} in namespace {target.namespace!r}?"
    ):
        typer.echo("not purged")
        raise typer.Exit(1)
    with sync_client(target) as client:
        removed = client.purge(name)
    typer.echo(f"removed {removed} job(s) from queue {name}")


# -- doctor ----------------------------------------------------------------------------


class Check(msgspec.Struct, frozen=True):
    """One doctor check: passed or not, what was seen, what to do about it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


async def _diagnose(target: Target) -> list[Check]:
    from actorq.exceptions import ConnectionFailed
    from actorq.jobs.streams import JobStreams
    from actorq.nats.connection import open_nats

    checks: list[Check] = []
    where = ", ".join(target.urls)
    try:
        # A raw connection, not a Client: a Client would create missing streams and
        # hide exactly what this is meant to find.
        async with open_nats(
            target.urls, connect_timeout=2.0, max_reconnect_attempts=0, **target.options
        ) as conn:
            checks.append(Check("nats", True, f"reachable at {conn.url}"))
            info = conn.server_info
            checks.append(_version_check(str(info.get("version", "?"))))
            js = bool(info.get("jetstream"))
            checks.append(
                Check(
                    "jetstream", js, "enabled" if js else "disabled",
                    "" if js else "start nats-server with -js (or use `actorq up`)",
                )
            )  # fmt: skip
            if js:
                streams = JobStreams(target.namespace)
                checks.extend(await _resource_checks(conn, streams))
                if info.get("cluster"):
                    checks.append(await _replica_check(conn, streams))
    except ConnectionFailed as exc:
        checks.append(
            Check("nats", False, f"cannot connect to {where}: {exc}",
                  "start the server (`actorq up` or `actorq server`), or pass --url")
        )  # fmt: skip
    return checks


async def _replica_check(conn: Any, streams: Any) -> Check:
    """On a clustered server, R1 streams and buckets lose their data with their node."""
    from actorq.exceptions import BrokerError

    single: list[str] = []
    names = [streams.jobs_stream, streams.outcomes_stream, streams.dead_stream,
             streams.undelivered_stream] + [
        f"KV_{b}" for b in (streams.results_bucket, streams.cancels_bucket,
                            streams.claims_bucket, streams.deps_bucket, streams.schedules_bucket)
    ]  # fmt: skip
    for name in names:
        with contextlib.suppress(NotFound, BrokerError):
            info = await conn.jsm("stream_info", name)
            if (info.config.num_replicas or 1) < 2:
                single.append(name)
    return Check(
        "replicas", not single,
        "single-copy (R1) on a cluster: " + ", ".join(single) if single
        else "every stream and bucket is replicated",
        "set [nats] replicas = 3 and restart `actorq up` (it moves them in place)"
        if single else "",
    )  # fmt: skip


def _version_check(version: str) -> Check:
    try:
        parts = tuple(int(p) for p in version.split("-")[0].split(".")[:2])
    except ValueError:
        parts = (0, 0)
    ok = parts >= MIN_SERVER
    return Check(
        "version", ok, f"nats-server {version}",
        "" if ok else "upgrade nats-server to 2.12 or newer (delayed jobs need it)",
    )  # fmt: skip


async def _resource_checks(conn: Any, streams: Any) -> list[Check]:
    from actorq.exceptions import BrokerError

    checks: list[Check] = []
    provision = "run `actorq up` (or any client) once against this server to create it"
    missing: list[str] = []
    for name in (streams.jobs_stream, streams.outcomes_stream, streams.dead_stream,
                 streams.undelivered_stream):  # fmt: skip
        try:
            info = await conn.jsm("stream_info", name)
        except (NotFound, BrokerError):
            missing.append(f"stream {name}")
            continue
        if name == streams.jobs_stream and not getattr(info.config, "allow_msg_schedules", True):
            checks.append(Check("config", False, f"stream {name} lacks allow_msg_schedules",
                                "restart `actorq up` (it updates the stream)"))  # fmt: skip
    buckets = (streams.results_bucket, streams.cancels_bucket, streams.claims_bucket,
               streams.deps_bucket, streams.schedules_bucket)  # fmt: skip
    for bucket in buckets:
        try:
            await conn.kv(bucket)
        except (NotFound, BrokerError):
            missing.append(f"bucket {bucket}")
    checks.insert(
        0,
        Check("streams", not missing,
              "missing: " + ", ".join(missing) if missing else "streams and buckets present",
              provision if missing else ""),
    )  # fmt: skip
    leader = None
    with contextlib.suppress(NotFound, BrokerError):
        leader = await (await conn.kv(streams.leader_bucket)).get("scheduler")
    checks.append(
        Check("scheduler", leader is not None,
              "a scheduler leader holds the lease" if leader is not None
              else "no scheduler leader",
              "" if leader is not None else "start `actorq up` (it runs the scheduler)")
    )  # fmt: skip
    return checks


def doctor(
    json_: JsonOpt = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Check NATS, its version, JetStream, the streams and buckets and a scheduler leader.

    One line per check (ok / problem, and what to do); exits 10 if any check fails,
    5 if the server cannot be reached at all.
    """
    target = resolve(url, config, namespace)
    try:
        checks = trio.run(_diagnose, target)
    except ActorqError as exc:
        checks = [Check("nats", False, f"{type(exc).__name__}: {exc}")]
    if json_:
        print_json(checks)
    else:
        for c in checks:
            line = f"{'ok     ' if c.ok else 'PROBLEM'}  {c.name:<10} {c.detail}"
            typer.echo(line + (f" -> {c.fix}" if c.fix else ""))
    if not checks[0].ok and checks[0].name == "nats":
        raise typer.Exit(RET_CONNECT)
    if not all(c.ok for c in checks):
        raise typer.Exit(RET_DOCTOR)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``actorq`` app."""
    app.command("queues")(queues)
    app.add_typer(queue_app, name="queue")
    app.command("doctor")(doctor)
