"""Recurring jobs: a cron schedule in a time zone, listed, run, paused and deleted.

Starts an embedded nats-server, the result actor, one queue actor and the scheduler
actor (which fires schedules; several may run, one leads) as Trio tasks.
Run it: ``python examples/cron_jobs.py``
"""

from __future__ import annotations

import functools
import time

import trio

import actorq
from actorq.jobs.queue_actor import QueueActorSettings, serve_queue_actor
from actorq.jobs.result_actor import serve_result_actor
from actorq.jobs.scheduler_actor import serve_scheduler_actor


def report(kind: str) -> str:
    return f"{kind} report at {time.strftime('%H:%M:%S')}"


async def main() -> None:
    async with actorq.open_nats_server() as server, trio.open_nursery() as actors:
        await actors.start(functools.partial(serve_result_actor, server.url))
        settings = QueueActorSettings(queue="default", url=[server.url], concurrency=4)
        await actors.start(functools.partial(serve_queue_actor, settings))
        await actors.start(functools.partial(serve_scheduler_actor, server.url))

        async with actorq.open_client(server.url) as client:
            # Every second (croniter's optional sixth field is seconds), Paris time.
            # Declaring the same name again updates the schedule; it never duplicates.
            for _ in range(2):
                info = await client.schedule(
                    "sales", report, "sales", cron="* * * * * *", tz="Europe/Paris",
                    max_runs=2,
                )  # fmt: skip
            print("schedules:", [s.name for s in await client.schedules()])
            print("next runs:", [d.strftime("%H:%M:%S") for d in info.next_runs[:2]])

            # Each run is the job "<name>-<due unix time>".
            for due in info.next_runs[:2]:
                job = client.job(f"sales-{int(due.timestamp())}")
                print(await job.result(timeout=15))

            await client.schedule("daily", report, "daily", cron="0 9 * * *", tz="Asia/Tokyo")
            paused = await client.pause_schedule("daily")
            print("daily paused:", paused.paused, "next runs:", paused.next_runs)
            resumed = await client.resume_schedule("daily")
            print("daily resumed, next run (UTC):", resumed.next_runs[0].isoformat())
            await client.delete_schedule("daily")
            await client.delete_schedule("sales")
            print("left:", [s.name for s in await client.schedules()])

        actors.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
