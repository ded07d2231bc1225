"""The process-wide default :class:`~actorq.SyncClient` behind ``actorq.send``.

``actorq.configure(...)`` says how it connects (lazily, on the next send);
``actorq.send(queue, fn, ...)`` enqueues with it from any thread of ordinary code.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from actorq.constants import DEFAULT_NAMESPACE, ENV_NAMESPACE, ENV_NATS_URL
from actorq.jobs.sync_client import SyncClient, SyncJob
from actorq.wire.codec import Codec, Signer

__all__ = ["configure", "default_client", "send"]

_default: SyncClient | None = None
_default_settings: dict[str, Any] | None = None
_default_lock = threading.Lock()


def configure(
    url: str | Sequence[str] | None = None,
    *,
    namespace: str | None = None,
    codec: str | Codec = "pickle",
    signing_key: bytes | Signer | None = None,
    **connect_options: Any,
) -> None:
    """Set how the default client (used by :func:`send`) connects.

    ``url`` and ``namespace`` default to ``$ACTORQ_NATS_URL`` / ``$ACTORQ_NAMESPACE``.
    Connecting is lazy (on the next :func:`send`); a default client already open is
    closed, so the new settings apply from the next call on. Example::

        actorq.configure(url="nats://queue.internal:4222", namespace="shop",
                         signing_key=os.environb[b"ACTORQ_KEY"])
        actorq.send("emails", send_mail, to="a@b.example")
    """
    global _default, _default_settings
    settings: dict[str, Any] = {
        "url": url if url is not None else _env_urls(),
        "namespace": namespace if namespace is not None else _env_namespace(),
        "codec": codec,
        "signing_key": signing_key,
        **connect_options,
    }
    with _default_lock:
        old, _default, _default_settings = _default, None, settings
    if old is not None:
        old.close()


def default_client() -> SyncClient:
    """The process-wide default :class:`SyncClient`, connected on first use.

    Settings come from :func:`configure`, else ``$ACTORQ_NATS_URL`` and
    ``$ACTORQ_NAMESPACE`` (default ``actorq``). What is left unset (the URL, the
    credentials, the signing key) comes from a local ``actorq up``'s credentials file
    (see :func:`actorq.open_client`), else the URL is ``nats://127.0.0.1:4222``.
    """
    global _default
    client = _default
    if client is not None and not client.closed:
        return client
    with _default_lock:
        # Checked again under the lock: only one thread connects.
        if _default is None or _default.closed:
            settings = _default_settings
            if settings is None:
                settings = {"url": _env_urls(), "namespace": _env_namespace()}
            _default = SyncClient(**settings)
        return _default


def send(queue: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> SyncJob:
    """Enqueue ``fn(*args, **kwargs)`` on ``queue`` with the default client; blocking.

    Example::

        import actorq
        job = actorq.send("emails", send_mail, to="a@b.example")
        job.result(timeout=30)   # optional: wait for the outcome

    For options (retries, timeout, job id) use :func:`default_client`:
    ``default_client().options(queue=..., max_retries=...).enqueue(...)``.
    """
    return default_client().send(queue, fn, *args, **kwargs)


def _env_urls() -> list[str] | None:
    # Comma-separated, like `actorq up`'s ACTORQ_NATS_URL. Unset or empty: None, so a
    # local runtime's credentials file (or the default URL) decides.
    urls = [u.strip() for u in os.environ.get(ENV_NATS_URL, "").split(",") if u.strip()]
    return urls or None


def _env_namespace() -> str:
    return os.environ.get(ENV_NAMESPACE) or DEFAULT_NAMESPACE
