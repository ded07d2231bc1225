"""Specs are validated once, with messages that say what to do; the public API is fixed."""

from __future__ import annotations

import pytest
from sup_control import idle

import supervisors
from supervisors import (
    Backoff,
    ProcessSpec,
    SpecError,
    SupervisorError,
    SupervisorSpec,
    TaskSpec,
)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TaskSpec(id="a/b", target=idle), "no '/'"),
        (lambda: TaskSpec(id="a", target=idle, shutdown=-1), "shutdown=-1"),
        (lambda: TaskSpec(id="a", target=idle, restart="sometimes"), "'transient'"),
        (lambda: ProcessSpec(id="p", target="not a target"), "pkg.module:function"),
        (lambda: ProcessSpec(id="p", target="m:f", args=(1,)), "tuple of str"),
        (lambda: ProcessSpec(id="p", target="m:f", start_timeout=0), "start_timeout=0"),
        (
            lambda: SupervisorSpec(
                id="s", children=(TaskSpec(id="x", target=idle), TaskSpec(id="x", target=idle))
            ),
            "share the id 'x'",
        ),
        (lambda: SupervisorSpec(id="s", strategy="one_for_some"), "'rest_for_one'"),
        (lambda: SupervisorSpec(id="s", max_restarts=-1), "max_restarts"),
        (lambda: Backoff(initial=2, max=1), "raise max"),
        (lambda: ProcessSpec(id="p", target="pkg.module", standby=True), "standby=True needs"),
    ],
)
def test_an_invalid_spec_is_refused_with_a_message_naming_the_field(
    build: object, message: str
) -> None:
    with pytest.raises(SpecError, match=message) as info:
        build()  # type: ignore[operator]
    assert isinstance(info.value, SupervisorError)
    assert isinstance(info.value, ValueError)


def test_the_public_names_are_exactly_these() -> None:
    assert supervisors.__all__ == [
        "Backoff",
        "ChildExited",
        "ChildKind",
        "ChildNotFound",
        "ChildRestarted",
        "ChildSnapshot",
        "ChildSpec",
        "ChildStarted",
        "ChildState",
        "DuplicateChild",
        "EventBus",
        "ExitKind",
        "ExitReason",
        "ProcessSpec",
        "Ready",
        "Restart",
        "RestartIntensityExceeded",
        "Shutdown",
        "ShutdownSignals",
        "SpecError",
        "StandbyParked",
        "StartError",
        "StartFailed",
        "StartTimeout",
        "Strategy",
        "Supervisor",
        "SupervisorError",
        "SupervisorEscalated",
        "SupervisorEvent",
        "SupervisorSpec",
        "SupervisorStopped",
        "TaskSpec",
        "TrioPopen",
        "on_standby",
        "open_supervisor",
        "serve_supervisor",
        "setup_child",
        "shutdown_on_signals",
    ]
    for name in supervisors.__all__:
        assert getattr(supervisors, name) is not None


def test_the_package_imports_neither_actorq_nor_nats() -> None:
    import ast
    import pathlib

    root = pathlib.Path(supervisors.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in ("actorq", "nats"), f"{path.name} imports {name}"
