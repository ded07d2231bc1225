"""Strategy x restart type x exit kind: exactly the expected children restart, in order."""

from __future__ import annotations

import os
import signal

import pytest
import trio
from sup_control import Controller
from sup_specs import pspec

from supervisors import (
    Backoff,
    ChildExited,
    ChildRestarted,
    ExitReason,
    Restart,
    Strategy,
    SupervisorEvent,
    open_supervisor,
)

FAST = Backoff(initial=0.01, max=0.05)


def expected_events(strategy: Strategy, restart: Restart, exit_kind: str) -> list[tuple[str, str]]:
    """The OTP table, written out for children a, b, c where b stops."""
    events = [("exited", "b")]
    restarts = restart == Restart.PERMANENT or (
        restart == Restart.TRANSIENT and exit_kind != "normal"
    )
    if not restarts:
        return events
    if strategy == Strategy.ONE_FOR_ONE:
        return [*events, ("restarted", "b")]
    if strategy == Strategy.ONE_FOR_ALL:
        return [
            *events,
            ("exited", "c"),
            ("exited", "a"),
            ("restarted", "a"),
            ("restarted", "b"),
            ("restarted", "c"),
        ]
    return [*events, ("exited", "c"), ("restarted", "b"), ("restarted", "c")]


def label(event: SupervisorEvent) -> tuple[str, str]:
    """``("exited", "b")`` and the like."""
    kind = {ChildExited: "exited", ChildRestarted: "restarted"}.get(type(event), "other")
    return kind, event.child_id


@pytest.mark.parametrize("exit_kind", ["normal", "exception", "kill -9"])
@pytest.mark.parametrize("restart", list(Restart))
@pytest.mark.parametrize("strategy", list(Strategy))
async def test_exactly_the_expected_children_restart_in_order(
    strategy: Strategy, restart: Restart, exit_kind: str
) -> None:
    control = Controller()
    if exit_kind == "kill -9":
        middle = pspec("b", "serve_forever", restart=restart)
    else:
        middle = control.spec("b", restart)
    children = [control.spec("a"), middle, control.spec("c")]
    expected = expected_events(strategy, restart, exit_kind)

    with trio.fail_after(10):
        async with open_supervisor(children, strategy=strategy, backoff=FAST) as sup:
            with sup.subscribe() as events:
                old_pid = sup.snapshot().find("b").pid
                if exit_kind == "kill -9":
                    assert old_pid is not None
                    os.kill(old_pid, signal.SIGKILL)
                else:
                    control.fire("b", exit_kind)
                seen = [label(await events.receive()) for _ in expected]
                # Everything one exit causes is emitted before its last expected event.
                with pytest.raises(trio.WouldBlock):
                    events.receive_nowait()
            assert seen == expected

            snapshot = sup.snapshot()
            ids = [child.id for child in snapshot.children]
            if restart == Restart.TEMPORARY:
                assert ids == ["a", "c"]
                return
            b = snapshot.find("b")
            assert b.last_exit is not None
            if ("restarted", "b") in expected:
                assert b.state == "running"
                assert b.restarts == 1
                if exit_kind == "kill -9":
                    assert b.pid != old_pid
                    assert b.last_exit == ExitReason("signal", signal=signal.SIGKILL)
            else:
                assert b.state == "stopped"
                assert b.last_exit.kind == "normal"
            restarted = {c for kind, c in expected if kind == "restarted"}
            for child in snapshot.children:
                assert child.restarts == (1 if child.id in restarted else 0)
