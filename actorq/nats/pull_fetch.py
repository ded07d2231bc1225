"""One pull request per fetch, waited for until the server ends it (asyncio side).

nats-py's ``PullSubscription.fetch(batch, timeout)`` asks the server for a pull that
expires 0.1 ms before the client's own deadline. When the server's "408 Request
Timeout" for an idle pull arrives a little late (a loaded machine), it lands in the
*next* fetch, which takes it for the answer to its first request and sends a second
one: two pulls are then open, and the next job is delivered to one of them while the
fetch waits on the other, which ends only at its expiry: a job sent after a quiet
second waited about a second (issue 12, item 13).

:func:`fetch_batch` sends one request per fetch (``batch``, ``expires``, ``no_wait``:
the server answers at once with what there is, or waits up to ``expires`` for the
first message and then ends the pull with "404 No Messages" once nothing more is
pending), and the client waits for that end, up to ``expires`` plus a grace period,
so no request of an earlier fetch is left open to answer in the next one. If one
is (the client gave up waiting for its end), the next fetch counts it: its late end
does not end that fetch while the fetch's own request is still open. Messages
that still arrive for an earlier request (after a cut-short wait, a reconnect) are
kept and handed out first, never more than ``batch`` at a time; stray status
messages are dropped.

Uses nats-py internals of the pull subscription (``_sub``, ``_nms``, ``_deliver``,
``_nc``); ``tests/nats/test_nats_py_internals.py`` checks they exist.
"""

from __future__ import annotations

import json
import time
from typing import Any

import nats.errors
import nats.js.errors

__all__ = ["GRACE", "fetch_batch"]

#: Seconds past ``expires`` the client waits for the server to end its pull request.
GRACE = 0.5

_HEARTBEAT = "100"
#: Statuses that end a pull request without it being an error.
_ENDS = ("404", "408", "409")


def _status(msg: Any) -> str | None:
    headers = msg.headers
    if headers is None:
        return None
    status: str | None = headers.get("Status")
    return status


def _take_pending(sub: Any, batch: int) -> list[Any]:
    """Up to ``batch`` messages already delivered (for an earlier request)."""
    queue = sub._pending_queue
    msgs: list[Any] = []
    while len(msgs) < batch and not queue.empty():
        msg = queue.get_nowait()
        sub._pending_size -= len(msg.data)
        queue.task_done()
        if _status(msg) is None:
            msgs.append(msg)
    return msgs


class _Open:
    """How many of this subscription's pull requests may still be open on the server."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def _open_requests(psub: Any) -> _Open:
    state: _Open | None = getattr(psub, "_actorq_open", None)
    if state is None:
        state = _Open()
        psub._actorq_open = state
    return state


async def fetch_batch(psub: Any, batch: int, expires: float) -> list[Any]:
    """Up to ``batch`` messages of pull subscription ``psub``; ``[]`` when none came
    within ``expires`` seconds. Raises nats-py's ``APIError`` for an error status
    (e.g. the consumer was deleted) and its connection errors."""
    sub = psub._sub
    msgs = _take_pending(sub, batch)
    if msgs:
        return msgs
    open_ = _open_requests(psub)
    request = {"batch": batch, "expires": int(expires * 1e9), "no_wait": True}
    await psub._nc.publish(psub._nms, json.dumps(request).encode(), psub._deliver)
    open_.count += 1
    deadline = time.monotonic() + expires + GRACE
    while len(msgs) < batch:
        left = deadline - time.monotonic()
        if left <= 0:
            open_.count = 1  # this one's end may still come, late; earlier ones' came
            break
        try:
            msg = await sub.next_msg(timeout=left)
        except (TimeoutError, nats.errors.TimeoutError):
            open_.count = 1
            break
        status = _status(msg)
        if status is None:
            msgs.append(msg)
        elif status == _HEARTBEAT:
            continue
        elif status in _ENDS:
            # The end of some request of ours. With nothing received yet, it ends
            # this fetch only if it is the last one open: an earlier request's late
            # end must not leave this one open while the fetch moves on.
            open_.count = max(0, open_.count - 1)
            if msgs or open_.count == 0:
                break
        else:
            raise nats.js.errors.APIError.from_msg(msg)
    else:
        open_.count = max(0, open_.count - 1)  # a full batch ends a request silently
    return msgs
