"""The supervisor: starts children in order, restarts them by strategy, stops them in reverse.

One task per supervisor (its *loop*) owns all of its state and handles, one message at a
time, child exits, due restarts and requests from callers (``start_child`` ...). Each
running child is one *incarnation* task in the supervisor's nursery with its own cancel
scope; stopping a child cancels that scope and waits for the incarnation to finish
(a process incarnation SIGTERMs, waits, then SIGKILLs on its way out).

Because the loop is the only writer, there are no locks, and an exit that arrives for an
incarnation the supervisor is already stopping is recognised and ignored.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, NoReturn

import msgspec
import trio

from .events import (
    ChildExited,
    ChildRestarted,
    ChildStarted,
    EventBus,
    ExitReason,
    SupervisorEscalated,
    SupervisorEvent,
    now,
)
from .exceptions import (
    ChildNotFound,
    DuplicateChild,
    RestartIntensityExceeded,
    SpecError,
    StartError,
    SupervisorError,
    SupervisorStopped,
)
from .process_child import run_process
from .records import (
    Call,
    Child,
    Exited,
    Incarnation,
    Message,
    Reply,
    RestartDue,
    Stop,
    should_restart,
    stop_bound,
)
from .snapshot import ChildSnapshot, SupervisorState
from .spec import (
    Backoff,
    ChildSpec,
    ProcessSpec,
    Restart,
    Strategy,
    SupervisorSpec,
    TaskSpec,
)
from .standby import StandbyPool
from .task_child import run_task

__all__ = ["DEFAULT_BACKOFF", "Supervisor"]

log = logging.getLogger("supervisors")

DEFAULT_BACKOFF = Backoff()


class _Reporter(trio.TaskStatus[object]):
    """Forwards readiness to ``nursery.start`` and records what the child reported."""

    def __init__(self, outer: trio.TaskStatus[None], incarnation: Incarnation) -> None:
        self._outer = outer
        self._incarnation = incarnation
        self.is_started = False

    def started(self, value: object = None) -> None:
        if isinstance(value, int):
            self._incarnation.pid = value
        elif isinstance(value, Supervisor):
            self._incarnation.sub = value
        self.is_started = True
        if trio.current_effective_deadline() != -math.inf:
            self._incarnation.scope.shield = True
        # else the start itself is being cancelled: trio will not hand the child to the
        # supervisor's nursery, and a shield would keep it (and the start) alive forever.
        self._outer.started(None)


class Supervisor:
    """A running supervisor; get one from :func:`open_supervisor` or :func:`serve_supervisor`.

    Methods that change children (``start_child`` ...) are served one at a time by the
    supervisor's loop, after any exits already queued. Do not await them from a child
    that has not reported ready yet: the loop is waiting for that child.
    """

    def __init__(self, spec: SupervisorSpec, bus: EventBus, path: str) -> None:
        self.spec = spec
        """The spec this supervisor was started from (initial children and options)."""
        self.path = path
        """Slash-separated ids from the root supervisor to this one."""
        self._bus = bus
        self._state: SupervisorState = "starting"
        self._children: list[Child] = []
        self._restart_clock: deque[float] = deque()
        self._inbox_send, self._inbox = trio.open_memory_channel[Message](math.inf)
        self._nursery: trio.Nursery | None = None
        self._started_at = now()
        # Warm standbys (ProcessSpec(standby=True)), one per spec but for its id.
        self._standbys: dict[bytes, StandbyPool] = {}

    # ---- public API -------------------------------------------------------------------

    @property
    def id(self) -> str:
        """This supervisor's id."""
        return self.spec.id

    @property
    def state(self) -> SupervisorState:
        """``starting``, ``running``, ``stopping``, ``stopped`` or ``failed``."""
        return self._state

    def snapshot(self) -> ChildSnapshot:
        """This supervisor and its whole subtree, as data."""
        return ChildSnapshot(
            id=self.spec.id,
            kind="supervisor",
            pid=os.getpid(),
            state=self._state,
            started_at=self._started_at,
            children=tuple(self._child_snapshot(child) for child in self._children),
            standby_pids=self.standby_pids(),
        )

    def standby_pids(self) -> tuple[int, ...]:
        """PIDs of this supervisor's parked warm standbys (not children: they run nothing
        until a restart activates one)."""
        return tuple(p.pid for p in self._standbys.values() if p.pid is not None)

    def subscribe(self, max_buffer: float = 1024) -> trio.MemoryReceiveChannel[SupervisorEvent]:
        """A channel of every later event of the whole tree this supervisor belongs to.

        Use it as ``with sup.subscribe() as events: async for event in events: ...``.
        Events beyond ``max_buffer`` unread ones are dropped, never waited for.
        """
        return self._bus.subscribe(max_buffer)

    async def start_child(self, spec: ChildSpec) -> ChildSnapshot:
        """Add ``spec`` as the last child and start it; returns once it is ready.

        Raises :class:`DuplicateChild` if the id is taken, :class:`StartError` if it
        does not get ready (it is then not added).
        """
        if not isinstance(spec, TaskSpec | ProcessSpec | SupervisorSpec):
            raise SpecError(f"{spec!r} is not a TaskSpec, ProcessSpec or SupervisorSpec")

        async def op() -> ChildSnapshot:
            if self._find(spec.id) is not None:
                raise DuplicateChild(spec.id, self.path)
            child = Child(spec)
            self._children.append(child)
            try:
                await self._start(child, restart=False)
            except StartError:
                self._children.remove(child)
                raise
            return self._child_snapshot(child)

        result: ChildSnapshot = await self._call(op)
        return result

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child with its shutdown spec; it stays listed as ``stopped``.

        A ``temporary`` child is removed instead. ``restart_child`` starts it again.
        """

        async def op() -> None:
            child = self._get(child_id)
            child.restart_token = None
            await self._terminate(child)
            if child.spec.restart == Restart.TEMPORARY:
                self._children.remove(child)
            else:
                child.state = "stopped"

        await self._call(op)

    async def restart_child(self, child_id: str) -> ChildSnapshot:
        """Stop the child if it runs, then start it again; returns once it is ready.

        Counts as a restart in the snapshot, not against the restart intensity.
        """

        async def op() -> ChildSnapshot:
            child = self._get(child_id)
            child.restart_token = None
            await self._terminate(child)
            try:
                await self._start(child, restart=True)
            except StartError:
                child.state = "failed"
                raise
            return self._child_snapshot(child)

        result: ChildSnapshot = await self._call(op)
        return result

    async def delete_child(self, child_id: str) -> None:
        """Forget a stopped child's spec; its id can then be reused."""

        async def op() -> None:
            child = self._get(child_id)
            if child.current is not None or child.restart_token is not None:
                raise SupervisorError(
                    f"child {child_id!r} of {self.path!r} is {child.state}; "
                    "terminate_child() it before delete_child()"
                )
            self._children.remove(child)

        await self._call(op)

    def stop(self) -> None:
        """Ask the supervisor to stop all children (reverse order) and return normally."""
        with suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            self._inbox_send.send_nowait(Stop())

    # ---- the loop ---------------------------------------------------------------------

    async def _serve(self, task_status: trio.TaskStatus[Supervisor]) -> None:
        try:
            failure = await self._run_tree(task_status)
        finally:
            if self._state == "stopping":
                self._state = "stopped"
        if failure is not None:
            raise failure

    async def _run_tree(self, task_status: trio.TaskStatus[Supervisor]) -> SupervisorError | None:
        # The failure is returned, not raised, inside the nursery: raised there it would
        # come out wrapped in an exception group.
        failure: SupervisorError | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                for spec in self.spec.children:
                    child = Child(spec)
                    self._children.append(child)
                    await self._start(child, restart=False)
                self._state = "running"
                task_status.started(self)
                await self._loop()
            except (RestartIntensityExceeded, StartError) as exc:
                failure = exc
            finally:
                self._state = "failed" if failure is not None else "stopping"
                self._inbox_send.close()
                with trio.CancelScope(shield=True):
                    await self._stop_all()
                self._fail_pending_calls()
                nursery.cancel_scope.cancel()
        return failure

    async def _loop(self) -> None:
        async for message in self._inbox:
            if isinstance(message, Exited):
                await self._on_exit(message)
            elif isinstance(message, RestartDue):
                await self._on_restart_due(message.token)
            elif isinstance(message, Call):
                await self._serve_call(message)
            else:
                return

    async def _serve_call(self, call: Call) -> None:
        try:
            call.reply.value = await call.fn()
        except (ChildNotFound, DuplicateChild, StartError, SpecError) as exc:
            call.reply.error = exc
        except SupervisorError as exc:
            if isinstance(exc, RestartIntensityExceeded):
                call.reply.error = SupervisorStopped(self.path)
                raise
            call.reply.error = exc
        except BaseException:
            call.reply.error = SupervisorStopped(self.path)
            raise
        finally:
            call.reply.done.set()

    def _fail_pending_calls(self) -> None:
        while True:
            try:
                message = self._inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            if isinstance(message, Call):
                message.reply.error = SupervisorStopped(self.path)
                message.reply.done.set()

    async def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        if self._state != "running":
            raise SupervisorStopped(self.path)
        reply = Reply()
        try:
            self._inbox_send.send_nowait(Call(fn, reply))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise SupervisorStopped(self.path) from None
        await reply.done.wait()
        if reply.error is not None:
            raise reply.error
        return reply.value

    def _post(self, message: Message) -> None:
        with suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            self._inbox_send.send_nowait(message)

    # ---- starting and stopping one child ----------------------------------------------

    async def _start(self, child: Child, *, restart: bool) -> None:
        assert self._nursery is not None
        incarnation = Incarnation()
        child.current = incarnation
        child.state = "starting"
        try:
            await self._nursery.start(self._run_incarnation, child, incarnation)
        except StartError as exc:
            child.current = None
            child.state = "failed"
            child.last_exit = ExitReason("start_failed", text=str(exc))
            raise
        incarnation.started_at = now()
        incarnation.started_clock = trio.current_time()
        if child.current is incarnation and not incarnation.done.is_set():
            child.state = "running"
        kind = child.spec.kind
        if restart:
            child.restarts += 1
            self._bus.publish(
                ChildRestarted(
                    self.path, child.spec.id, kind, incarnation.pid, child.restarts, now()
                )
            )
        else:
            self._bus.publish(ChildStarted(self.path, child.spec.id, kind, incarnation.pid, now()))

    async def _run_incarnation(
        self,
        child: Child,
        incarnation: Incarnation,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        spec = child.spec
        reporter = _Reporter(task_status, incarnation)
        error: BaseException | None = None
        try:
            with incarnation.scope:
                try:
                    if isinstance(spec, ProcessSpec):
                        reason = await run_process(spec, reporter, self._standby_pool(spec))
                    elif isinstance(spec, TaskSpec):
                        reason = await run_task(spec, reporter)
                    else:
                        nested = Supervisor(spec, self._bus, f"{self.path}/{spec.id}")
                        incarnation.sub = nested
                        # Reuse the task runner for its start deadline and error mapping.
                        as_task = TaskSpec(
                            id=spec.id,
                            target=nested._serve,
                            shutdown=spec.shutdown,
                            start_timeout=spec.start_timeout,
                        )
                        reason = await run_task(as_task, reporter)
                except Exception as exc:
                    if not reporter.is_started:
                        raise
                    reason = ExitReason.from_exception(exc)
                    error = exc
            if incarnation.terminating or incarnation.scope.cancelled_caught:
                reason = ExitReason("shutdown")
            if reporter.is_started:
                self._post(Exited(child, incarnation, reason, error))
        finally:
            incarnation.done.set()

    async def _terminate(self, child: Child) -> None:
        incarnation = child.current
        if incarnation is None:
            return
        incarnation.terminating = True
        child.state = "stopping"
        incarnation.scope.cancel()
        with trio.move_on_after(stop_bound(child.spec)) as waited:
            await incarnation.done.wait()
        if waited.cancelled_caught:
            log.warning(
                "child %r of %r did not finish within its shutdown time; it keeps running "
                "until it honours cancellation",
                child.spec.id,
                self.path,
            )
        child.current = None
        child.last_exit = ExitReason("shutdown")
        self._bus.publish(
            ChildExited(
                self.path, child.spec.id, child.spec.kind, incarnation.pid, child.last_exit, now()
            )
        )

    def _standby_pool(self, spec: ProcessSpec) -> StandbyPool | None:
        """The warm standby pool for ``spec`` (started on first use), if it wants one."""
        if not spec.standby:
            return None
        key = msgspec.json.encode(msgspec.structs.replace(spec, id="standby"))
        pool = self._standbys.get(key)
        if pool is None:
            assert self._nursery is not None
            pool = self._standbys[key] = StandbyPool(spec, self.path, self._bus)
            self._nursery.start_soon(pool.keep)
        return pool

    async def _stop_all(self) -> None:
        # Spares first: none may be activated while the children stop, and none outlives us.
        for pool in self._standbys.values():
            await pool.close()
        for child in reversed(list(self._children)):
            child.restart_token = None
            if child.current is not None:
                await self._terminate(child)
                child.state = "stopped"

    # ---- exits and restarts -----------------------------------------------------------

    async def _on_exit(self, message: Exited) -> None:
        child, incarnation = message.child, message.incarnation
        if child.current is not incarnation or incarnation.terminating:
            return
        child.current = None
        child.last_exit = message.reason
        self._bus.publish(
            ChildExited(
                self.path, child.spec.id, child.spec.kind, incarnation.pid, message.reason, now()
            )
        )
        ran_for = trio.current_time() - incarnation.started_clock
        await self._handle_stop(child, message.reason, message.error, ran_for)

    async def _handle_stop(
        self, child: Child, reason: ExitReason, error: BaseException | None, ran_for: float
    ) -> None:
        if not should_restart(child.spec.restart, reason):
            if child.spec.restart == Restart.TEMPORARY:
                self._children.remove(child)
            child.state = "failed" if reason.abnormal else "stopped"
            return
        self._count_restart(child, reason, error)
        backoff: Backoff = self.spec.backoff
        if ran_for >= backoff.reset_after:
            child.consecutive = 0
        child.consecutive += 1
        group = self._restart_group(child)
        for other in reversed(group):
            if other is not child and other.current is not None:
                await self._terminate(other)
        restarting = []
        for other in group:
            if other is not child and other.spec.restart == Restart.TEMPORARY:
                self._children.remove(other)
                other.state = "stopped"
            else:
                restarting.append(other)
        token = object()
        for other in restarting:
            other.restart_token = token
            other.state = "restarting"
        delay = backoff.delay(child.consecutive)
        if delay <= 0:
            await self._on_restart_due(token)
        else:
            assert self._nursery is not None
            self._nursery.start_soon(self._restart_after, delay, token)

    def _count_restart(self, child: Child, reason: ExitReason, error: BaseException | None) -> None:
        clock = trio.current_time()
        self._restart_clock.append(clock)
        while self._restart_clock and self._restart_clock[0] < clock - self.spec.within:
            self._restart_clock.popleft()
        if len(self._restart_clock) > self.spec.max_restarts:
            self._escalate(child, reason, error)

    def _escalate(self, child: Child, reason: ExitReason, error: BaseException | None) -> NoReturn:
        child.state = "failed"
        self._bus.publish(SupervisorEscalated(self.path, child.spec.id, reason, now()))
        log.error(
            "supervisor %r gives up after child %r stopped (%s)",
            self.path,
            child.spec.id,
            reason.describe(),
        )
        raise RestartIntensityExceeded(
            self.path, child.spec.id, reason, self.spec.max_restarts, self.spec.within
        ) from error

    def _restart_group(self, child: Child) -> list[Child]:
        def alive(other: Child) -> bool:
            return other.current is not None or other.restart_token is not None

        strategy = self.spec.strategy
        if strategy == Strategy.ONE_FOR_ALL:
            return [c for c in self._children if c is child or alive(c)]
        if strategy == Strategy.REST_FOR_ONE:
            index = self._children.index(child)
            return [child, *(c for c in self._children[index + 1 :] if alive(c))]
        return [child]

    async def _restart_after(self, delay: float, token: object) -> None:
        await trio.sleep(delay)
        self._post(RestartDue(token))

    async def _on_restart_due(self, token: object) -> None:
        for child in [c for c in self._children if c.restart_token is token]:
            if child.restart_token is not token:
                continue
            child.restart_token = None
            try:
                await self._start(child, restart=True)
            except StartError as exc:
                reason = ExitReason("start_failed", text=str(exc))
                self._bus.publish(
                    ChildExited(self.path, child.spec.id, child.spec.kind, None, reason, now())
                )
                await self._handle_stop(child, reason, exc, 0.0)

    # ---- lookups ----------------------------------------------------------------------

    def _find(self, child_id: str) -> Child | None:
        for child in self._children:
            if child.spec.id == child_id:
                return child
        return None

    def _get(self, child_id: str) -> Child:
        child = self._find(child_id)
        if child is None:
            raise ChildNotFound(child_id, self.path)
        return child

    def _child_snapshot(self, child: Child) -> ChildSnapshot:
        incarnation = child.current
        grandchildren: tuple[ChildSnapshot, ...] = ()
        standbys: tuple[int, ...] = ()
        pid = None
        started_at = None
        if incarnation is not None:
            pid = incarnation.pid
            started_at = incarnation.started_at
            if incarnation.sub is not None:
                pid = os.getpid()
                grandchildren = incarnation.sub.snapshot().children
                standbys = incarnation.sub.standby_pids()
        return ChildSnapshot(
            id=child.spec.id,
            kind=child.spec.kind,
            pid=pid,
            state=child.state,
            restarts=child.restarts,
            started_at=started_at,
            last_exit=child.last_exit,
            children=grandchildren,
            standby_pids=standbys,
        )
