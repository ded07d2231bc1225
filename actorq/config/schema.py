"""The ``actorq up`` configuration file: TOML, decoded and validated with msgspec.

Every section is a frozen :class:`msgspec.Struct` with ``forbid_unknown_fields=True``
and a default for every optional key, so a typo is an error that names the key, and an
empty file is a working config (embedded NATS server, one queue named ``default``)::

    config = load_config("actorq.toml")          # raises ConfigError
    config.nats.urls                              # [] -> embedded server

A bad file is refused before anything starts. :class:`ConfigFileError` (a
:class:`~actorq.ConfigError`) carries the file, the line and the key path, and its
message reads ``actorq.toml:12: queues[1].concurency: unknown key ...``. Lines come
from :mod:`actorq.config.locate`, since :mod:`tomllib` keeps no positions.

Environment variables ``ACTORQ_<SECTION>_<KEY>`` override the file after it has been
validated; ``docs/configuration.md`` lists them, :mod:`actorq.config.env` applies them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import tomllib
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from actorq.config.env import ENV_PREFIX, OverrideError, env_overrides, field_types, show, struct_of
from actorq.config.locate import KeyPath, locate, parse_path
from actorq.constants import DEFAULT_NAMESPACE
from actorq.exceptions import ConfigFileError
from actorq.jobs.streams import DEFAULT_ACK_WAIT, DEFAULT_MAX_BYTES, DEFAULT_RESULT_TTL, MAX_DELIVER
from actorq.nats.local_credentials import credentials_path, read_credentials
from actorq.wire.codec import Signer
from actorq.wire.messages import JobOptions, RetryBackoff

__all__ = [
    "ENV_PREFIX",
    "ActorConfig",
    "Config",
    "DashboardConfig",
    "LoggingConfig",
    "NatsConfig",
    "QueueConfig",
    "ResultsConfig",
    "SchedulerConfig",
    "SecurityConfig",
    "SupervisorConfig",
    "TracingConfig",
    "load_config",
    "loads_config",
]

_NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
_CLASS_PATH_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
Name = Annotated[str, msgspec.Meta(pattern=_NAME_PATTERN, max_length=64)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
ClassPath = Annotated[str, msgspec.Meta(pattern=_CLASS_PATH_PATTERN)]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A config table: immutable, every unknown key an error."""


class NatsConfig(_Section, frozen=True, kw_only=True):
    """``[nats]``: where NATS is. No ``url`` means an embedded server on ``host:port``."""

    url: str | list[str] | None = None
    host: str = "127.0.0.1"
    #: Port of the embedded server; 0 picks a free one.
    port: Port = 4222
    #: JetStream data of the embedded server; kept across restarts of ``actorq up``,
    #: with the generated credentials and signing key (``credentials.json``, 0600).
    data_dir: str = ".actorq/nats"
    #: The embedded server's own TLS certificate and key (PEM), needed to serve
    #: beyond loopback.
    server_tls_cert: str | None = None
    server_tls_key: str | None = None
    #: Let the embedded server listen beyond loopback without auth and TLS.
    allow_insecure_bind: bool = False
    user: str | None = None
    password: str | None = None
    token: str | None = None
    #: Path of a ``.creds`` file (NATS decentralised auth: JWT + NKey seed).
    creds: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    tls_hostname: str | None = None
    connect_timeout: Seconds = 5.0
    #: Copies of every stream and bucket on a NATS cluster (1 or 3); unset: new ones
    #: get 1 and existing ones keep theirs. ``actorq up`` moves R1 to R3 in place.
    replicas: Literal[1, 3] | None = None

    @property
    def urls(self) -> list[str]:
        """The configured URLs as a list; empty when the server is embedded."""
        if self.url is None:
            return []
        return [self.url] if isinstance(self.url, str) else list(self.url)

    @property
    def embedded(self) -> bool:
        """Whether ``actorq up`` starts its own nats-server."""
        return not self.urls


class QueueConfig(_Section, frozen=True, kw_only=True):
    """``[[queues]]``: one queue, its worker processes and their knobs."""

    name: Name
    processes: Positive = 1
    #: Jobs run at once per process.
    concurrency: Positive = 10
    #: Seconds one attempt may run when the job sets no timeout itself (workers
    #: enforce it).
    timeout: Seconds | None = None
    #: Retry policy defaults for enqueuers that read this config (:meth:`job_options`):
    #: a job's retry policy is chosen when it is enqueued and travels with it.
    #: At most the delivery limit less two (the last delivery is kept for the dead letter).
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=MAX_DELIVER - 2)] = 3
    backoff: RetryBackoff = RetryBackoff()
    recycle_after_jobs: Positive | None = None
    recycle_above_rss_mb: Seconds | None = None
    #: The lease on a running job, renewed while it runs; a dead worker's job
    #: comes back after at most this long.
    ack_wait: Seconds = DEFAULT_ACK_WAIT
    #: Seconds in-flight jobs get to finish on SIGTERM before being left for redelivery.
    shutdown_timeout: Seconds = 30.0
    track_started: bool = True
    #: Keep one warm spare process per queue (imports done, parked), so a crashed
    #: worker is replaced without paying for interpreter start-up and imports.
    standby: bool = True

    def enqueue_options(self, **overrides: Any) -> dict[str, Any]:
        """This queue's name, retry policy and timeout as keyword arguments of
        ``client.options(...)``.

        A job's retry policy travels with the job, chosen when it is enqueued, so
        enqueuers apply it:
        ``await client.options(**queue.enqueue_options()).enqueue(fn, x)``.
        """
        fields: dict[str, Any] = {
            "queue": self.name, "max_retries": self.max_retries, "backoff": self.backoff,
        }  # fmt: skip
        if self.timeout is not None:
            fields["timeout"] = self.timeout
        return {**fields, **overrides}

    def job_options(self, **overrides: Any) -> JobOptions:
        """The retry policy and timeout of this queue as :class:`~actorq.wire.JobOptions`
        (what travels in a job's envelope); to enqueue with them use
        :meth:`enqueue_options`."""
        fields: dict[str, Any] = {"max_retries": self.max_retries, "backoff": self.backoff}
        if self.timeout is not None:
            fields["timeout"] = self.timeout
        return JobOptions(**{**fields, **overrides})


class SchedulerConfig(_Section, frozen=True, kw_only=True):
    """``[scheduler]``: the scheduler actor (delayed and recurring jobs)."""

    enabled: bool = True
    #: Seconds a scheduler's leadership lease lasts; another takes over after ~4/3 of it.
    lease_ttl: Seconds = 5.0


class ResultsConfig(_Section, frozen=True, kw_only=True):
    """``[results]``: the result actor."""

    #: Seconds results and cancel requests are kept.
    ttl: Seconds = DEFAULT_RESULT_TTL
    #: Largest encoded job result in bytes; one over the server's max_payload travels
    #: through the object store, one over this fails the job (dead letter ``oversize``).
    max_bytes: Positive = DEFAULT_MAX_BYTES


class SupervisorConfig(_Section, frozen=True, kw_only=True):
    """``[supervisor]``: the root of the tree and each queue's supervisor."""

    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] = "one_for_one"
    #: At most this many restarts (per queue process) within ``within`` seconds.
    max_restarts: Count = 3
    within: Seconds = 10.0
    #: Bound on a whole graceful stop; past it every process is killed.
    shutdown_timeout: Seconds = 60.0


class ActorConfig(_Section, frozen=True, kw_only=True):
    """``[[actors]]``: a user actor class run as supervised processes."""

    name: Name
    cls: ClassPath = msgspec.field(name="class")
    processes: Positive = 1
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    mailbox: Literal["at_most_once", "durable"] = "at_most_once"
    #: Positional and keyword arguments of the class's ``__init__`` (TOML values).
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


class LoggingConfig(_Section, frozen=True, kw_only=True):
    """``[logging]``: what ``actorq up`` and its processes log, and how."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"


class MetricsConfig(_Section, frozen=True, kw_only=True):
    """``[metrics]``: the Prometheus endpoint of ``actorq up`` (off without a port)."""

    #: Serve ``/metrics`` on this port; none: no endpoint.
    port: Port | None = None
    #: The address it listens on: loopback unless set (e.g. ``"0.0.0.0"``).
    host: str = "127.0.0.1"


class TracingConfig(_Section, frozen=True, kw_only=True):
    """``[tracing]``: OpenTelemetry in the processes of ``actorq up`` (the
    ``actorq[otel]`` extra; see docs/jobs.md#traces)."""

    #: ``"module:function"`` called with no arguments first thing in every process
    #: ``actorq up`` starts: set the tracer provider (SDK, exporter) there.
    setup: ClassPath | None = None


class SecurityConfig(_Section, frozen=True, kw_only=True):
    """``[security]``: the HMAC key for pickled payloads, by reference, never inline."""

    #: Name of the environment variable holding the hex signing key.
    signing_key_env: str | None = None
    #: Name of the environment variable holding older hex keys, comma-separated, still
    #: accepted by workers (never used to sign) while a key is rotated.
    previous_signing_keys_env: str | None = None
    #: Codecs whose jobs workers decode; jobs in others are dead-lettered. List only
    #: ``"safe"`` where untrusted code can publish jobs.
    codecs: list[str] = msgspec.field(default_factory=lambda: ["pickle", "safe"])
    #: Packages the ``safe`` codec may import job functions from; leave it out to allow
    #: any importable callable (``os:system`` included).
    safe_allow: list[str] | None = None


class DashboardConfig(_Section, frozen=True, kw_only=True):
    """``[dashboard]``: the web dashboard, served inside ``actorq up`` when enabled."""

    enabled: bool = False
    #: Loopback by default: put a proxy with TLS in front before exposing it.
    host: str = "127.0.0.1"
    port: Port = 8765
    #: The token for viewing and actions; prefer ``ACTORQ_DASHBOARD_TOKEN``. Without
    #: one, a random token is made at start and printed in the login URL.
    token: str | None = None
    #: Viewing needs no token (actions still do).
    read_only: bool = False


class Config(_Section, frozen=True, kw_only=True):
    """A whole ``actorq up`` configuration."""

    namespace: Name = DEFAULT_NAMESPACE
    #: Modules every queue actor imports at start (where job functions live).
    imports: list[str] = []
    #: Directories put first on ``sys.path`` of every worker (relative: to the cwd).
    sys_path: list[str] = []
    nats: NatsConfig = NatsConfig()
    queues: list[QueueConfig] = msgspec.field(default_factory=lambda: [QueueConfig(name="default")])
    scheduler: SchedulerConfig = SchedulerConfig()
    results: ResultsConfig = ResultsConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    actors: list[ActorConfig] = []
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()
    security: SecurityConfig = SecurityConfig()
    dashboard: DashboardConfig = DashboardConfig()

    def queue(self, name: str) -> QueueConfig:
        """The queue called ``name``; :class:`KeyError` if there is none."""
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(name)

    def signer(self, environ: Mapping[str, str] | None = None) -> Signer | None:
        """The HMAC signer that ``[security]`` names, for clients that load this config:
        ``SyncClient(url, signing_key=config.signer())``. Without ``signing_key_env``,
        the key ``actorq up`` generated in ``[nats] data_dir``; ``None`` without any."""
        env = os.environ if environ is None else environ
        var = self.security.signing_key_env
        if var is None:
            stored = read_credentials(credentials_path(self.nats.data_dir))
            if stored is None or not stored.signing_key:
                return None
            return Signer(bytes.fromhex(stored.signing_key))
        previous_var = self.security.previous_signing_keys_env
        previous = env.get(previous_var, "") if previous_var else ""
        return Signer(
            bytes.fromhex(env.get(var, "")),
            previous=[bytes.fromhex(k.strip()) for k in previous.split(",") if k.strip()],
        )


# -- loading ---------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    check_imports: bool = True,
) -> Config:
    """Read, validate and return the config in ``path``, with ``ACTORQ_*`` overrides.

    ``environ`` defaults to :data:`os.environ`. With ``check_imports`` the modules in
    ``imports`` must be findable and every actor class importable (relative to the
    current directory and ``sys_path``, as the workers will see them).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(str(file), None, "", f"cannot read it: {exc.strerror}") from exc
    return loads_config(text, source=str(file), environ=environ, check_imports=check_imports)


def loads_config(
    text: str,
    *,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    check_imports: bool = True,
) -> Config:
    """Like :func:`load_config`, for TOML ``text``; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        raise ConfigFileError(source, line, "", f"not valid TOML: {exc}") from None
    # The file alone first, strictly, so its errors point at its lines.
    _convert(data, text, source, strict=True)
    env = os.environ if environ is None else environ
    try:
        applied = env_overrides(data, env, Config)
    except OverrideError as exc:
        where = f"environment variable {exc.var}"
        raise ConfigFileError(where, None, show(exc.path), exc.problem) from None
    config = _convert(data, text, source, strict=False, applied=applied)
    _check(config, text, source, applied, env, check_imports=check_imports)
    return config


def _convert(
    data: dict[str, Any],
    text: str,
    source: str,
    *,
    strict: bool,
    applied: dict[KeyPath, str] | None = None,
) -> Config:
    try:
        return msgspec.convert(data, Config, strict=strict)
    except msgspec.ValidationError as exc:
        raise _error_from_validation(str(exc), text, source, applied or {}) from None


def _error_from_validation(
    message: str, text: str, source: str, applied: dict[KeyPath, str]
) -> ConfigFileError:
    problem, _, where = message.rpartition(" - at `")
    if not problem:
        # msgspec names no path for a problem in the document itself (a top-level key).
        problem, where = message, "$"
    path = parse_path(where.rstrip("`"))
    unknown = re.match(r"Object contains unknown field `(.+)`", problem)
    if unknown:
        # msgspec points at the table; the key itself is what the user must fix.
        path = (*path, unknown.group(1))
        problem = f"unknown key; valid keys here: {', '.join(_valid_keys(path[:-1]))}"
    missing = re.match(r"Object missing required field `(.+)`", problem)
    if missing:
        problem = f"required key `{missing.group(1)}` is missing"
    if problem.startswith("Invalid enum value"):
        values = _literal_values(path)
        if values:
            problem += f"; valid values: {', '.join(repr(v) for v in values)}"
    problem = problem.replace("Expected", "expected").replace("Invalid", "invalid")
    if "matching regex" in problem and "]*:[A-Za-z_]" in problem:
        # The pattern of a "module:name" key says nothing to whoever wrote the value.
        example = "myapp.actors:Greeter" if path[-1:] == ("class",) else "myapp.telemetry:setup"
        problem = f'expected "package.module:name", e.g. "{example}"'
    elif "matching regex" in problem and _NAME_PATTERN in problem:
        problem = "expected a name of letters, digits, '_' and '-' (at most 64)"
    var = _env_cause(path, applied)
    if var is not None:
        return ConfigFileError(f"environment variable {var}", None, show(path), problem)
    return ConfigFileError(source, locate(text, path), show(path), problem)


def _env_cause(path: KeyPath, applied: dict[KeyPath, str]) -> str | None:
    for end in range(len(path), 0, -1):
        if path[:end] in applied:
            return applied[path[:end]]
    return None


def _literal_values(path: KeyPath) -> list[Any]:
    """The allowed values of the ``Literal`` field at ``path``, or ``[]``."""
    parent: Any = Config
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        parent = struct_of(field_types(parent).get(part))
        if parent is None:
            return []
    if not path or isinstance(path[-1], int):
        return []
    tp = field_types(parent).get(path[-1])
    for candidate in (tp, *typing.get_args(tp)):  # Literal, or Literal | None
        if typing.get_origin(candidate) is Literal:
            return list(typing.get_args(candidate))
    return []


def _valid_keys(path: KeyPath) -> list[str]:
    struct: Any = Config
    for part in path:
        if isinstance(part, int):
            continue
        struct = struct_of(field_types(struct).get(part))
        if struct is None:
            return []
    return list(field_types(struct))


# -- checks beyond types ---------------------------------------------------------------


def _check(
    config: Config,
    text: str,
    source: str,
    applied: dict[KeyPath, str],
    environ: Mapping[str, str],
    *,
    check_imports: bool,
) -> None:
    def fail(path: KeyPath, problem: str) -> ConfigFileError:
        var = _env_cause(path, applied)
        if var is not None:
            return ConfigFileError(f"environment variable {var}", None, show(path), problem)
        return ConfigFileError(source, locate(text, path), show(path), problem)

    names: list[tuple[str, list[str]]] = [
        ("queue", [q.name for q in config.queues]),
        ("actor", [a.name for a in config.actors]),
    ]
    for kind, items in names:
        for i, name in enumerate(items):
            if name in items[:i]:
                raise fail((f"{kind}s", i, "name"), f"a second {kind} named {name!r}")
    security = config.security
    if not security.codecs:
        raise fail(("security", "codecs"), 'empty: workers would refuse every job; e.g. ["safe"]')
    if security.previous_signing_keys_env and not security.signing_key_env:
        raise fail(
            ("security", "previous_signing_keys_env"),
            "set signing_key_env too: previous keys are only accepted next to a current one",
        )
    for field, var, many in (
        ("signing_key_env", security.signing_key_env, False),
        ("previous_signing_keys_env", security.previous_signing_keys_env, True),
    ):
        if var is not None:
            problem = _check_keys(var, environ.get(var), many=many)
            if problem:
                raise fail(("security", field), problem)
    if check_imports:
        with _import_paths(config.sys_path):
            for i, module in enumerate(config.imports):
                problem = _find_module(module)
                if problem:
                    raise fail(("imports", i), problem)
            for i, actor in enumerate(config.actors):
                problem = _import_class(actor.cls)
                if problem:
                    raise fail(("actors", i, "class"), problem)
            if config.tracing.setup is not None:
                problem = _find_module(config.tracing.setup.partition(":")[0])
                if problem:
                    raise fail(("tracing", "setup"), problem)


def _check_keys(var: str, value: str | None, *, many: bool) -> str | None:
    if not value:
        return f"the environment variable {var} is not set; export the hex key there"
    for key in value.split(",") if many else [value]:
        try:
            if len(bytes.fromhex(key.strip())) < 16:
                return f"{var} holds a key under 16 bytes; use e.g. `openssl rand -hex 32`"
        except ValueError:
            return f"{var} is not hex; generate a key with `openssl rand -hex 32`"
    return None


@contextmanager
def _import_paths(extra: list[str]) -> Iterator[None]:
    """The import path the workers get: ``sys_path``, then the current directory
    (``python -m`` puts it first), then ours."""
    added = [str(Path(p).resolve()) for p in extra] + [os.getcwd()]
    saved = list(sys.path)
    sys.path[:0] = added
    try:
        yield
    finally:
        sys.path[:] = saved


def _find_module(name: str) -> str | None:
    # find_spec, not import: a worker module's import may have side effects that
    # belong in the worker, and `config check` must be harmless.
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        return f"module {name!r} cannot be found: {exc}"
    if found is None:
        return (
            f"module {name!r} cannot be found; run from the directory that holds it "
            "or add that directory to `sys_path`"
        )
    return None


def _import_class(path: str) -> str | None:
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        return f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
    for part in attr.split("."):
        if not hasattr(obj, part):
            return f"module {module_name!r} has no attribute {attr!r}"
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        return f"{path} is not a class"
    return None
