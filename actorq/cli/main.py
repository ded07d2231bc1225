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
6       RET_GAVE_UP   ``actorq up``: the supervision tree gave up
                      (restart intensity exceeded); the cause is printed
7       RET_START     ``actorq up``: a process failed to start
8       RET_NOT_FOUND no such job, dead letter or schedule
9       RET_JOB_FAILED ``actorq send --wait``: the job did not succeed
10      RET_DOCTOR    ``actorq doctor``: a check failed
======  ============  ==========================================

Codes 8-10 are defined in :mod:`actorq.cli.common`; docs/cli.md lists them all.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import trio
import typer

from actorq.cli import actors as _actors
from actorq.cli import jobs as _jobs
from actorq.cli import ops as _ops
from actorq.cli import ps as _ps
from actorq.cli import top as _top
from actorq.cli.common import RET_CONFIG as RET_CONFIG
from actorq.cli.common import RET_CONNECT as RET_CONNECT
from actorq.cli.common import RET_ERROR as RET_ERROR
from actorq.cli.common import RET_GAVE_UP as RET_GAVE_UP
from actorq.cli.common import RET_OK as RET_OK
from actorq.cli.common import RET_SERVER as RET_SERVER
from actorq.cli.common import RET_START as RET_START
from actorq.cli.common import RET_USAGE as RET_USAGE
from actorq.cli.common import expected_errors, fail
from actorq.nats.cluster import open_nats_cluster
from actorq.nats.embedded_server import open_nats_server

__all__ = [
    "RET_CONFIG",
    "RET_CONNECT",
    "RET_ERROR",
    "RET_GAVE_UP",
    "RET_OK",
    "RET_SERVER",
    "RET_START",
    "RET_USAGE",
    "app",
]

app = typer.Typer(
    name="actorq",
    help="actorq: an actor runtime and job queue on Trio and NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Check a config file, or print a complete example.")
app.add_typer(config_app, name="config")

ConfigFile = Annotated[
    Path, typer.Argument(help="The TOML config file.", dir_okay=False, show_default=False)
]


@app.command()
def version() -> None:
    """Print actorq's version."""
    from actorq import __version__

    typer.echo(__version__)


@app.command()
def server(
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.")] = 4222,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    data_dir: Annotated[
        Path | None,
        typer.Option(help="JetStream data directory; default: a temporary one, removed on exit."),
    ] = None,
    allow_insecure_bind: Annotated[
        bool,
        typer.Option(help="Allow a --host beyond loopback (no auth, no TLS: trusted networks)."),
    ] = False,
    cluster: Annotated[
        int,
        typer.Option(help="Run a local cluster of N routed nodes (free ports) instead."),
    ] = 0,
) -> None:
    """Run an embedded nats-server with JetStream in the foreground until Ctrl-C.

    Prints the URL clients connect to, e.g. ``nats://127.0.0.1:4222``. A development
    server: no auth, so it refuses a --host beyond loopback unless told otherwise
    (``actorq up`` runs its own server with auth). ``--cluster 3`` runs three nodes
    on loopback, routed into one JetStream cluster (for R3 streams), each with its
    own data dir, stopped together.
    """

    async def serve_cluster() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_nats_cluster(cluster, data_dir=data_dir) as nodes:
                for node in nodes:
                    _echo_flush(f"{node.url}  pid {node.pid}, data dir {node.data_dir}")
                _echo_flush(f"cluster of {len(nodes)} nodes; Ctrl-C to stop")
                async for _ in signals:
                    break
        typer.echo("stopped")

    async def serve() -> None:
        if cluster:
            await serve_cluster()
            return
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_nats_server(
                host=host,
                port=port or None,
                data_dir=data_dir,
                allow_insecure_bind=allow_insecure_bind,
            ) as srv:
                typer.echo(srv.url)
                typer.echo(f"nats-server pid {srv.pid}, data dir {srv.data_dir}; Ctrl-C to stop")
                async for _ in signals:
                    break
        typer.echo("stopped")

    # A process started from a background shell inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with expected_errors():
        trio.run(serve)


@config_app.command("check")
def config_check(file: ConfigFile) -> None:
    """Validate FILE (with ACTORQ_* overrides): exit 0 if it is good, 3 with the reason."""
    from actorq.config.schema import load_config

    with expected_errors():
        config = load_config(file)
    where = ", ".join(config.nats.urls) or f"embedded nats-server on port {config.nats.port}"
    queues = ", ".join(f"{q.name} ({q.processes}x{q.concurrency})" for q in config.queues)
    typer.echo(f"{file}: ok; NATS {where}; namespace {config.namespace}; queues {queues}")


@config_app.command("example")
def config_example() -> None:
    """Print a complete, commented config with every key at its default."""
    from actorq.config.example import EXAMPLE_CONFIG

    typer.echo(EXAMPLE_CONFIG, nl=False)


@app.command()
def up(file: ConfigFile) -> None:
    """Run the whole runtime of FILE until SIGINT/SIGTERM.

    Starts NATS (an embedded server unless the config names a URL), the result and
    scheduler actors, each queue's worker processes and the user actors, then prints a
    summary with every process and its pid. The first signal stops gracefully
    (in-flight jobs finish up to their shutdown timeout), a second stops at once.

    Exit codes: 0 stopped by a signal, 3 bad config, 4 embedded server failed,
    5 cannot connect to NATS, 6 the tree gave up (restart intensity exceeded),
    7 a process failed to start, 1 anything else.
    """
    started = time.monotonic()
    from actorq.config.schema import load_config
    from actorq.runtime.up import describe_failure, run_up
    from supervisors import RestartIntensityExceeded

    # A process started from a background shell inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with expected_errors():
        config = load_config(file)
        try:
            trio.run(lambda: run_up(config, echo=_echo_flush, started=started))
        except RestartIntensityExceeded as exc:
            fail(describe_failure(exc), RET_GAVE_UP)
    typer.echo("actorq stopped")


def _echo_flush(text: str) -> None:
    # Flushed at once: a service manager or a test waits for this line on a pipe.
    typer.echo(text)
    sys.stdout.flush()


# The operations commands live in their own modules, each adding its commands here.
_ops.register(app)
_jobs.register(app)
_ps.register(app)
_top.register(app)
_actors.register(app)
