"""Every Python snippet of README.md and docs/*.md runs, so an example cannot rot.

Snippets are fragments: they use `client`, `url` and job functions they do not define,
and `await` at the top level. Each document's snippets run in order in one namespace
(as a reader reads them, so a later one may use what an earlier one made), seeded with
those names, against an in-process runtime (tests/helpers/jobs_harness.py) in the
default namespace on a server of this module's own. Fragments without `await` run in a
worker thread (they are the blocking API); whole programs (`trio.run(main)`) run as a
subprocess. The few that cannot run are listed in NOT_RUNNABLE with the reason.
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import types
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

import actorq
import supervisors
from actorq.nats import NatsServerProcess, open_nats
from actorq.wire.codec import PickleCodec
from tests.helpers import docfuncs
from tests.helpers.jobs_harness import Runtime, open_runtime
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.timeout(120)

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

#: (document, the snippet's first line) -> why it cannot run in a test. Keep short.
#: Keyed by content, not line number, so an edit above a snippet does not unlist it.
NOT_RUNNABLE: dict[tuple[str, str], str] = {
    ("docs/nats.md", 'async with open_nats(["nats://a:4222", "nats://b:4222"], user="u", '
     'password="p") as nc:'): "connects to a cluster (nats://a, nats://b) that is not there",
    ("README.md", "class Greet(msgspec.Struct, tag=True):"): "a process actor needs its "
    "class in a module, not inline; examples/actors_bank.py does the same, run by "
    "tests/actors/test_host.py",
}


def _listed(doc: str, source: str) -> bool:
    return (doc, source.split("\n", 1)[0]) in NOT_RUNNABLE
#: The module supervisors.md's process child runs, written from that document itself.
WORKER_MODULE = "# myapp/worker.py\n"


def snippets() -> Iterator[tuple[str, int, str]]:
    for doc in DOCS:
        text = doc.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield doc.relative_to(ROOT).as_posix(), line, match.group(1)


def test_snippets_are_found_and_the_allow_list_names_only_real_ones() -> None:
    found = {(doc, source.split("\n", 1)[0]) for doc, _, source in snippets()}
    assert len(found) >= 20
    assert set(NOT_RUNNABLE) <= found, set(NOT_RUNNABLE) - found


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServerProcess]:
    """A server for these snippets alone: they use the default namespace."""
    server = NatsServerProcess(data_dir=tmp_path_factory.mktemp("nats-docs"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def runtime(own_server: NatsServerProcess) -> AsyncIterator[Runtime]:
    async with open_runtime(
        own_server.url, namespace="actorq", queues={"default": 4, "emails": 2, "ops": 1}
    ) as rt:
        yield rt


def _seed(url: str, rt: Runtime, tmp_path: Path) -> dict[str, Any]:
    """The names snippets take for granted."""
    ns: dict[str, Any] = {"__name__": "snippet", "actorq": actorq, "trio": trio}
    ns.update(msgspec=msgspec, os=os, sys=sys, supervisors=supervisors, url=url)
    ns.update(client=rt.client, timedelta=dt.timedelta, datetime=dt.datetime, UTC=dt.UTC)
    ns.update(ZoneInfo=zoneinfo.ZoneInfo, key=b"k" * 32, PickleCodec=PickleCodec)
    ns.update({name: getattr(docfuncs, name) for name in docfuncs.__all__})
    ns.update(paths=[str(tmp_path / f"{i}.png") for i in range(3)], user_id=7, day="2030-01-01")
    ns.update(launch_day=dt.datetime(2031, 1, 1, tzinfo=dt.UTC), open_nats=open_nats)
    ns.update(ProcessSpec=supervisors.ProcessSpec, TaskSpec=supervisors.TaskSpec)
    ns.update(open_supervisor=supervisors.open_supervisor, signal=signal, to="ann@example.com")
    ns.update(serve_supervisor=supervisors.serve_supervisor)
    ns.update(shutdown_on_signals=supervisors.shutdown_on_signals)
    ns.update(children=[supervisors.TaskSpec(id="tick", target=docfuncs.tick)])
    return ns


def _myapp(tmp_path: Path) -> None:
    """``myapp``, the package some snippets name: ``myapp.tasks`` (empty) and
    ``myapp.worker`` (the snippet of supervisors.md that starts with its name)."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tasks.py").write_text("")
    (worker,) = [s for _, _, s in snippets() if s.startswith(WORKER_MODULE)]
    (tmp_path / "myapp" / "worker.py").write_text(worker)


def _bounded(source: str) -> str:
    # A snippet that serves until stopped ends once its block is entered: everything
    # in it started, and leaving the block stops it gracefully.
    return source.replace("await trio.sleep_forever()", "pass")


async def _run_fragment(source: str, ns: dict[str, Any]) -> None:
    code = compile(source, "<snippet>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & 0x80:  # CO_COROUTINE: it awaits
        await types.FunctionType(code, ns)()
    else:
        await trio.to_thread.run_sync(exec, code, ns)


def _run_program(source: str, url: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _bounded(source).replace("nats://127.0.0.1:4222", url)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("doc", sorted({doc for doc, _, _ in snippets()}))
async def test_every_python_snippet_runs(
    doc: str,
    runtime: Runtime,
    own_server: NatsServerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # no credentials file of a local `actorq up` around
    for name in [k for k in os.environ if k.startswith("ACTORQ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ACTORQ_SIGNING_KEY", "ab" * 32)
    (tmp_path / "actorq.toml").write_text(
        f'[nats]\nurl = "{own_server.url}"\n[[queues]]\nname = "emails"\n'
        '[security]\nsigning_key_env = "ACTORQ_SIGNING_KEY"\n'
    )
    _myapp(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    ns = _seed(own_server.url, runtime, tmp_path)
    ns["a"] = await runtime.client.enqueue(docfuncs.add, 1, 2)
    ns["b"] = await runtime.client.enqueue(docfuncs.add, 3, 4)
    ran = 0
    async with trio.open_nursery() as nursery:
        ns["nursery"] = nursery
        if doc == "docs/actors.md":  # its snippets talk to an actor `ref`
            actors = await nursery.start(_actor_supervisor, own_server.url)
            ns["ref"] = await actors.spawn(docfuncs.Echo, name="docs-echo")
        ran = await _run_doc(doc, ns, runtime, own_server.url, tmp_path)
        nursery.cancel_scope.cancel()
    if ran == 0:
        pytest.skip(f"every snippet of {doc} is in NOT_RUNNABLE")


async def _actor_supervisor(url: str, *, task_status: trio.TaskStatus[Any]) -> None:
    async with actorq.open_actor_supervisor(url, local_credentials=False) as sup:
        task_status.started(sup)
        await trio.sleep_forever()


async def _run_doc(doc: str, ns: dict[str, Any], runtime: Runtime, url: str, tmp: Path) -> int:
    ran = 0
    try:
        for where, line, source in snippets():
            if where != doc or _listed(where, source):
                continue
            try:
                if "trio.run(" in source:
                    _run_program(source, url, tmp)
                else:
                    text = _bounded(source).replace("nats://127.0.0.1:4222", url)
                    ns["client"] = runtime.client  # a snippet's own `client` was closed
                    with trio.fail_after(60):
                        await _run_fragment(text, ns)
            except SystemExit as exc:
                # A program's normal end (sys.exit(0)) is a pass.
                if exc.code not in (0, None):
                    raise AssertionError(f"{where}:{line}: exits with {exc.code!r}") from exc
            except BaseException as exc:
                raise AssertionError(f"{where}:{line}: the snippet fails: {exc!r}") from exc
            ran += 1
    finally:
        actorq.configure()  # closes the default client a snippet may have opened
        for value in ns.values():
            if isinstance(value, actorq.SyncClient):
                value.close()
    return ran
