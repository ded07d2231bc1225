"""The entry point of every process ``actorq up`` starts: set up, then run the real target.

``actorq up`` wraps each child's target (``actorq.runtime.children:queue_actor``,
``actorq.runtime.children:result_actor``, ...) as ``actorq.runtime.child:main TARGET *ARGS``. Before
calling the target this:

1. configures logging from the config's ``[logging]`` (text or JSON lines), so every
   process of the tree logs alike (the targets' own ``basicConfig`` then does nothing),
   and calls the ``[tracing] setup`` hook, if any (a tracer provider per process);
2. puts the NATS connection options (user/password, token, creds, TLS) into the
   target's settings (their ``connect`` field, which each actor passes to
   :func:`actorq.nats.connection.open_nats`), and a queue actor's signing keys into its.

Secrets travel in the child's environment (``ACTORQ_UP_CHILD``), never on its command
line, so ``ps`` does not show them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from actorq.constants import ENV_CHILD
from actorq.jobs.job_log import JOB_FIELDS, JobLines
from actorq.runtime.child_log import CHILD_FIELDS, log_crash
from supervisors import on_standby
from supervisors.child_runtime import resolve_target, run_standby_hook

__all__ = ["ENV_CHILD", "JsonFormatter", "TextFormatter", "configure_logging", "main"]

#: Environment variable carrying the child's setup (JSON) from ``actorq up``.

_QUEUE_TARGET = "actorq.runtime.children:queue_actor"
#: Targets whose first argument is a settings struct (JSON) with a ``connect`` field.
_SETTINGS_TARGETS = frozenset(
    {
        _QUEUE_TARGET,
        "actorq.runtime.children:result_actor",
        "actorq.runtime.children:scheduler",
        "actorq.actors.host:main",
    }
)


#: msgspec's JSON encoder: a tenth of json.dumps's time per line, which counts at one
#: line per job.
_ENCODER = msgspec.json.Encoder()
#: Record attributes the JSON format adds as fields when a record has them.
_FIELDS = (*JOB_FIELDS, *CHILD_FIELDS)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``pid``, ``msg``
    (and ``exc`` with the traceback when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, JobLines):  # a batch of finished jobs: one line each
            return "\n".join(
                self._format(record, text, fields) for text, fields in record.msg.each()
            )
        return self._format(record, record.getMessage(), None)

    def _format(
        self, record: logging.LogRecord, msg: str, fields: dict[str, Any] | None
    ) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": msg,
        }
        if fields is not None:
            entry.update(fields)
            return _ENCODER.encode(entry).decode()
        # A job's record (actorq.jobs.job_log) and a child's (actorq.runtime.child_log)
        # carry their figures as attributes: fields here, not only words in msg.
        for name in _FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER[PID] MESSAGE`` lines; a batch of finished jobs
    (:class:`~actorq.jobs.job_log.JobLines`) as one such line per job."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s[%(process)d] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        lines = record.msg
        if not isinstance(lines, JobLines):
            return super().format(record)
        prefix = super().format(_with_msg(record, ""))
        return "\n".join(prefix + text for text, _ in lines.each())


def _with_msg(record: logging.LogRecord, msg: str) -> logging.LogRecord:
    copy = logging.makeLogRecord(record.__dict__)
    copy.msg, copy.args = msg, None
    return copy


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level``, as text lines or JSON lines (``fmt="json"``)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime


def _fill_settings(target: str, args: tuple[str, ...], setup: dict[str, Any]) -> tuple[str, ...]:
    """Put the secrets ``actorq up`` passed through the environment into the settings.

    Every actor target takes its settings as JSON in ``args[0]``; they get the whole
    ``connect`` options (credentials, TLS), and a queue actor its signing keys, which
    its :func:`~actorq.nats.connection.open_nats` and signature check then use explicitly.
    """
    if target not in _SETTINGS_TARGETS or not args:
        return args
    settings = json.loads(args[0])
    if setup.get("connect"):
        settings["connect"] = setup["connect"]
    if target == _QUEUE_TARGET and setup.get("signing_key"):
        settings["signing_key_hex"] = setup["signing_key"]
        settings["previous_signing_keys_hex"] = list(setup.get("previous_signing_keys", []))
    return (json.dumps(settings), *args[1:])


def _setup_tracing(path: str, sys_path: list[str]) -> None:
    """Call the config's ``[tracing] setup`` (``"module:function"``), which sets this
    process's OpenTelemetry tracer provider; the module is found through the config's
    ``sys_path`` as job modules are."""
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module_name, _, func_name = path.partition(":")
    func: Any = importlib.import_module(module_name)
    for part in func_name.split("."):
        func = getattr(func, part)
    func()


def _prepare(target: str, *args: str) -> None:
    """A warm standby of a wrapped child: import the real target and run its own
    standby hook (a queue actor's imports its job modules)."""
    run_standby_hook(resolve_target(target), *args)


@on_standby(_prepare)
def main(ready: Callable[[], None], target: str, *args: str) -> Any:
    """Set up as ``ACTORQ_UP_CHILD`` says, then run ``target(ready, *args)``."""
    setup = json.loads(os.environ.pop(ENV_CHILD, "{}"))
    log_setup = setup.get("logging", {})
    configure_logging(log_setup.get("level", "INFO"), log_setup.get("format", "text"))
    try:
        if "tracing" in setup:
            _setup_tracing(setup["tracing"]["setup"], setup["tracing"]["sys_path"])
        module_name, _, func_name = target.partition(":")
        module = importlib.import_module(module_name)
        args = _fill_settings(target, args, setup)
        func = getattr(module, func_name)
        if inspect.iscoroutinefunction(func):
            import trio

            return trio.run(functools.partial(func, ready, *args))
        return func(ready, *args)
    except Exception as exc:
        # One record with the traceback, in the configured format, instead of Python's
        # print of nested exception groups; the exit status tells the supervisor.
        log_crash(target, exc)
        return 1
