"""The dashboard's JSON API and its access rules, over real HTTP (httpx) against the
app served on a free loopback port, on a real nats-server and an in-process runtime."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import msgspec
import trio

from actorq.jobs.client import EnqueueOptions
from actorq.wire.messages import decode_dead_letter
from tests.helpers import jobfuncs, schedfuncs
from tests.helpers.dashboard_harness import (
    TOKEN,
    bearer_client,
    browser_client,
    open_dashboard,
    read_events,
)
from tests.helpers.jobs_harness import open_runtime

ONCE = EnqueueOptions(max_retries=0)
XSS = "<script>alert('xss')</script>"


async def test_viewing_needs_the_token_and_a_login_sets_a_strict_cookie(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url, queues={}) as rt, open_dashboard(rt.client) as info:
            async with browser_client(info, logged_in=False) as anon:
                assert (await anon.get("/api/overview")).status_code == 401
                page = await anon.get("/jobs")
                assert page.status_code == 303
                assert page.headers["location"] == "/login"
                assert (await anon.get("/api/jobs?token=wrong")).status_code == 401
                login = await anon.get("/jobs?token=" + TOKEN)
                assert login.status_code == 303
                assert login.headers["location"] == "/jobs"  # the token leaves the URL
                cookie = login.headers["set-cookie"]
                assert "HttpOnly" in cookie
                assert "SameSite=Strict" in cookie
                assert (await anon.get("/api/overview")).status_code == 200  # cookie kept
                elsewhere = await anon.get(info.url + "//evil.example/x?token=" + TOKEN)
                assert elsewhere.headers["location"] == "/"  # never to another host
                # Every response forbids inline script, framing and referrers.
                page = await anon.get("/jobs")
                csp = page.headers["content-security-policy"]
                assert "script-src 'self'" in csp
                assert "frame-ancestors 'none'" in csp
                assert page.headers["referrer-policy"] == "no-referrer"
            async with browser_client(info, logged_in=False) as anon:
                bad = await anon.post("/login", data={"token": "nope"})
                assert bad.status_code == 401
                ok = await anon.post("/login", data={"token": TOKEN})
                assert ok.status_code == 303
                assert (await anon.get("/api/queues")).status_code == 200


async def test_read_only_mode_shows_pages_without_the_token_but_never_acts(
    nats_url: str,
) -> None:
    with trio.fail_after(60):
        async with (
            open_runtime(nats_url, queues={}) as rt,
            open_dashboard(rt.client, read_only=True) as info,
            browser_client(info, logged_in=False) as anon,
        ):
            assert (await anon.get("/api/overview")).status_code == 200
            page = await anon.get("/")
            assert page.status_code == 200
            assert 'data-csrf=""' in page.text  # no CSRF value for an anonymous viewer
            await rt.client.schedule("ro", schedfuncs.now, every=3600)
            refused = await anon.post("/api/schedules/ro/pause")
            assert refused.status_code == 401
            assert not (await rt.client.schedules())[0].paused


async def test_actions_need_the_csrf_header_and_a_same_origin(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url, queues={}) as rt, open_dashboard(rt.client) as info:
            await rt.client.schedule("csrf", schedfuncs.now, every=3600)
            async with browser_client(info) as tab:
                # A cross-site form carries the cookie but cannot add the header.
                del tab.headers["x-actorq-csrf"]
                assert (await tab.post("/api/schedules/csrf/pause")).status_code == 403
            async with browser_client(info) as tab:
                foreign = {"origin": "http://evil.example"}
                refused = await tab.post("/api/schedules/csrf/pause", headers=foreign)
                assert refused.status_code == 403
                assert not (await rt.client.schedules())[0].paused
                done = await tab.post("/api/schedules/csrf/pause", headers={"origin": info.url})
                assert done.status_code == 200
                assert done.json()["paused"] is True
            async with bearer_client(info) as script:  # a script's bearer token needs no CSRF
                assert (await script.post("/api/schedules/csrf/resume")).status_code == 200
            assert not (await rt.client.schedules())[0].paused


async def test_jobs_are_filtered_searched_and_paged_on_the_server(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url) as rt:
            client = rt.client
            good = [await client.enqueue(jobfuncs.add, i, i) for i in range(12)]
            bad = [await client.enqueue_with(ONCE, jobfuncs.boom, ("no",)) for _ in range(3)]
            for job in good:
                await job.result(timeout=20)
            for job in bad:
                with contextlib.suppress(Exception):
                    await job.result(timeout=20)
            async with open_dashboard(client) as info, bearer_client(info) as http:
                page = (await http.get("/api/jobs", params={"per_page": 5})).json()
                assert page["ready"] is True
                assert page["total"] == 15
                assert len(page["rows"]) == 5
                assert page["rows"][0]["id"] == bad[-1].id  # newest first
                third = (await http.get("/api/jobs", params={"per_page": 5, "page": 3})).json()
                assert [r["id"] for r in third["rows"]] == [j.id for j in reversed(good[:5])]
                failed = (await http.get("/api/jobs", params={"status": "failed"})).json()
                assert {r["id"] for r in failed["rows"]} == {j.id for j in bad}
                assert failed["rows"][0]["error"].startswith("ValueError: no")
                found = (await http.get("/api/jobs", params={"q": good[4].id})).json()
                assert [r["id"] for r in found["rows"]] == [good[4].id]
                by_queue = (await http.get("/api/jobs", params={"queue": "other"})).json()
                assert by_queue["total"] == 0
                # The index follows new records live (push), no reload.
                late = await client.enqueue(jobfuncs.add, 1, 1)
                await late.result(timeout=20)
                with trio.fail_after(10):
                    while True:
                        rows = (await http.get("/api/jobs", params={"q": late.id})).json()
                        if rows["rows"] and rows["rows"][0]["status"] == "succeeded":
                            break
                        await trio.sleep(0.05)  # bounded by fail_after: the push may lag


async def test_job_detail_has_history_and_traceback_but_never_payload_bytes(
    nats_url: str,
) -> None:
    key = b"k" * 32
    with trio.fail_after(60):
        async with open_runtime(nats_url, signing_key=key) as rt:
            client = rt.client
            async with client.conn.subscribe(client.streams.dead_subject(">")) as letters:
                job = await client.enqueue_with(ONCE, jobfuncs.boom, (XSS,))
                letter = decode_dead_letter((await letters.receive()).data)
            assert letter.job_id == job.id
            async with open_dashboard(client) as info, bearer_client(info) as http:
                raw = (await http.get(f"/api/jobs/{job.id}")).content
                detail = msgspec.json.decode(raw)
                assert detail["status"] == "failed"
                rec = detail["record"]
                assert [h["status"] for h in rec["history"]][-1] == "failed"
                assert rec["error"]["type"] == "ValueError"
                assert rec["error"]["message"] == XSS
                assert "jobfuncs.py" in rec["error"]["traceback"]
                assert XSS in detail["dead_letter"]["arguments"]  # a summary, as text
                for secret in (b"payload", b"signature", key, key.hex().encode()):
                    assert secret not in raw
                page = await http.get(f"/jobs/{job.id}")
                assert XSS not in page.text  # the frame never holds job data as HTML
                missing = await http.get("/api/jobs/no-such-job")
                assert missing.status_code == 404
                bad = await http.get("/api/jobs/not a job id")
                assert bad.status_code == 400
                # What the server renders itself (the id in the path) is escaped.
                page = await http.get("/jobs/<svg onload=alert(1)>")
                assert "<svg" not in page.text
                assert "&lt;svg onload=alert(1)&gt;" in page.text


async def test_dead_letters_are_requeued_deleted_and_requeued_in_bulk(
    nats_url: str, tmp_path: Path
) -> None:
    with trio.fail_after(90):
        async with open_runtime(nats_url) as rt:
            client = rt.client
            marks = [str(tmp_path / f"m{i}") for i in range(4)]
            async with client.conn.subscribe(client.streams.dead_subject(">")) as letters:
                jobs = [await client.enqueue_with(ONCE, jobfuncs.fail_until, (m, 2)) for m in marks]
                for _ in jobs:
                    await letters.receive()
            async with open_dashboard(client) as info, browser_client(info) as tab:
                listed = (await tab.get("/api/dead")).json()
                assert {d["job_id"] for d in listed} == {j.id for j in jobs}
                assert listed[0]["reason"]
                one = await tab.post(f"/api/dead/{jobs[0].id}/requeue")
                assert one.status_code == 200
                assert await client.result(jobs[0].id, timeout=20) == 2  # it ran again
                gone = await tab.post(f"/api/dead/{jobs[1].id}/delete")
                assert gone.status_code == 200
                again = await tab.post(f"/api/dead/{jobs[1].id}/delete")
                assert again.status_code == 404
                bulk = await tab.post("/api/dead/requeue", json={"ids": [j.id for j in jobs[2:]]})
                assert sorted(bulk.json()["requeued"]) == sorted(j.id for j in jobs[2:])
                for job in jobs[2:]:
                    assert await client.result(job.id, timeout=20) == 2
                assert (await tab.get("/api/dead")).json() == []
                # The deleted one never ran again: one call, the first.
                assert len(await trio.to_thread.run_sync(os.listdir, marks[1])) == 1


async def test_schedules_pause_resume_trigger_and_delete(nats_url: str, tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url) as rt:
            client = rt.client
            await client.schedule("nightly", schedfuncs.mark, str(tmp_path), "t", cron="0 3 * * *")
            async with open_dashboard(client) as info, browser_client(info) as tab:
                (listed,) = (await tab.get("/api/schedules")).json()
                assert listed["name"] == "nightly"
                assert listed["next_runs"]
                paused = (await tab.post("/api/schedules/nightly/pause")).json()
                assert paused["paused"] is True
                assert paused["next_runs"] == []
                resumed = (await tab.post("/api/schedules/nightly/resume")).json()
                assert resumed["paused"] is False
                fired = (await tab.post("/api/schedules/nightly/trigger")).json()
                assert re.fullmatch(r"nightly-\d{13}", fired["job_id"])
                assert (await client.result(fired["job_id"], timeout=20)).startswith("t-")
                assert (await client.schedules())[0].runs == 0  # outside its plan
                assert (await tab.post("/api/schedules/nightly/delete")).status_code == 200
                assert await client.schedules() == []
                assert (await tab.post("/api/schedules/nightly/pause")).status_code == 404


async def test_a_queue_is_purged_only_with_its_name_as_confirmation(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url, queues={}) as rt:
            client = rt.client
            await client.streams.provision_queue(client.conn, "idle")
            idle = client.options(queue="idle")
            for i in range(3):
                await idle.enqueue(jobfuncs.add, i, i)
            async with open_dashboard(client) as info, browser_client(info) as tab:
                (queue,) = (await tab.get("/api/queues")).json()
                assert queue["queue"] == "idle"
                assert queue["pending"] == 3
                refused = await tab.post("/api/queues/idle/purge", json={"confirm": "yes"})
                assert refused.status_code == 400
                done = await tab.post("/api/queues/idle/purge", json={"confirm": "idle"})
                assert done.json() == {"queue": "idle", "removed": 3}
                assert (await tab.get("/api/queues")).json()[0]["pending"] == 0


async def test_every_browser_gets_the_same_frames_from_one_publisher(nats_url: str) -> None:
    with trio.fail_after(60):
        async with open_runtime(nats_url) as rt, open_dashboard(rt.client, interval=0.1) as info:
            frames: list[list[bytes]] = []

            async def listen() -> None:
                frames.append(await read_events(info, 4))

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(listen)
            data = [msgspec.json.decode(f[-1][6:]) for f in frames]
            assert all("status_counts" in d and "queues" in d for d in data)
            # One gather per interval, shared by every stream: they saw the same frames.
            assert set(frames[0]) & set(frames[1]) & set(frames[2])
