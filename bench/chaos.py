"""Chaos: jobs through ``actorq up`` while its processes are ``kill -9``ed; what survives.

    python bench/chaos.py [--n 10000] [--kills 20] [--json]
    python bench/chaos.py --cluster 3 [--n 10000] [--kills 20] [--json]

``--cluster 3`` runs it across the nodes of a local NATS cluster instead, with two
runtimes, node kills and a runtime kill: see ``bench/_chaos_cluster.py`` for its keys.

Starts ``actorq up`` (embedded nats-server, the result and scheduler actors, one queue
with 2 queue actor processes) from a config written to a temporary dir. Sends ``--n``
jobs one at a time through the sync helper (:class:`actorq.SyncClient`); 1 % of them are
poison, in turn: a result over ``[results] max_bytes`` (1 MiB here), a ``SystemExit``, a
function the workers cannot import. Meanwhile a random runtime process (a queue actor,
the result actor, the scheduler) is ``kill -9``ed every second, ``--kills`` times, and
halfway through the embedded nats-server is ``kill -9``ed once (``actorq up`` brings it
back). Then every job is waited for (bounded by ``--settle`` seconds), ``actorq up``
gets SIGTERM, and the figures are printed:

| key | meaning | bar |
|---|---|---|
| ``lost`` | jobs with no record at all once settled | 0 |
| ``stuck`` | jobs whose record is not final after the settle bound | 0 |
| ``wrong_results`` | ordinary jobs not ``succeeded`` with their own value | 0 |
| ``duplicate_results`` | jobs whose record took a final status twice (two results) | 0 |
| ``duplicate_runs`` | ordinary jobs that *ran* twice (informational, see below) | — |
| ``poison_settled`` | poison jobs in their right final state (of ``poison``) | all |
| ``orphans`` | processes of the tree alive after ``actorq up`` exited | 0 |
| ``exit_code`` | of ``actorq up`` after SIGTERM | 0 |
| ``kills`` | runtime processes killed (by role in ``kills_by_role``) | ``--kills`` |
| ``nats_kills``, ``nats_back_s`` | nats-server kills; seconds until it accepted again | 1, < 2 |
| ``send_retries`` | sends the sync helper had to repeat (same job id) while NATS was away | — |
| ``wall_s`` | the whole run, start of ``up`` to its exit | — |

A duplicate *run* is counted from per-process logs the job appends its number to; a
duplicate *result* from the record's status history. Execution is at least once: a
worker killed after running a job and before its outcome is stored leaves the job to
be redelivered and run again, so ``duplicate_runs`` may be above 0; its record still
takes one final status and one result, so ``duplicate_results`` must be 0. The right
final states of the poison kinds: ``failed`` (oversize result), ``failed``
(``SystemExit``), ``dead`` (function the workers cannot import). The supervisor's restart
intensity is raised in the config (a kill a second would exceed the default 3 in 10 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _chaos_common as common  # noqa: E402
import _chaos_jobs  # noqa: E402

from actorq import SyncClient  # noqa: E402
from actorq.nats.local_credentials import ENV_CREDENTIALS_FILE, credentials_path  # noqa: E402


class Killer(threading.Thread):
    """``kill -9`` a random runtime process every ``every`` s, ``kills`` times; the
    nats-server once, halfway."""

    def __init__(
        self, runtime: common.Runtime, kills: int, port: int, seed: int, every: float
    ) -> None:
        super().__init__(daemon=True)
        self.runtime = runtime
        self.kills = kills
        self.port = port
        self.every = every
        self.random = random.Random(seed)
        self.by_role: Counter[str] = Counter()
        self.nats_kills = 0
        self.nats_back_s: float | None = None
        self.stop = threading.Event()

    def _kill_nats(self) -> None:
        pids = self.runtime.by_role().get("nats-server", [])
        if not pids:
            return
        os.kill(pids[0], signal.SIGKILL)
        killed = time.monotonic()
        self.nats_kills += 1
        while common.alive(pids[0]) or not common.accepts(self.port):
            if time.monotonic() - killed > 30 or self.stop.is_set():
                return
            time.sleep(0.02)
        self.nats_back_s = round(time.monotonic() - killed, 3)

    def run(self) -> None:
        done = 0
        while done < self.kills and not self.stop.wait(self.every):
            if done == self.kills // 2 and self.nats_kills == 0:
                self._kill_nats()
            roles = self.runtime.by_role()
            victims = [(r, p) for r in ("queue", "results", "scheduler") for p in roles.get(r, [])]
            if not victims:
                continue  # all being restarted right now
            role, pid = self.random.choice(victims)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                self.by_role[role] += 1
                done += 1


def run(
    n: int, kills: int, job_ms: float, concurrency: int, settle: float, seed: int
) -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="actorq-chaos-") as tmp_name:
        tmp = Path(tmp_name)
        port = common.free_port()
        data = tmp / "nats"
        marker = tmp / "runs"
        marker.mkdir()
        config = tmp / "chaos.toml"
        config.write_text(
            common.config_text(
                "chaos",
                f"[nats]\nport = {port}\ndata_dir = {json.dumps(str(data))}\n",
                concurrency,
            )
        )
        unimportable = common.client_only_function(tmp)

        os.environ[ENV_CREDENTIALS_FILE] = str(credentials_path(data))
        runtime = common.Runtime(config, tmp / "up.stderr")
        try:
            runtime.ready()
            kinds: dict[str, str] = {}
            poison_fns = {
                "oversize": _chaos_jobs.oversize,
                "exits": _chaos_jobs.exits,
                "unimportable": unimportable,
            }
            killer = Killer(runtime, kills, port, seed, every=1.0)
            send_retries = 0
            with SyncClient(runtime.url, namespace="chaos") as client:
                killer.start()
                send_started = time.monotonic()
                for i in range(n):
                    job_id = f"chaos-{i}"
                    if i % 100 == 50:
                        kind = list(common.POISON)[(i // 100) % len(common.POISON)]
                        args: tuple[Any, ...] = (i, str(marker))
                        fn = poison_fns[kind]
                    else:
                        kind, fn, args = "ok", _chaos_jobs.work, (i, str(marker), job_ms)
                    kinds[job_id] = kind
                    send_retries += common.send(client, job_id, fn, args)
                send_s = time.monotonic() - send_started
                killer.join(kills * 1.0 + 120)
                killer.stop.set()
                settle_started = time.monotonic()
                records = common.settle(client, list(kinds), settle)
                settle_s = time.monotonic() - settle_started
                values = {
                    job_id: common.value(client, record)
                    for job_id, record in records.items()
                    if record is not None and record.status == "succeeded"
                }
            exit_code = runtime.stop()
            orphans = runtime.orphans()
            ran = common.runs(marker)
        finally:
            runtime.close()
    figures = common.tally(kinds, records, values, ran, _chaos_jobs.expected)
    figures.update(
        orphans=len(orphans),
        exit_code=exit_code,
        kills=sum(killer.by_role.values()),
        kills_by_role=dict(killer.by_role),
        nats_kills=killer.nats_kills,
        nats_back_s=killer.nats_back_s,
        send_retries=send_retries,
        send_s=round(send_s, 2),
        settle_s=round(settle_s, 2),
        slow_waits=common.SLOW_WAITS[:10],
        wall_s=round(time.monotonic() - started, 2),
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="jobs (default 10000)")
    parser.add_argument("--kills", type=int, default=20, help="runtime kills, 1 a second")
    parser.add_argument("--job-ms", type=float, default=20.0, help="each job's own time")
    parser.add_argument("--concurrency", type=int, default=10, help="per queue actor")
    parser.add_argument("--settle", type=float, default=300.0, help="bound on the wait")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--cluster",
        type=int,
        default=0,
        metavar="SIZE",
        help="run on a local NATS cluster of SIZE nodes (3) with two runtimes (see _chaos_cluster)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.cluster:
        import _chaos_cluster

        figures = _chaos_cluster.run_cluster(
            args.cluster, args.n, args.kills, args.job_ms, args.concurrency, args.settle, args.seed
        )
    else:
        figures = run(args.n, args.kills, args.job_ms, args.concurrency, args.settle, args.seed)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"  {key:<18} {value}")


if __name__ == "__main__":
    main()
