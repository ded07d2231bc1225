"""The dashboard in a real browser (Debian's chromium, driven by Playwright): every page
renders, a counter moves while jobs run, a requeued dead letter runs, pause stops a
schedule, and a job's ``<script>`` argument is shown as text, never run.

With ``ACTORQ_SCREENSHOTS=1`` the same tests save docs/img/dashboard-*.png.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from actorq.jobs.client import EnqueueOptions
from actorq.nats.embedded_server import free_port
from actorq.wire.messages import decode_dead_letter
from tests.helpers import jobfuncs, paths, schedfuncs
from tests.helpers.browser_harness import Served, login, needs_chromium, open_browser, screenshot
from tests.helpers.jobs_harness import Runtime
from tests.helpers.scheduler_harness import eventually
from tests.helpers.up_harness import run_up, up_env

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

pytestmark = [needs_chromium, pytest.mark.timeout(180)]

ONCE = EnqueueOptions(max_retries=0)
XSS = "<script>alert('xss')</script>"


async def _dead(rt: Runtime, fn: Any, *args: Any) -> str:
    """Enqueue a job that fails once, wait for its dead letter; its id."""
    client = rt.client
    with trio.fail_after(30):
        async with client.conn.subscribe(client.streams.dead_subject(">")) as letters:
            job = await client.enqueue_with(ONCE, fn, args)
            while decode_dead_letter((await letters.receive()).data).job_id != job.id:
                pass
    return job.id


async def _some_jobs(rt: Runtime, n: int, seconds: float) -> list[str]:
    jobs = [await rt.client.enqueue(jobfuncs.sync_sleep, seconds) for _ in range(n)]
    return [j.id for j in jobs]


async def _wait_all(rt: Runtime, ids: list[str]) -> None:
    with trio.fail_after(60):
        for job_id in ids:
            await rt.client.result(job_id, timeout=60)


def _no_error(page: Any) -> None:
    assert page.locator("#error").is_hidden(), page.locator("#error").text_content()
    assert page.get_attribute("body", "data-ready") == "1"


def test_every_page_renders_from_its_api(nats_url: str, tmp_path: Path) -> None:
    with Served(nats_url) as served, open_browser(tmp_path / "profile") as browser:
        rt = served.rt
        assert rt is not None
        served.run(_wait_all, rt, served.run(_some_jobs, rt, 8, 0.01))
        dead_id = served.run(_dead, rt, jobfuncs.boom, "disk full")
        served.run(
            lambda: rt.client.schedule("nightly-report", schedfuncs.now, cron="0 3 * * *",
                                       tz="Europe/Paris")
        )  # fmt: skip
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        login(page, served)
        page.wait_for_function("document.getElementById('count-succeeded').textContent === '8'")
        page.wait_for_selector("#live.on")
        _no_error(page)
        screenshot(page, "overview")
        checks = {
            "/tree": "#other-table tbody tr",
            "/queues": "#queues-table button[data-queue='default']",
            "/jobs": "#jobs-table tbody tr >> nth=8",
            f"/jobs/{dead_id}": "#job-dead tbody tr >> nth=2",
            "/dead": f"button[data-requeue='{dead_id}']",
            "/schedules": "button[data-schedule='nightly-report']",
            "/actors": "#actors-table tbody tr",
        }
        for path, selector in checks.items():
            page.goto(served.base + path)
            page.wait_for_selector("body[data-ready]")
            page.wait_for_selector(selector)
            _no_error(page)
            name = path.strip("/").split("/")[0] or "overview"
            if name not in ("tree", "actors"):  # those two: from `actorq up`, below
                screenshot(page, "job" if path.startswith("/jobs/") else name)
        # Filters and search run on the server; the page shows what it returns.
        page.goto(served.base + "/jobs?status=failed")
        page.wait_for_selector(f"#jobs-table a[href='/jobs/{dead_id}']")
        assert page.locator("#jobs-table tbody tr").count() == 1
        page.fill("#job-search", dead_id[:12])
        page.click("#job-filter button")
        page.wait_for_function("document.getElementById('jobs-summary').textContent === '1 job(s)'")
        assert errors == []


def test_the_succeeded_counter_moves_while_jobs_run(nats_url: str, tmp_path: Path) -> None:
    with Served(nats_url) as served, open_browser(tmp_path / "profile") as browser:
        rt = served.rt
        assert rt is not None
        page = browser.new_page()
        login(page, served)
        page.wait_for_selector("#live.on")
        before = int(page.text_content("#count-succeeded") or 0)
        ids = served.run(_some_jobs, rt, 40, 0.05)
        # Pushed by the event stream, no reload: first some, then all of them.
        page.wait_for_function(
            f"Number(document.getElementById('count-succeeded').textContent) > {before}",
            timeout=30_000,
        )
        served.run(_wait_all, rt, ids)
        page.wait_for_function(
            f"Number(document.getElementById('count-succeeded').textContent) === {before + 40}",
            timeout=30_000,
        )


def test_requeueing_a_dead_letter_in_the_browser_makes_it_run(
    nats_url: str, tmp_path: Path
) -> None:
    marker = str(tmp_path / "marks")
    with Served(nats_url) as served, open_browser(tmp_path / "profile") as browser:
        rt = served.rt
        assert rt is not None
        job_id = served.run(_dead, rt, jobfuncs.fail_until, marker, 2)
        page = browser.new_page()
        login(page, served, "/dead")
        page.click(f"button[data-requeue='{job_id}']")
        page.wait_for_selector(f"button[data-requeue='{job_id}']", state="detached")
        assert served.run(lambda: rt.client.result(job_id, timeout=30)) == 2
        assert len(os.listdir(marker)) == 2  # failed once, then ran again and succeeded
        page.goto(f"{served.base}/jobs/{job_id}")
        page.wait_for_function(
            "document.querySelector('#job-facts td + td')?.textContent === 'succeeded'"
        )


def test_pause_in_the_browser_stops_a_schedule_from_firing(nats_url: str, tmp_path: Path) -> None:
    marker = str(tmp_path / "runs")
    with Served(nats_url) as served, open_browser(tmp_path / "profile") as browser:
        rt = served.rt
        assert rt is not None
        served.run(lambda: rt.client.schedule("tick", schedfuncs.mark, marker, every=1))

        async def runs_at_least(n: int) -> None:
            with trio.fail_after(30):
                await eventually(lambda: len(_count(marker)) >= n, interval=0.1)

        served.run(runs_at_least, 2)  # it fires
        page = browser.new_page()
        login(page, served, "/schedules")
        page.click("button[data-schedule='tick'][data-verb='pause']")
        page.wait_for_selector("button[data-schedule='tick'][data-verb='resume']")
        assert served.run(rt.client.schedules)[0].paused
        after_pause = len(_count(marker))

        async def pending_timers() -> int:
            streams = rt.client.streams
            info = await rt.client.conn.jsm(
                "stream_info", streams.jobs_stream, subjects_filter=streams.timers_filter("tick")
            )
            return sum((info.state.subjects or {}).values())

        assert served.run(pending_timers) == 0  # no timer left to fire it
        # Three periods pass: at most a job already enqueued at the pause still runs.
        served.run(trio.sleep, 3.0)
        assert len(_count(marker)) <= after_pause + 1
        page.click("button[data-schedule='tick'][data-verb='resume']")
        page.wait_for_selector("button[data-schedule='tick'][data-verb='pause']")
        served.run(runs_at_least, after_pause + 2)  # and resume brings it back


def _count(marker: str) -> list[str]:
    return os.listdir(marker) if os.path.isdir(marker) else []


def test_a_script_argument_is_shown_as_text_and_never_runs(nats_url: str, tmp_path: Path) -> None:
    with Served(nats_url) as served, open_browser(tmp_path / "profile") as browser:
        rt = served.rt
        assert rt is not None
        job_id = served.run(_dead, rt, jobfuncs.boom, XSS)
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        login(page, served, f"/jobs/{job_id}")
        page.wait_for_function("document.getElementById('job-error').textContent.includes('xss')")
        assert XSS in (page.text_content("#job-error") or "")
        assert XSS in (page.text_content("#job-facts") or "")  # the arguments summary
        for path in ("/dead", "/jobs", "/"):
            page.goto(served.base + path)
            page.wait_for_selector("body[data-ready]")
        page.goto(served.base + "/dead")
        page.wait_for_selector(f"button[data-requeue='{job_id}']")
        assert XSS in (page.text_content("#dead-table") or "")
        screenshot(page, "dead")
        assert dialogs == []
        assert page.locator("script").count() == 1  # ours; the job's stayed text
        assert re.search(r"<script>alert", page.content()) is None


def test_the_tree_and_actors_of_actorq_up_render(tmp_path: Path) -> None:
    config = tmp_path / "with-actor.toml"
    config.write_text(
        (paths.ROOT / "examples" / "config.toml").read_text()
        + '\n[[actors]]\nname = "echo"\nclass = "tests.helpers.upactors:Echo"\n'
        + 'mailbox = "durable"\n'
    )
    port = free_port()
    env = up_env(
        tmp_path / "nats", ACTORQ_DASHBOARD_ENABLED="true",
        ACTORQ_DASHBOARD_PORT=str(port), ACTORQ_DASHBOARD_TOKEN="tree-token",
    )  # fmt: skip
    with run_up(tmp_path, env, config=config) as up, open_browser(tmp_path / "profile") as browser:
        up.ready()
        while "dashboard at" not in (up.lines.get(timeout=30) or "dashboard at"):
            pass  # the dashboard starts once the tree is ready
        base = f"http://127.0.0.1:{port}"
        page = browser.new_page()
        page.goto(f"{base}/tree?token=tree-token")
        for child in ("results", "default-0", "default-1", "echo"):
            page.wait_for_selector(f"ul.tree strong:text-is('{child}')", timeout=30_000)
        # Every process with its pid, and (once it reported) its CPU and RSS.
        page.wait_for_function(
            "document.querySelectorAll('ul.tree .node').length >= 5 && "
            "[...document.querySelectorAll('ul.tree .node')].filter("
            "n => n.textContent.includes('rss')).length >= 4",
            timeout=30_000,
        )
        text = page.text_content("#tree") or ""
        for name in ("default-0", "echo"):
            assert f"pid {up.pids[name]}" in text
        _no_error(page)
        screenshot(page, "tree")
        page.goto(f"{base}/actors")
        # The user actor answers introspect; its durable mailbox shows its depth.
        echo_row = "#actors-table tr:has(td:text-is('echo'))"
        page.wait_for_selector(f"{echo_row} td:text-is('yes')", timeout=30_000)
        assert "durable" in (page.text_content(echo_row) or "")
        # The runtime's own processes answer as actors too, with their figures.
        runtime_row = "#actors-table tr:has(td:text-is('_queue-default'))"
        page.wait_for_selector(f"{runtime_row} td:text-is('yes')", timeout=30_000)
        assert "processed" in (page.text_content(runtime_row) or "")
        _no_error(page)
        screenshot(page, "actors")
        up.signal(signal.SIGTERM)
        assert up.wait() == 0, up.stderr()
