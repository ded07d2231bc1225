"""``actorq jobs``, ``actorq schedules`` and ``actorq send``: look at jobs, steer them,
and enqueue one from the shell."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from actorq.cli.common import (
    RET_CONFIG,
    RET_JOB_FAILED,
    RET_NOT_FOUND,
    RET_USAGE,
    ConfigOpt,
    JsonOpt,
    NamespaceOpt,
    UrlOpt,
    fail,
    iso,
    print_json,
    resolve,
    sync_client,
    table,
)
from actorq.exceptions import ConfigError, JobCancelled, JobFailed, JobTimeout, NotFound
from actorq.wire.messages import JobStatus

jobs_app = typer.Typer(help="List, inspect, cancel and requeue jobs.", no_args_is_help=True)
schedules_app = typer.Typer(help="List, pause, resume and delete schedules.", no_args_is_help=True)

#: Every job status, and those after which nothing more happens to a job.
_STATUSES: tuple[str, ...] = typing.get_args(JobStatus)
_FINAL = ("succeeded", "failed", "cancelled", "dead")

JobId = Annotated[str, typer.Argument(help="The job id.")]
ScheduleName = Annotated[str, typer.Argument(help="The schedule's name.")]


# -- jobs ------------------------------------------------------------------------------


async def _records(client: Any, limit: int) -> list[Any]:
    from actorq.wire.messages import decode_record

    out = []
    for key in await client.results.keys():
        entry = await client.results.get(key)
        if entry is not None and entry.value:
            out.append(decode_record(entry.value))
    out.sort(key=lambda r: r.enqueued_at, reverse=True)
    return out[:limit] if limit else out


@jobs_app.command("list")
def jobs_list(
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status (e.g. failed).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first; 0: all.")] = 50,
    json_: JsonOpt = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Jobs with a stored record (until the result TTL), newest first."""
    if status is not None and status not in _STATUSES:
        fail(f"--status {status!r}: use one of {', '.join(_STATUSES)}", RET_USAGE)
    with sync_client(resolve(url, config, namespace)) as client:
        records = client.run(lambda c: _records(c, 0))
    records = [
        r for r in records
        if (queue is None or r.queue == queue) and (status is None or r.status == status)
    ][: limit or None]  # fmt: skip
    if json_:
        print_json([_summary(r) for r in records])
        return
    rows = [[r.id, r.queue, r.status, str(r.attempts), r.function, iso(r.enqueued_at)]
            for r in records]  # fmt: skip
    table(["ID", "QUEUE", "STATUS", "ATTEMPTS", "FUNCTION", "ENQUEUED"], rows)


def _summary(record: Any) -> dict[str, Any]:
    return {
        "id": record.id, "queue": record.queue, "function": record.function,
        "status": record.status, "attempts": record.attempts,
        "enqueued_at": record.enqueued_at, "started_at": record.started_at,
        "finished_at": record.finished_at, "worker": record.worker,
        "error": None if record.error is None else {
            "type": record.error.type, "message": record.error.message,
            "traceback": record.error.traceback,
        },
        "history": [{"status": h.status, "at": h.at} for h in record.history],
    }  # fmt: skip


@jobs_app.command("show")
def jobs_show(
    job_id: JobId,
    json_: JsonOpt = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """A job's status history, then its result or its traceback."""
    with sync_client(resolve(url, config, namespace)) as client:
        record = client.get_record(job_id)
        if record is None:
            # No record yet: it may still be waiting, delayed or held for its parents.
            status = _status_or_fail(client, job_id)
            typer.echo(f"job {job_id}: {status} (no record yet)")
            return
        value: Any = None
        if record.status == "succeeded":
            try:
                value = client.unwrap(record)
            except Exception as exc:  # a result this process cannot decode is still shown
                value = f"<cannot decode the result here: {exc}>"
    if json_:
        data = _summary(record)
        data["result"] = repr(value) if record.status == "succeeded" else None
        print_json(data)
        return
    typer.echo(f"job {record.id}  queue {record.queue}  function {record.function}")
    typer.echo(f"status {record.status}  attempts {record.attempts}  worker {record.worker or '-'}")
    typer.echo("history:")
    for change in record.history:
        typer.echo(f"  {iso(change.at)}  {change.status}")
    if record.status == "succeeded":
        typer.echo(f"result: {value!r}")
    elif record.error is not None:
        typer.echo(f"error: {record.error.type}: {record.error.message}")
        if record.error.traceback:
            typer.echo(record.error.traceback.rstrip())


def _status_or_fail(client: Any, job_id: str) -> str:
    try:
        return str(client.status(job_id))
    except NotFound as exc:
        fail(str(exc), RET_NOT_FOUND)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: JobId, url: UrlOpt = None, config: ConfigOpt = None, namespace: NamespaceOpt = None
) -> None:
    """Cancel a job: it will not run, or stops if it is running (async jobs)."""
    with sync_client(resolve(url, config, namespace)) as client:
        status = _status_or_fail(client, job_id)  # an unknown id exits 8, cancels nothing
        if status in _FINAL:
            typer.echo(f"job {job_id} already {status}: nothing to cancel")
            return
        client.cancel(job_id)
    typer.echo(f"cancel requested for job {job_id} ({status})")


@jobs_app.command("dead")
def jobs_dead(
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 100,
    json_: JsonOpt = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """The dead letters, with the reason each job was given up on."""
    with sync_client(resolve(url, config, namespace)) as client:
        letters = client.dead_letters(limit)
    if json_:
        print_json([
            {"job_id": d.job_id, "queue": d.queue, "reason": d.reason, "detail": d.detail,
             "failed_at": d.failed_at}
            for d in letters
        ])  # fmt: skip
        return
    rows = [[d.job_id or "-", d.queue, d.reason, iso(d.failed_at),
             (d.detail.strip().splitlines() or [""])[-1][:60]] for d in letters]  # fmt: skip
    table(["JOB", "QUEUE", "REASON", "FAILED", "DETAIL"], rows)


@jobs_app.command("requeue")
def jobs_requeue(
    job_id: Annotated[str | None, typer.Argument(help="The dead job's id.")] = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help="Requeue every dead letter.")
    ] = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Enqueue a dead-lettered job again, as it was (or all of them with --all-dead)."""
    if (job_id is None) == (not all_dead):
        fail("give a job id or --all-dead (not both)", RET_CONFIG)
    with sync_client(resolve(url, config, namespace)) as client:
        if job_id is not None:
            ids = [job_id]
        else:
            ids = [d.job_id for d in client.dead_letters(100_000) if d.job_id]
        for one in ids:
            job = client.requeue(one)
            typer.echo(f"requeued job {job.id} on queue {job.queue}")
    if not ids:
        typer.echo("no dead letters")


# -- schedules -------------------------------------------------------------------------


@schedules_app.command("list")
def schedules_list(
    json_: JsonOpt = False,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Every schedule: name, plan, time zone, next runs, paused."""
    with sync_client(resolve(url, config, namespace)) as client:
        infos = client.schedules()
    if json_:
        print_json(infos)
        return
    rows = [
        [s.name, s.queue, s.function, s.cron or f"every {s.every:g}s", s.tz,
         "yes" if s.paused else "no", str(s.runs),
         ", ".join(iso(t) for t in s.next_runs[:2]) or "-"]
        for s in infos
    ]  # fmt: skip
    table(["NAME", "QUEUE", "FUNCTION", "PLAN", "TZ", "PAUSED", "RUNS", "NEXT"], rows)


def _schedule_action(verb: str) -> Callable[..., None]:
    def action(
        name: ScheduleName,
        url: UrlOpt = None,
        config: ConfigOpt = None,
        namespace: NamespaceOpt = None,
    ) -> None:
        with sync_client(resolve(url, config, namespace)) as client:
            if verb == "pause":
                client.pause_schedule(name)
            elif verb == "resume":
                client.resume_schedule(name)
            else:
                client.delete_schedule(name)
        typer.echo(f"schedule {name}: {verb}d")

    action.__doc__ = f"{verb.capitalize()} schedule NAME."
    return action


# -- send ------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``10s``, ``5m``, ``1.5h``, ``2d``, ``250ms`` or plain seconds, in seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        fail(f"--in {text!r}: use e.g. 10s, 5m, 2h, 1d or a number of seconds", RET_CONFIG)
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time; without a zone it is the local time."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r}: use ISO 8601, e.g. 2026-01-31T09:30 or 09:30+01:00", RET_CONFIG)
    return when if when.tzinfo is not None else when.astimezone()


def load_function(path: str, sys_path: list[str] | None = None) -> Callable[..., Any]:
    """Import ``pkg.module:function`` as workers do: from ``sys_path`` (a config's),
    then the current directory."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        fail(f"{path!r}: name the function as pkg.module:function", RET_CONFIG)
    for entry in [os.getcwd(), *reversed([str(Path(p).resolve()) for p in sys_path or []])]:
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        hint = (
            "" if sys_path else "; run from the directory that holds it, or pass "
            "--config FILE whose `sys_path` does (e.g. --config examples/config.toml)"
        )
        fail(f"cannot import {path}: {exc}{hint}", RET_CONFIG)
    if not callable(obj):
        fail(f"{path} is not callable", RET_CONFIG)
    return obj  # type: ignore[no-any-return]


def _config_sys_path(config: Path | None) -> list[str]:
    if config is None:
        return []
    from actorq.config.schema import load_config

    try:
        return list(load_config(config, check_imports=False).sys_path)
    except ConfigError as exc:
        fail(str(exc), RET_CONFIG)


def _arg(text: str) -> Any:
    # JSON when it parses (numbers, lists, quoted strings), else the text itself.
    try:
        return json.loads(text)
    except ValueError:
        return text


def send(
    queue: Annotated[str, typer.Argument(help="The queue to send to.")],
    function: Annotated[str, typer.Argument(help="pkg.module:function")],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments; JSON or text.")] = None,
    kwargs: Annotated[
        str | None, typer.Option("--kwargs", help="Keyword args, a JSON object.")
    ] = None,
    in_: Annotated[
        str | None, typer.Option("--in", help="Run after this delay: 10s, 5m...")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Run at this ISO 8601 time.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait and print the result.")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: give up after this.")] = None,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Enqueue FUNCTION(ARGS..., **KWARGS) on QUEUE; prints the job id.

    With --wait, prints the result (exit 0) or the remote traceback (exit 9).
    """
    from actorq.jobs.options import EnqueueOptions

    if in_ is not None and at is not None:
        fail("give --in or --at, not both", RET_CONFIG)
    try:
        kw = json.loads(kwargs) if kwargs else {}
    except ValueError as exc:
        fail(f"--kwargs is not JSON: {exc}", RET_CONFIG)
    if not isinstance(kw, dict):
        fail("--kwargs must be a JSON object", RET_CONFIG)
    when: dt.datetime | float | None = None
    if in_ is not None:
        when = dt.datetime.now(dt.UTC).timestamp() + parse_duration(in_)
    elif at is not None:
        when = parse_time(at)
    fn = load_function(function, _config_sys_path(config))
    call_args = [_arg(a) for a in args or []]
    with sync_client(resolve(url, config, namespace)) as client:
        if not client.served(queue):
            typer.echo(
                f"warning: queue {queue!r} has no worker yet; the job waits until one serves "
                "it (a [[queues]] entry of `actorq up`)",
                err=True,
            )
        job = client.enqueue_with(EnqueueOptions(queue=queue), fn, call_args, kw, at=when)
        typer.echo(f"sent job {job.id} to queue {job.queue}")
        if not wait:
            return
        try:
            value = job.result(timeout=timeout)
        except JobFailed as exc:
            typer.echo(f"job {job.id} failed: {exc.exc_type}: {exc.exc_message}", err=True)
            if exc.traceback:
                typer.echo(exc.traceback.rstrip(), err=True)
            raise typer.Exit(RET_JOB_FAILED) from None
        except JobTimeout:
            typer.echo(
                f"job {job.id}: no result after {timeout}s; it may still be queued or "
                f"running: see `actorq jobs show {job.id}`, or wait longer (--timeout)",
                err=True,
            )
            raise typer.Exit(RET_JOB_FAILED) from None
        except JobCancelled as exc:
            typer.echo(f"job {job.id}: {exc}", err=True)
            raise typer.Exit(RET_JOB_FAILED) from None
    typer.echo(repr(value) if not isinstance(value, str) else value)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``actorq`` app."""
    app.add_typer(jobs_app, name="jobs")
    for verb in ("pause", "resume", "delete"):
        schedules_app.command(verb)(_schedule_action(verb))
    app.add_typer(schedules_app, name="schedules")
    app.command("send")(send)
