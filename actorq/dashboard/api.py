"""The JSON API behind every page (documented in ``docs/dashboard.md``).

GET ``/api/...`` reads; POST ``/api/...`` acts (see :mod:`actorq.dashboard.auth` for
what an action needs). Errors come back as ``{"error": "..."}`` with 400 (bad
request), 404 (no such job, dead letter, schedule or queue) or 502 (NATS failed).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from actorq.dashboard import gather
from actorq.exceptions import ActorqError, ConfigError, NotFound, UsageError
from actorq.jobs.streams import check_job_id

if TYPE_CHECKING:
    from actorq.dashboard.app import Dashboard

__all__ = ["json_response", "routes"]

Handler = Callable[[Request], Awaitable[Response]]

#: Dead letters a bulk requeue of "all" takes at most in one request.
BULK_LIMIT = 1000


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as JSON (msgspec: structs, datetimes and all)."""
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


def _job_id(request: Request) -> str:
    """The ``{id}`` of the path, refused (400) unless it can be a job id."""
    return check_job_id(request.path_params["id"])


def _name(request: Request) -> str:
    """The ``{name}`` of the path (a queue or schedule), refused (400) unless valid."""
    return check_job_id(request.path_params["name"])


def _dashboard(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard
    return board


def _errors(fn: Handler) -> Handler:
    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except NotFound as exc:
            return json_response({"error": str(exc)}, 404)
        except (ConfigError, UsageError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        except ActorqError as exc:
            return json_response({"error": f"{type(exc).__name__}: {exc}"}, 502)

    return wrapper


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise UsageError("the request body must be JSON") from None
    if not isinstance(data, dict):
        raise UsageError("the request body must be a JSON object")
    return data


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, got {raw!r}") from None


# -- reads -------------------------------------------------------------------------------


@_errors
async def overview(request: Request) -> Response:
    """``GET /api/overview``."""
    board = _dashboard(request)
    return json_response(await gather.overview(board.client, board.index, board.procs))


@_errors
async def tree(request: Request) -> Response:
    """``GET /api/tree``."""
    board = _dashboard(request)
    return json_response(await gather.tree(board.client, board.procs))


@_errors
async def queues(request: Request) -> Response:
    """``GET /api/queues``."""
    board = _dashboard(request)
    return json_response(await gather.queues(board.client, board.procs))


@_errors
async def jobs(request: Request) -> Response:
    """``GET /api/jobs?queue=&status=&q=&page=&per_page=``: newest first."""
    board = _dashboard(request)
    params = request.query_params
    page = board.index.query(
        queue=params.get("queue") or None,
        status=params.get("status") or None,
        search=(params.get("q") or "").strip() or None,
        page=_int(request, "page", 1),
        per_page=_int(request, "per_page", 50),
    )
    return json_response(
        {
            "ready": board.index.ready.is_set(),
            "queues": board.index.queues(),
            "status_counts": board.index.status_counts(),
            **msgspec.to_builtins(page),
        }
    )


@_errors
async def job(request: Request) -> Response:
    """``GET /api/jobs/{id}``."""
    return json_response(
        await gather.job_detail(_dashboard(request).client, request.path_params["id"])
    )


@_errors
async def dead(request: Request) -> Response:
    """``GET /api/dead?limit=``: oldest first."""
    limit = min(max(1, _int(request, "limit", 200)), BULK_LIMIT)
    return json_response(await gather.dead_letters(_dashboard(request).client, limit))


@_errors
async def schedules(request: Request) -> Response:
    """``GET /api/schedules``."""
    return json_response(await gather.schedules(_dashboard(request).client))


@_errors
async def actors(request: Request) -> Response:
    """``GET /api/actors``."""
    board = _dashboard(request)
    return json_response(await gather.actors(board.client, board.procs))


async def events(request: Request) -> Response:
    """``GET /api/events``: server-sent ``overview`` events, one a second."""
    hub = _dashboard(request).hub

    async def stream() -> Any:
        async with hub.listen() as frames:
            yield b": actorq dashboard\n\n"
            async for frame in frames:
                yield frame

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


# -- actions -----------------------------------------------------------------------------


@_errors
async def purge_queue(request: Request) -> Response:
    """``POST /api/queues/{name}/purge`` with ``{"confirm": "<name>"}``."""
    name = _name(request)
    body = await _body(request)
    if body.get("confirm") != name:
        raise UsageError(f'to purge, send {{"confirm": "{name}"}}: the queue\'s name again')
    removed = await _dashboard(request).client.purge(name)
    return json_response({"queue": name, "removed": removed})


@_errors
async def cancel_job(request: Request) -> Response:
    """``POST /api/jobs/{id}/cancel``."""
    job_id = _job_id(request)
    await _dashboard(request).client.cancel(job_id)
    return json_response({"id": job_id, "cancel_requested": True})


@_errors
async def requeue_job(request: Request) -> Response:
    """``POST /api/jobs/{id}/requeue`` (also ``/api/dead/{id}/requeue``): run a
    dead-lettered job again."""
    job = await _dashboard(request).client.requeue(_job_id(request))
    return json_response({"id": job.id, "queue": job.queue, "requeued": True})


@_errors
async def delete_dead(request: Request) -> Response:
    """``POST /api/dead/{id}/delete``."""
    job_id = _job_id(request)
    await _dashboard(request).client.delete_dead_letter(job_id)
    return json_response({"id": job_id, "deleted": True})


@_errors
async def requeue_dead(request: Request) -> Response:
    """``POST /api/dead/requeue`` with ``{"ids": [...]}`` or ``{"all": true}``."""
    client = _dashboard(request).client
    body = await _body(request)
    if body.get("all") is True:
        ids = [d.job_id for d in await client.dead_letters(limit=BULK_LIMIT) if d.job_id]
    else:
        raw = body.get("ids")
        if not isinstance(raw, list) or not all(isinstance(i, str) for i in raw):
            raise UsageError('send {"ids": ["<job id>", ...]} or {"all": true}')
        ids = raw[:BULK_LIMIT]
    done: list[str] = []
    failed: dict[str, str] = {}
    for job_id in ids:
        try:
            await client.requeue(job_id)
        except ActorqError as exc:
            failed[job_id] = str(exc)[:300]
        else:
            done.append(job_id)
    return json_response({"requeued": done, "failed": failed})


def _schedule_action(verb: str) -> Handler:
    @_errors
    async def act(request: Request) -> Response:
        client = _dashboard(request).client
        name = _name(request)
        if verb == "pause":
            return json_response(await client.pause_schedule(name))
        if verb == "resume":
            return json_response(await client.resume_schedule(name))
        if verb == "trigger":
            job = await client.trigger_schedule(name)
            return json_response({"name": name, "job_id": job.id, "queue": job.queue})
        with trio.fail_after(30):
            await client.delete_schedule(name)
        return json_response({"name": name, "deleted": True})

    act.__doc__ = f"``POST /api/schedules/{{name}}/{verb}``."
    return act


def routes() -> list[Route]:
    """Every API route."""
    return [
        Route("/api/overview", overview),
        Route("/api/tree", tree),
        Route("/api/queues", queues),
        Route("/api/jobs", jobs),
        Route("/api/jobs/{id}", job),
        Route("/api/dead", dead),
        Route("/api/schedules", schedules),
        Route("/api/actors", actors),
        Route("/api/events", events),
        Route("/api/queues/{name}/purge", purge_queue, methods=["POST"]),
        Route("/api/jobs/{id}/cancel", cancel_job, methods=["POST"]),
        Route("/api/jobs/{id}/requeue", requeue_job, methods=["POST"]),
        Route("/api/dead/requeue", requeue_dead, methods=["POST"]),
        Route("/api/dead/{id}/requeue", requeue_job, methods=["POST"]),
        Route("/api/dead/{id}/delete", delete_dead, methods=["POST"]),
        *(
            Route(f"/api/schedules/{{name}}/{verb}", _schedule_action(verb), methods=["POST"])
            for verb in ("pause", "resume", "trigger", "delete")
        ),
    ]
