"""What every operations command shares: finding the server, connecting, failing cleanly.

The server is found, first match wins, from ``--url``, ``ACTORQ_NATS_URL``, the
``[nats]`` section of ``--config FILE``, the credentials file of a local ``actorq up``
(:mod:`actorq.nats.local_credentials`), then ``nats://127.0.0.1:4222``. The namespace
comes from ``--namespace``, ``ACTORQ_NAMESPACE``, the config file, then ``actorq``.
Credentials and the signing key come from the config file, else from that
credentials file when it is for the same server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import msgspec
import typer

from actorq.constants import DEFAULT_NAMESPACE, DEFAULT_URL, ENV_NAMESPACE, ENV_NATS_URL
from actorq.exceptions import ActorqError, ConfigError, ConnectionFailed, NotFound, ServerError
from supervisors import StartError, StartFailed

T = TypeVar("T")

# The exit codes of every command, in one place (actorq.cli re-exports them and
# documents them; it registers the commands that use them, so they cannot live there).
RET_OK = 0
RET_ERROR = 1
RET_USAGE = 2
RET_CONFIG = 3
RET_SERVER = 4
RET_CONNECT = 5
RET_GAVE_UP = 6
RET_START = 7
RET_NOT_FOUND = 8
RET_JOB_FAILED = 9
RET_DOCTOR = 10


UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar=ENV_NATS_URL,
        help="NATS server URL (comma-separated for several).",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Take the server and namespace from this TOML config.", dir_okay=False
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", envvar=ENV_NAMESPACE, help="The actorq namespace."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class Target(msgspec.Struct, frozen=True):
    """Where a command connects: server URLs, namespace and connect options."""

    urls: list[str]
    namespace: str
    options: dict[str, Any] = {}
    signing_key: bytes | None = None


def start_error_text(exc: StartError) -> str:
    """What ``actorq up`` says when a child could not start: the child's path in the
    tree (``queue-default/default-0``), not one message per supervisor around it, and
    where its own error is (each process logs its crash, see
    :mod:`actorq.runtime.child_log`), not "run it on its own"."""
    path = [exc.child_id]
    inner: BaseException = exc
    while isinstance(inner.__cause__, StartError):
        inner = inner.__cause__
        path.append(inner.child_id)
    if isinstance(inner, StartFailed):
        return (
            f"child {'/'.join(path)} stopped before reporting ready "
            f"({inner.reason.describe()}); its error, if it logged one, is in the log above"
        )
    return str(inner).replace(repr(path[-1]), "/".join(path), 1)


def fail(message: str, code: int) -> NoReturn:
    """Print one ``error:`` line on stderr and exit with ``code`` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def resolve(url: str | None, config: Path | None, namespace: str | None) -> Target:
    """Work out the server and namespace from the options (see the module docstring)."""
    ns = namespace
    urls: list[str] = []
    options: dict[str, Any] = {}
    key: bytes | None = None
    if config is not None:
        from actorq.config.schema import load_config

        try:
            cfg = load_config(config)
        except ConfigError as exc:
            fail(str(exc), RET_CONFIG)
        ns = ns or cfg.namespace
        # An embedded server (no urls) listens on its configured local port.
        urls = list(cfg.nats.urls) or [f"nats://127.0.0.1:{cfg.nats.port}"]
        # The credentials and TLS settings `actorq up` gives its own processes.
        from actorq.nats.options import ConnectOptions

        options = ConnectOptions.from_mapping(msgspec.to_builtins(cfg.nats)).kwargs()
        if cfg.security.signing_key_env:
            key = bytes.fromhex(os.environ.get(cfg.security.signing_key_env, ""))
    if url:
        urls = [u.strip() for u in url.split(",") if u.strip()]
    from actorq.nats.local_credentials import resolve_local

    try:
        found, options, key = resolve_local(urls or None, options, key)
    except ValueError as exc:  # a signing key that is not hex
        fail(f"the local credentials file holds an invalid signing key: {exc}", RET_CONFIG)
    return Target(
        urls=found or [DEFAULT_URL], namespace=ns or DEFAULT_NAMESPACE, options=options,
        signing_key=key,
    )  # fmt: skip


@contextlib.contextmanager
def expected_errors() -> Iterator[None]:
    """Turn the failures an operator can expect into one line and a named exit code."""
    try:
        yield
    except ConnectionFailed as exc:
        fail(str(exc), RET_CONNECT)
    except ServerError as exc:
        fail(str(exc), RET_SERVER)
    except StartError as exc:
        fail(start_error_text(exc), RET_START)
    except NotFound as exc:
        fail(str(exc), RET_NOT_FOUND)
    except ConfigError as exc:
        fail(str(exc), RET_CONFIG)
    except ActorqError as exc:
        fail(f"{type(exc).__name__}: {exc}", RET_ERROR)


@contextlib.contextmanager
def sync_client(target: Target) -> Iterator[Any]:
    """A connected :class:`~actorq.SyncClient`, with expected failures made one line."""
    from actorq.jobs.sync_client import SyncClient

    with expected_errors():
        # Short connect bounds: an operator at a shell wants the answer in seconds.
        client = SyncClient(
            target.urls,
            namespace=target.namespace,
            start_timeout=15.0,
            connect_timeout=2.0,
            max_reconnect_attempts=0,
            signing_key=target.signing_key,
            local_credentials=False,  # resolve() looked already
            **target.options,
        )
        with client:
            yield client


def iso(ts: float | dt.datetime | None) -> str:
    """A timestamp as local ISO time to the second, or ``-``."""
    if ts is None:
        return "-"
    when = ts if isinstance(ts, dt.datetime) else dt.datetime.fromtimestamp(ts, dt.UTC)
    return when.astimezone().isoformat(timespec="seconds")


def age(seconds: float | None) -> str:
    """A duration for people: ``45s``, ``12m3s``, ``2h5m``, or ``-``."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    return f"{s // 3600}h{s % 3600 // 60}m"


def print_json(data: Any) -> None:
    """JSON on stdout, one document (msgspec handles structs and datetimes)."""
    typer.echo(json.dumps(msgspec.to_builtins(data), indent=2, default=str))


def table(headers: list[str], rows: list[list[str]]) -> None:
    """A plain, aligned table (rich's would wrap and colour when piped into scripts)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in [headers, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
