"""The README's first command, ``make up``, in a fresh copy of the repository: set-up,
the runtime, one job sent the way the printed hint says, and a clean stop; then the
set-up logic on its own (install once, again only when ``pyproject.toml`` changes,
refuse an old Python) with a stand-in interpreter, so no real install runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.up_harness import ROOT, run_up, up_env, wait_gone

#: The Makefile's ``stamp``: a copy of the pyproject.toml installed last, in the venv.
STAMP = "pyproject.toml.installed"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def clean_env(**extra: str) -> dict[str, str]:
    """``os.environ`` as a fresh terminal has it: without the outer make's settings
    (``make test`` runs this suite) and without ``ACTORQ_*`` overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL") and not k.startswith("ACTORQ_")
    }
    return {**env, **extra}


def run_make(
    *args: str, cwd: Path, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def fresh_copy(dest: Path) -> Path:
    """Copy the repository's tracked files, as the work tree holds them, to ``dest``:
    what a fresh clone has (uncommitted edits included; untracked files left out)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z"],
            capture_output=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs git and a git checkout to tell the tracked files")
    for rel in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / rel
        if not (src.exists() or src.is_symlink()):
            continue  # deleted in the work tree, not yet committed
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel, follow_symlinks=False)
    return dest


def reusable_venv(clone: Path) -> Path | None:
    """The venv running these tests when ``make`` installed it for this very
    pyproject.toml (``make test`` and CI): the copy can use it with no install."""
    prefix = Path(sys.prefix)
    stamp = prefix / STAMP
    if (
        sys.prefix != sys.base_prefix
        and (prefix / "bin" / "actorq").exists()
        and stamp.is_file()
        and stamp.read_bytes() == (clone / "pyproject.toml").read_bytes()
    ):
        return prefix
    return None


def hint(lines: list[str], needle: str) -> str:
    """The command of the hint line that holds ``needle`` (its ``# ...`` comment cut)."""
    start = next(i for i, line in enumerate(lines) if "in another terminal" in line)
    found = [line for line in lines[start:] if needle in line]
    assert len(found) == 1, lines
    return found[0].split(" # ")[0].strip()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_make_up_in_a_fresh_clone_runs_a_job_and_stops_leaving_no_process(
    tmp_path: Path, stop: signal.Signals
) -> None:
    clone = fresh_copy(tmp_path / "actorq")
    venv = reusable_venv(clone)
    make_vars = [f"VENV={venv}"] if venv is not None else []
    if venv is None:
        # Nothing to reuse (the suite runs in an environment make did not set up):
        # the real first set-up, into the copy's own .venv.
        first = run_make("setup", cwd=clone, timeout=280)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "first install" in first.stdout

    # The set-up when nothing changed: the stamp matches, nothing is installed.
    start = time.monotonic()
    again = run_make("setup", *make_vars, cwd=clone)
    took = time.monotonic() - start
    assert again.returncode == 0, again.stderr
    assert "installing" not in again.stdout
    assert took < 2.0, f"a set-up with nothing to do took {took:.2f}s"

    # From a subdirectory, as a user there would: make -C .. up.
    env = {**up_env(tmp_path / "nats"), "MAKEFLAGS": "", "MFLAGS": "", "MAKELEVEL": ""}
    argv = ["make", "-C", "..", "up", *make_vars]
    with run_up(tmp_path, env, name="make-up", argv=argv, cwd=clone / "examples") as up:
        up.ready(timeout=90)
        assert up.url == f"nats://127.0.0.1:{env['ACTORQ_NATS_PORT']}"
        assert "installing" not in "\n".join(up.before)

        # The printed hints, run as printed, from the repository root of another
        # terminal (no ACTORQ_* variables there).
        send = subprocess.run(
            hint(up.before, "examples/sync_send.py 2 3"),
            shell=True,
            cwd=clone,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert send.returncode == 0, send.stderr
        assert send.stdout.strip().endswith("result: 5")
        ps = subprocess.run(
            hint(up.before, "bin/actorq ps"),
            shell=True,
            cwd=clone,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ps.returncode == 0, ps.stderr
        for name in ("results", "scheduler", "default-0", "default-1"):
            assert f"pid {up.pids[name]}" in ps.stdout, ps.stdout

        # SIGTERM to make's pid (make forwards it once), or Ctrl-C: SIGINT to the
        # whole process group, as a terminal sends it.
        if stop == signal.SIGTERM:
            up.signal(signal.SIGTERM)
        else:
            up.ctrl_c()
        # make waits for actorq's graceful stop, then dies of the same signal.
        assert up.wait(90) == -stop
        assert up.rest_of_stdout() == ["actorq stopped"], up.stderr()
        stderr = up.stderr()
        assert stderr.count("stopping gracefully") == 1, stderr
        assert "killing every process" not in stderr
        assert not wait_gone(up.seen), "processes left behind"


FAKE_PYTHON = """#!/bin/sh
# A stand-in python3: logs each call; `-m venv DIR` makes DIR/bin/python (this script),
# `-m pip` installs nothing (and fails while {fail} exists); the rest runs {real}
# {version_note}.
echo "$*" >> "{log}"
case "$1 $2" in
    "-m venv") mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0 ;;
    "-m pip") test ! -e "{fail}"; exit $? ;;
esac
{version_case}
exec "{real}" "$@"
"""

OLD_VERSION_CASE = """case "$1" in --version|-V) echo "Python {version}"; exit 0 ;; esac
export PYTHONPATH="{site}"
"""


def fake_python(where: Path, version: tuple[int, int, int] | None = None) -> Path:
    """A stand-in interpreter in ``where``; with ``version``, it claims to be that one."""
    where.mkdir(parents=True, exist_ok=True)
    version_case = ""
    if version is not None:
        site = where / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(
            f"import sys\nsys.version_info = {(*version, 'final', 0)!r}\n"
        )
        version_case = OLD_VERSION_CASE.format(version=".".join(map(str, version)), site=site)
    script = where / "python3"
    script.write_text(
        FAKE_PYTHON.format(
            log=where / "calls.log",
            fail=where / "pip-fails",
            real=sys.executable,
            version_note="" if version is None else f"claiming {version}",
            version_case=version_case,
        )
    )
    script.chmod(0o755)
    return script


def makefile_only(dest: Path) -> Path:
    """A repository of just the Makefile and pyproject.toml: all the set-up reads."""
    dest.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def calls(python: Path) -> list[str]:
    log = python.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def modules_run(python: Path) -> list[str]:
    """The ``-m venv`` and ``-m pip`` calls (leaving out the version checks)."""
    return [call for call in calls(python) if call.startswith("-m ")]


def test_setup_installs_once_then_again_only_when_pyproject_changes(tmp_path: Path) -> None:
    repo = makefile_only(tmp_path / "repo")
    python = fake_python(tmp_path / "bin")
    # From elsewhere, by -f: the recipes use the Makefile's directory, not the cwd.
    setup = ["-f", str(repo / "Makefile"), "setup", f"PYTHON={python}"]
    pyproject = repo / "pyproject.toml"
    stamp = repo / ".venv" / STAMP

    first = run_make(*setup, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "creating .venv" in first.stdout
    assert "first install" in first.stdout
    assert modules_run(python) == [f"-m venv {repo / '.venv'}", "-m pip install -e .[dev]"]
    assert stamp.read_bytes() == pyproject.read_bytes()

    # Nothing changed: no interpreter runs at all, no output.
    before = calls(python)
    start = time.monotonic()
    second = run_make(*setup, cwd=tmp_path)
    took = time.monotonic() - start
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert calls(python) == before
    assert took < 2.0

    # A newer date alone (a checkout, a touch) is no change.
    later = time.time() + 60
    os.utime(pyproject, (later, later))
    assert run_make(*setup, cwd=tmp_path).stdout == ""
    assert calls(python) == before

    # A changed pyproject.toml is installed again.
    pyproject.write_text(pyproject.read_text() + "\n# a new line\n")
    third = run_make(*setup, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert "pyproject.toml changed" in third.stdout
    assert modules_run(python)[-1] == "-m pip install -e .[dev]"
    assert stamp.read_bytes() == pyproject.read_bytes()

    # A failed install leaves the old stamp, so the next run tries again.
    pyproject.write_text(pyproject.read_text() + "# another\n")
    (python.parent / "pip-fails").touch()
    failed = run_make(*setup, cwd=tmp_path)
    assert failed.returncode != 0
    assert "error: the install into .venv failed" in failed.stderr
    assert stamp.read_bytes() != pyproject.read_bytes()
    (python.parent / "pip-fails").unlink()
    retried = run_make(*setup, cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert stamp.read_bytes() == pyproject.read_bytes()


@pytest.mark.parametrize("case", ["python 3.10", "no such python", "a .venv of python 3.10"])
def test_make_up_refuses_an_old_or_missing_python_with_a_clear_message(
    tmp_path: Path, case: str
) -> None:
    repo = makefile_only(tmp_path / "repo")
    old = fake_python(tmp_path / "old", version=(3, 10, 12))
    if case == "python 3.10":
        python = old
    elif case == "no such python":
        python = tmp_path / "nowhere" / "python3"
    else:
        python = fake_python(tmp_path / "good")
        assert run_make("setup", f"PYTHON={python}", cwd=repo).returncode == 0
        (repo / ".venv" / STAMP).unlink()
        (repo / ".venv" / "bin" / "python").unlink()
        shutil.copy2(old, repo / ".venv" / "bin" / "python")

    done = run_make("up", f"PYTHON={python}", cwd=repo)

    assert done.returncode != 0
    # One line of ours (make adds its own "*** [Makefile:..] Error 1" after it).
    (message,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "needs Python 3.11 or newer" in message, done.stderr
    if case == "python 3.10":
        assert message.startswith(f"error: {python} is Python 3.10.12")
        assert "make PYTHON=/path/to/python3.11 up" in message
        assert not (repo / ".venv").exists()
    elif case == "no such python":
        assert message.startswith(f"error: {python} not found")
        assert not (repo / ".venv").exists()
    else:
        assert message.startswith("error: .venv runs Python 3.10.12")
        assert f"rm -rf {repo / '.venv'}" in message
    # Nothing was installed, nothing started.
    assert modules_run(old) == []
    assert "actorq ready" not in done.stdout
