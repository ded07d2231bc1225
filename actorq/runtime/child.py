"""The entry point of every process ``actorq up`` starts: set up, then run the real target.

``actorq up`` wraps each child's target (``actorq.jobs.queue_actor:main``,
``actorq.jobs.result_actor:main``, ...) as ``actorq.runtime.child:main TARGET *ARGS``. Before
calling the target this:

1. configures logging from the config's ``[logging]`` (text or JSON lines), so every
   process of the tree logs alike (the targets' own ``basicConfig`` then does nothing);
2. binds the NATS connection options (user/password, token, creds, TLS) as defaults of
   :func:`actorq.nats.connection.open_nats` in this process, since the actors' settings
   carry only URLs;
3. hands a queue actor the signing key from the environment variable the config names.

Secrets travel in the child's environment (``ACTORQ_UP_CHILD``), never on its command
line, so ``ps`` does not show them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import json
import logging
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["ENV_CHILD", "JsonFormatter", "configure_logging", "main", "ssl_context"]

#: Environment variable carrying the child's setup (JSON) from ``actorq up``.
ENV_CHILD = "ACTORQ_UP_CHILD"

_QUEUE_TARGET = "actorq.jobs.queue_actor:main"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``pid``, ``msg``
    (and ``exc`` with the traceback when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level``, as text lines or JSON lines (``fmt="json"``)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s[%(process)d] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime


def ssl_context(cert: str | None, key: str | None, ca: str | None) -> ssl.SSLContext | None:
    """A client TLS context from PEM paths, or ``None`` when none is given."""
    if not (cert or ca):
        return None
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def connect_options(nats: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`~actorq.open_nats` from ``[nats]`` auth and TLS keys."""
    options: dict[str, Any] = {
        "user": nats.get("user"),
        "password": nats.get("password"),
        "token": nats.get("token"),
        "credentials": nats.get("creds"),
        "tls": ssl_context(nats.get("tls_cert"), nats.get("tls_key"), nats.get("tls_ca")),
        "tls_hostname": nats.get("tls_hostname"),
    }
    return {k: v for k, v in options.items() if v is not None}


def _bind_connect_options(options: dict[str, Any]) -> None:
    """Make ``options`` the defaults of ``open_nats`` everywhere in this process.

    The actors import ``open_nats`` by name, so the module attribute and every
    already-imported ``actorq`` module's binding are replaced; explicit arguments still
    win over these defaults.
    """
    from actorq.nats import connection as connection

    original = connection.open_nats

    @contextlib.asynccontextmanager
    async def open_nats(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with original(*args, **{**options, **kwargs}) as conn:
            yield conn

    for name, module in list(sys.modules.items()):
        if (name == "actorq" or name.startswith("actorq.")) and getattr(
            module, "open_nats", None
        ) is original:
            module.open_nats = open_nats  # type: ignore[attr-defined]


def main(ready: Callable[[], None], target: str, *args: str) -> Any:
    """Set up as ``ACTORQ_UP_CHILD`` says, then run ``target(ready, *args)``."""
    setup = json.loads(os.environ.pop(ENV_CHILD, "{}"))
    log_setup = setup.get("logging", {})
    configure_logging(log_setup.get("level", "INFO"), log_setup.get("format", "text"))
    module_name, _, func_name = target.partition(":")
    module = importlib.import_module(module_name)
    options = connect_options(setup.get("nats", {}))
    if options:
        _bind_connect_options(options)
    key_env = setup.get("signing_key_env")
    if target == _QUEUE_TARGET and key_env and args:
        settings = json.loads(args[0])
        settings["signing_key_hex"] = os.environ.get(key_env, "")
        previous_env = setup.get("previous_signing_keys_env")
        if previous_env:
            previous = os.environ.get(previous_env, "").split(",")
            settings["previous_signing_keys_hex"] = [k.strip() for k in previous if k.strip()]
        args = (json.dumps(settings), *args[1:])
    func = getattr(module, func_name)
    if inspect.iscoroutinefunction(func):
        import trio

        return trio.run(functools.partial(func, ready, *args))
    return func(ready, *args)
