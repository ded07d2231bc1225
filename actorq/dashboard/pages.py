"""The HTML pages: a server-rendered frame per page that ``static/dashboard.js`` fills
from the page's JSON API (and keeps live from the event stream).

Anything from the runtime reaches a page as text: the few values rendered here go
through :func:`html.escape`, and the script sets ``textContent``, never HTML.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from actorq.dashboard.auth import cookie_header, csrf_token

if TYPE_CHECKING:
    from actorq.dashboard.app import Dashboard

__all__ = ["PAGES", "routes"]

#: (path, page id, title) of every page in the menu.
PAGES = [
    ("/", "overview", "Overview"),
    ("/tree", "tree", "Supervision tree"),
    ("/queues", "queues", "Queues"),
    ("/jobs", "jobs", "Jobs"),
    ("/dead", "dead", "Dead letters"),
    ("/schedules", "schedules", "Schedules"),
    ("/actors", "actors", "Actors"),
]

_BODIES = {
    "overview": """
<section class="cards">
  <div class="card"><h3>Jobs/s</h3><p id="rate" class="big">-</p></div>
  <div class="card"><h3>Succeeded</h3><p id="count-succeeded" class="big">-</p></div>
  <div class="card"><h3>Failed</h3><p id="count-failed" class="big">-</p></div>
  <div class="card"><h3>Running</h3><p id="count-running" class="big">-</p></div>
  <div class="card"><h3>Dead letters</h3><p id="dead-count" class="big">-</p></div>
  <div class="card"><h3>Processes</h3><p id="procs" class="big">-</p></div>
</section>
<p>Scheduler leader: <span id="leader">-</span> &middot; NATS: <span id="nats">-</span>
 &middot; <span id="health">-</span></p>
<h2>Queues</h2>
<table id="queues-table"><thead><tr><th>Queue</th><th>Pending</th><th>In flight</th>
<th>Redelivered</th><th>Workers</th><th>Jobs/s</th><th>Oldest pending</th></tr></thead>
<tbody></tbody></table>
<h2>Job statuses</h2><table id="status-table"><tbody></tbody></table>""",
    "tree": """<div id="tree"></div><h2>Other processes</h2>
<table id="other-table"><thead><tr><th>PID</th><th>Role</th><th>Name</th><th>State</th>
<th>CPU</th><th>RSS</th><th>Uptime</th></tr></thead><tbody></tbody></table>""",
    "queues": """<table id="queues-table"><thead><tr><th>Queue</th><th>Pending</th>
<th>In flight</th><th>Redelivered</th><th>Workers</th><th>Jobs/s</th>
<th>Oldest pending</th><th></th></tr></thead><tbody></tbody></table>""",
    "jobs": """<form id="job-filter" class="filters">
<input name="q" id="job-search" placeholder="job id or function" autocomplete="off">
<select name="queue" id="job-queue"><option value="">all queues</option></select>
<select name="status" id="job-status"><option value="">all statuses</option></select>
<button type="submit">Search</button></form>
<p id="jobs-summary"></p>
<table id="jobs-table"><thead><tr><th>Job</th><th>Queue</th><th>Function</th>
<th>Status</th><th>Attempts</th><th>Enqueued</th><th>Finished</th><th>Error</th></tr>
</thead><tbody></tbody></table>
<p class="pager"><button id="prev-page">&larr; newer</button> <span id="page-no"></span>
<button id="next-page">older &rarr;</button></p>""",
    "job": """<div class="actions"><button id="cancel-job">Cancel</button>
<button id="requeue-job">Requeue</button></div>
<table id="job-facts" class="facts"><tbody></tbody></table>
<h2>History</h2><table id="job-history"><thead><tr><th>Status</th><th>At</th></tr></thead>
<tbody></tbody></table>
<h2>Error</h2><pre id="job-error"></pre>
<h2>Dead letter</h2><table id="job-dead" class="facts"><tbody></tbody></table>""",
    "dead": """<div class="actions"><button id="requeue-selected">Requeue selected</button>
<button id="requeue-all">Requeue all</button></div>
<table id="dead-table"><thead><tr><th><input type="checkbox" id="dead-all"></th>
<th>Job</th><th>Queue</th><th>Function</th><th>Arguments</th><th>Reason</th>
<th>Failed</th><th></th></tr></thead><tbody></tbody></table>""",
    "schedules": """<table id="schedules-table"><thead><tr><th>Name</th><th>Queue</th>
<th>Function</th><th>Plan</th><th>State</th><th>Runs</th><th>Last run</th>
<th>Next run</th><th></th></tr></thead><tbody></tbody></table>""",
    "actors": """<table id="actors-table"><thead><tr><th>Name</th><th>Processes</th>
<th>Answers</th><th>Role</th><th>Mailbox</th><th>Depth</th><th>Stats</th></tr></thead>
<tbody></tbody></table>""",
}


def _board(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard
    return board


def render(request: Request, page: str, title: str, *, job_id: str = "") -> HTMLResponse:
    """The frame of ``page``: menu, title and the empty tables the script fills."""
    board = _board(request)
    authed = bool(request.scope.get("state", {}).get("authed"))
    csrf = csrf_token(board.token) if authed else ""
    here = ' class="here"'
    menu = "".join(
        f'<a href="{path}"{here if pid == page else ""}>{html.escape(name)}</a>'
        for path, pid, name in PAGES
    )
    heading = html.escape(title if not job_id else f"Job {job_id}")
    note = (
        "" if authed else '<p class="note">Read-only view: <a href="/login">log in</a> to act.</p>'
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{heading} · actorq</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body data-page="{page}" data-csrf="{html.escape(csrf)}" data-can-act="{"1" if authed else ""}"
 data-job-id="{html.escape(job_id)}">
<header><strong>actorq</strong> <span class="ns">{html.escape(board.client.streams.ns.name)}</span>
<nav>{menu}</nav><span id="live" class="live">connecting…</span></header>
<main><h1>{heading}</h1>{note}<p id="error" class="error" hidden></p>
{_BODIES[page]}</main>
<script src="/static/dashboard.js"></script></body></html>"""
    return HTMLResponse(body, headers={"cache-control": "no-store"})


def _page(page: str, title: str) -> Route:
    async def show(request: Request) -> Response:
        return render(request, page, title)

    show.__doc__ = f"The {title} page."
    return Route(next(p for p, pid, _ in PAGES if pid == page), show, name=page)


async def job_page(request: Request) -> Response:
    """One job's page."""
    return render(request, "job", "Job", job_id=request.path_params["id"])


_LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Log in · actorq</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main class="login"><h1>actorq dashboard</h1>{message}
<form method="post" action="/login"><label>Token <input type="password" name="token"
 autocomplete="current-password" autofocus></label> <button type="submit">Log in</button>
</form><p class="note">The token is in the config (<code>[dashboard] token</code>), in
<code>ACTORQ_DASHBOARD_TOKEN</code>, or printed by the dashboard at start.</p></main>
</body></html>"""


async def login(request: Request) -> Response:
    """``GET /login``: the form; ``POST /login``: check the token, set the cookie."""
    if request.method == "GET":
        return HTMLResponse(_LOGIN.format(message=""))
    board = _board(request)
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host')}":
        return HTMLResponse(_LOGIN.format(message='<p class="error">Refused.</p>'), 403)
    # A urlencoded form, parsed here (Starlette's form parser needs python-multipart).
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = (form.get("token") or [""])[0]
    if not board.check_token(given):
        return HTMLResponse(_LOGIN.format(message='<p class="error">Wrong token.</p>'), 401)
    response = RedirectResponse("/", status_code=303)
    response.headers.append(
        "set-cookie", cookie_header(board.token, secure=request.url.scheme == "https").decode()
    )
    return response


def routes() -> list[Route]:
    """Every page route."""
    return [
        *(_page(pid, title) for _, pid, title in PAGES),
        Route("/jobs/{id}", job_page),
        Route("/login", login, methods=["GET", "POST"]),
    ]
