"""``actorq up``'s log of its children: each exit and restart, and one record per crash.

The supervision tree emits events (:mod:`supervisors.events`); :func:`log_child_events`
turns each into one line on the ``actorq.up.children`` logger, with the child's name
(its path in the tree), pid, exit reason and restart count::

    child actorq/queue-default/default-1 (pid 4242) exited: killed by SIGKILL; restarts so far 0
    child actorq/queue-default/default-1 restarted (pid 4250), restart 1

Each record also carries ``child``, ``child_pid``, ``reason`` and ``restarts`` as
attributes, which the JSON log format prints as fields.

:func:`log_crash` is what a child process does with an exception that ends it: one
record with its traceback, the lone exception of nested exception groups rather than
the groups themselves.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable

import trio

from supervisors import ChildExited, ChildRestarted, SupervisorEscalated, SupervisorEvent

__all__ = ["CHILD_FIELDS", "log_child_events", "log_crash", "lone_exception", "plain_reason"]

log = logging.getLogger("actorq.up.children")

#: The attributes a child's log record carries (what the JSON format adds as fields).
CHILD_FIELDS = ("child", "child_pid", "reason", "restarts")


#: The supervisors library's advice in a start failure's reason: a child of ``actorq
#: up`` logs its own crash (:func:`log_crash`), so here it only sends people astray.
_RUN_ALONE = "; run it on its own to see its error output"


def plain_reason(text: str) -> str:
    """An exit reason as ``actorq up`` shows it: without the advice to run the child
    alone, and a nested start failure without its module path."""
    return text.replace(_RUN_ALONE, "").replace("exception: supervisors.exceptions.", "")


class _LoggedHere(logging.Filter):
    """Drops the supervisors library's own record of an escalation: the one below
    names the child by its path, and one line per event is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("supervisor %r gives up")


async def log_child_events(events: trio.MemoryReceiveChannel[SupervisorEvent]) -> None:
    """Log every exit, restart and escalation until ``events`` ends (or is cancelled;
    it is closed then, which unsubscribes it)."""
    library = logging.getLogger("supervisors")
    duplicates = _LoggedHere()
    library.addFilter(duplicates)
    try:
        with events:
            await _log_events(events)
    finally:
        library.removeFilter(duplicates)


async def _log_events(events: AsyncIterable[SupervisorEvent]) -> None:
    restarts: dict[str, int] = {}
    async for event in events:
        if isinstance(event, ChildExited):
            name = f"{event.supervisor}/{event.child_id}"
            if event.reason.kind == "shutdown":
                level = logging.INFO  # stopped on purpose: part of a stop or restart
            elif event.reason.abnormal:
                level = logging.ERROR
            else:
                level = logging.WARNING  # a permanent child that returned: restarted
            count = restarts.get(name, 0)
            reason = plain_reason(event.reason.describe())
            pid = f" (pid {event.pid})" if event.pid is not None else ""  # None: a supervisor
            log.log(
                level,
                "child %s%s exited: %s; restarts so far %d", name, pid, reason, count,
                extra={"child": name, "child_pid": event.pid, "reason": reason,
                       "restarts": count},
            )  # fmt: skip
        elif isinstance(event, ChildRestarted):
            name = f"{event.supervisor}/{event.child_id}"
            restarts[name] = event.restarts
            pid = f" (pid {event.pid})" if event.pid is not None else ""
            log.warning(
                "child %s restarted%s, restart %d", name, pid, event.restarts,
                extra={"child": name, "child_pid": event.pid, "restarts": event.restarts},
            )  # fmt: skip
        elif isinstance(event, SupervisorEscalated):
            name = f"{event.supervisor}/{event.child_id}"
            reason = plain_reason(event.reason.describe())
            log.error(
                "supervisor %s gives up: child %s failed too often (last: %s)",
                event.supervisor, name, reason, extra={"child": name, "reason": reason},
            )  # fmt: skip


def lone_exception(exc: BaseException) -> BaseException:
    """The single exception inside nested exception groups (Trio nurseries wrap one
    failure in a group per level), or ``exc`` itself when there are several."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def log_crash(target: str, exc: BaseException) -> None:
    """One ERROR record for the exception that ends a child process, with its traceback."""
    lone = lone_exception(exc)
    logging.getLogger("actorq.runtime.child").error(
        "%s crashed: %s: %s", target, type(lone).__name__, lone,
        exc_info=(type(lone), lone, lone.__traceback__),
    )  # fmt: skip
