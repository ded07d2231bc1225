"""Translation of nats-py exceptions into actorq's own tree."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import nats.errors
import nats.js.errors

from actorq.constants import WRONG_LAST_SEQUENCE
from actorq.exceptions import (
    BrokerError,
    BrokerTimeout,
    Conflict,
    ConnectionFailed,
    KeyExists,
    NotFound,
)

__all__ = ["FETCH_RETRY", "is_transient", "translate_errors"]

#: Seconds before a pull that failed for NATS trouble (reconnecting, a cluster electing
#: a stream leader) is tried again; the fetch reports "nothing came" meanwhile.
FETCH_RETRY = 0.5


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn nats-py exceptions into actorq's, with what was being done."""
    try:
        yield
    except nats.js.errors.KeyWrongLastSequenceError as exc:
        raise KeyExists(f"{what}: the key exists already (or changed meanwhile)") from exc
    except nats.js.errors.APIError as exc:
        if getattr(exc, "err_code", None) == WRONG_LAST_SEQUENCE:
            raise Conflict(f"{what}: someone else wrote first; read again and retry") from exc
        if isinstance(exc, nats.js.errors.NotFoundError):
            detail = getattr(exc, "description", None) or exc
            raise NotFound(f"{what}: not found ({detail})") from exc
        raise BrokerError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except nats.errors.NoRespondersError as exc:
        raise NotFound(f"{what}: no responders (is the stream or service there?)") from exc
    except nats.js.errors.NoStreamResponseError as exc:
        raise NotFound(f"{what}: no stream listens on that subject; provision it first") from exc
    except (TimeoutError, nats.errors.TimeoutError) as exc:
        raise BrokerTimeout(f"{what}: NATS did not answer in time") from exc
    except nats.errors.NoServersError as exc:
        raise ConnectionFailed(f"{what}: no NATS server reachable") from exc
    except nats.errors.Error as exc:
        raise BrokerError(f"{what}: {type(exc).__name__}: {exc}") from exc


# NATS in trouble, not the message: worth retrying however often.
_TRANSIENT_CAUSES = (
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.FlushTimeoutError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (an actorq error from :func:`translate_errors`, or a raw one)
    says NATS is unreachable or busy rather than that the request itself is bad."""
    if isinstance(exc, BrokerTimeout | ConnectionFailed | TimeoutError):
        return True
    cause = exc.__cause__ if isinstance(exc, BrokerError) else exc
    return isinstance(cause, _TRANSIENT_CAUSES)
