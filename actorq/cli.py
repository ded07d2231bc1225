"""The ``actorq`` command line.

Exit codes (named, as Dramatiq does, so scripts can tell failures apart):

======  ============  ==========================================
code    name          meaning
======  ============  ==========================================
0       RET_OK        finished normally (including after Ctrl-C)
1       RET_ERROR     an unexpected error
2       RET_USAGE     bad command line (typer's own)
3       RET_CONFIG    invalid configuration or options
4       RET_SERVER    the embedded nats-server could not start
5       RET_CONNECT   could not connect to NATS
======  ============  ==========================================
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import trio
import typer

from .embedded_server import open_nats_server
from .exceptions import ConnectionFailed, ServerError

__all__ = ["RET_CONFIG", "RET_CONNECT", "RET_ERROR", "RET_OK", "RET_SERVER", "RET_USAGE", "app"]

RET_OK = 0
RET_ERROR = 1
RET_USAGE = 2
RET_CONFIG = 3
RET_SERVER = 4
RET_CONNECT = 5

app = typer.Typer(
    name="actorq",
    help="actorq: an actor runtime and job queue on Trio and NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print actorq's version."""
    from . import __version__

    typer.echo(__version__)


@app.command()
def server(
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.")] = 4222,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    data_dir: Annotated[
        Path | None,
        typer.Option(help="JetStream data directory; default: a temporary one, removed on exit."),
    ] = None,
) -> None:
    """Run an embedded nats-server with JetStream in the foreground until Ctrl-C.

    Prints the URL clients connect to, e.g. ``nats://127.0.0.1:4222``.
    """

    async def serve() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_nats_server(host=host, port=port or None, data_dir=data_dir) as srv:
                typer.echo(srv.url)
                typer.echo(f"nats-server pid {srv.pid}, data dir {srv.data_dir}; Ctrl-C to stop")
                async for _ in signals:
                    break
        typer.echo("stopped")

    # A process started from a background shell inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        trio.run(serve)
    except ServerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(RET_SERVER) from exc
    except ConnectionFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(RET_CONNECT) from exc
