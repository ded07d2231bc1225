"""``actorq dashboard``: the web dashboard for any runtime this machine can reach."""

from __future__ import annotations

import functools
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import msgspec
import trio
import typer

from actorq.cli.common import ConfigOpt, NamespaceOpt, Target, UrlOpt, expected_errors, resolve

if TYPE_CHECKING:
    from actorq.config.schema import DashboardConfig


def dashboard(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port; 0 picks a free one.")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="ACTORQ_DASHBOARD_TOKEN",
            help="Token for viewing and actions; default: a random one, printed.",
            show_default=False,
        ),
    ] = None,
    read_only: Annotated[
        bool | None,
        typer.Option("--read-only/--no-read-only", help="Viewing needs no token."),
    ] = None,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Serve the web dashboard of a runtime until Ctrl-C (see docs/dashboard.md).

    Finds the runtime like the other commands (--url, --config, --namespace); with
    --config, the dashboard section of that file gives the defaults. Prints the
    URL to open (with the token in it when the token was made at start).
    """
    from actorq.config.schema import DashboardConfig, load_config

    target = resolve(url, config, namespace)
    settings = DashboardConfig()
    if config is not None:
        with expected_errors():
            settings = load_config(config).dashboard
    overrides = {"host": host, "port": port, "token": token, "read_only": read_only}
    settings = msgspec.structs.replace(
        settings, **{k: v for k, v in overrides.items() if v is not None}
    )
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with expected_errors():
        trio.run(_serve, target, settings)
    typer.echo("dashboard stopped")


async def _serve(target: Target, settings: DashboardConfig) -> None:
    from actorq.dashboard import serve_dashboard
    from actorq.jobs.client import open_client

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with (
            open_client(
                target.urls,
                namespace=target.namespace,
                connect_timeout=2.0,
                **target.options,
            ) as client,
            trio.open_nursery() as nursery,
        ):
            info = await nursery.start(functools.partial(serve_dashboard, client, settings))
            shown = info.login_url if info.generated else info.url
            typer.echo(f"actorq dashboard at {shown} (namespace {target.namespace})")
            if not info.generated:
                typer.echo("log in with the configured token (ACTORQ_DASHBOARD_TOKEN)")
            typer.echo("Ctrl-C to stop")
            sys.stdout.flush()
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` to the ``actorq`` app."""
    app.command("dashboard")(dashboard)
