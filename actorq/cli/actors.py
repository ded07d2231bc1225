"""``actorq actor NAME``: ask any actor, user or runtime, what it is and what it does.

Every actor answers the actor protocol (``Ping``, ``Introspect``); the runtime's own
processes serve theirs as ``_queue-<queue>``, ``_results`` and ``_scheduler``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from actorq.actors.refs import ref
from actorq.cli.common import (
    RET_NOT_FOUND,
    ConfigOpt,
    JsonOpt,
    NamespaceOpt,
    UrlOpt,
    age,
    fail,
    print_json,
    resolve,
    sync_client,
)
from actorq.exceptions import ActorUnavailable, AskTimeout
from actorq.wire.messages import ActorInfo


def actor(
    name: Annotated[
        str, typer.Argument(help="The actor (runtime: _results, _scheduler, _queue-<queue>).")
    ],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 5.0,
    json_: JsonOpt = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Ask the actor NAME (one of its processes) what it is: role, pid, host, uptime and
    its own figures. Exits 8 when nobody serves NAME."""

    async def ask(client: Any) -> ActorInfo:
        target = ref(name, conn=client.conn, namespace=client.streams.ns.name)
        return await target.introspect(timeout=timeout)

    with sync_client(resolve(url, config, namespace)) as client:
        try:
            info: ActorInfo = client.run(ask)
        except (ActorUnavailable, AskTimeout) as exc:
            fail(f"actor {name!r}: {exc}", RET_NOT_FOUND)
    if json_:
        print_json(info)
        return
    typer.echo(
        f"{info.name}  {info.role}  pid {info.pid} on {info.host}  "
        f"up {age(time.time() - info.started_at)}"
    )
    for key, value in sorted(info.stats.items()):
        typer.echo(f"  {key:<20} {value}")


def register(app: typer.Typer) -> None:
    """Add ``actor`` to the ``actorq`` app."""
    app.command("actor")(actor)
