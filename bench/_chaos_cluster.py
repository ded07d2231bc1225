"""``bench/chaos.py --cluster 3``: the chaos run across the nodes of a NATS cluster.

A local cluster (:class:`actorq.nats.cluster.LocalCluster`) of ``--cluster`` routed
nats-server processes holds every stream and bucket with 3 replicas. Two ``actorq up``
runtimes (as on two hosts, 2 queue actor processes each) serve one queue from it; a few
interval schedules (every 1, 2 and 3 s) run throughout. ``--n`` jobs are sent one at a
time through the sync helper, 1 % poison as in the single-node run. Meanwhile, one
event a second:

* a random queue actor of either runtime is ``kill -9``ed (``--kills`` in all);
* at a fifth of the kills, runtime B's ``actorq up`` itself is SIGKILLed (its children
  must die with it: the orphan count covers them) and B is started again;
* at two fifths, NATS node 1 is ``kill -9``ed, and started again once every stream of
  the namespace has a leader on a surviving node; at three fifths, once node 1 caught
  up again, node 2 the same way.

Keys, beside the single-node ones (``lost``, ``duplicate_results``, ``wrong_results``,
``stuck``, ``orphans``, ``poison_settled``, ...):

* ``double_fired`` (bar 0): schedule due times fired twice: a schedule's ``runs`` count
  above the due-time jobs found, plus due-time jobs with two final statuses;
* ``schedule_fired`` / ``schedule_missed``: due times with a job; due times between the
  first and the last fired one without a job (a gap without a leader folds missed times
  into one run: informational);
* ``leader_election_s``: of the two node kills, the longer time from the kill until
  every stream and bucket of the namespace named a leader on a surviving node;
* ``node_rejoins_s``: for each restarted node, the time until it was a current replica
  of every stream again (the next node is killed only then, as in a rolling restart);
* ``worst_job_delay_s``: the longest enqueue-to-finish time of an ordinary job;
* ``runtime_kill_orphans`` (bar 0): processes of the SIGKILLed runtime alive 10 s after
  its kill; ``exit_codes``: of the two runtimes left, after SIGTERM (bar 0, 0).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _chaos_common as common
import _chaos_jobs
import trio

from actorq import SyncClient
from actorq.exceptions import ActorqError
from actorq.nats.cluster import LocalCluster, wait_for_jetstream
from actorq.nats.connection import open_nats
from actorq.wire.messages import JobRecord

__all__ = ["run_cluster"]

NAMESPACE = "chaosc"
SCHEDULES = {"tick1": 1.0, "tick2": 2.0, "tick3": 3.0}
_KEY_ENV = "ACTORQ_CHAOS_KEY"

async def _until_streams(
    urls: list[str], behind: Callable[[Any], bool], within: float, lagging: list[Any]
) -> float | None:
    """Seconds until no stream of the namespace is ``behind`` (as read through ``urls``);
    ``None`` after ``within`` s, with the streams still behind in ``lagging``."""
    started = time.monotonic()
    with trio.move_on_after(within):
        while True:
            with contextlib.suppress(ActorqError):
                async with open_nats(urls, connect_timeout=2.0) as conn:
                    while True:
                        with contextlib.suppress(ActorqError):
                            infos = await conn.jsm("streams_info")
                            mine = [i for i in infos if NAMESPACE in i.config.name]
                            late = [i for i in mine if behind(i)]
                            lagging[:] = [(i.config.name, str(i.cluster)) for i in late]
                            if mine and not late:
                                return time.monotonic() - started
                        await trio.sleep(0.05)
            await trio.sleep(0.1)
    return None


def _leaderless(info: Any, killed: str) -> bool:
    """Whether a stream has no leader yet, or still names the ``killed`` node."""
    leader = info.cluster.leader if info.cluster else None
    return not leader or leader == killed


def _current(info: Any, node: str) -> bool:
    cluster = info.cluster
    if cluster is None:
        return False
    if cluster.leader == node:
        return True
    return any(peer.name == node and peer.current for peer in cluster.replicas or [])


class ClusterKiller(threading.Thread):
    """One event a second: a queue actor kill; at set points a runtime or a node kill."""

    def __init__(
        self,
        runtimes: list[common.Runtime],
        start_runtime: Any,
        cluster: LocalCluster,
        kills: int,
        seed: int,
    ) -> None:
        super().__init__(daemon=True)
        self.runtimes = runtimes
        self.start_runtime = start_runtime
        self.cluster = cluster
        self.kills = kills
        self.random = random.Random(seed)
        self.queue_kills = 0
        self.runtime_killed: common.Runtime | None = None
        self.runtime_kill_orphans = 0
        self.node_kills: list[str] = []
        self.elections: list[float | None] = []
        self.rejoins: list[float | None] = []
        self.lagging: list[Any] = []
        self.stop = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the bench, not lost in a thread
            self.error = exc
        finally:
            self.done.set()
        # The nodes this thread started again die with it (Linux ties PR_SET_PDEATHSIG
        # to the thread that forked), so it lives until the bench is over.
        self.stop.wait()

    def _run(self) -> None:
        events = {self.kills // 5: self._kill_runtime}
        events[2 * self.kills // 5] = lambda: self._kill_node(0)
        events[3 * self.kills // 5] = lambda: self._kill_node(1)
        done = 0
        while done < self.kills and not self.stop.wait(1.0):
            if done in events:
                events.pop(done)()
            victims = [p for rt in self.runtimes for p in rt.by_role().get("queue", [])]
            if not victims:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.random.choice(victims), signal.SIGKILL)
                self.queue_kills += 1
                done += 1

    def _kill_runtime(self) -> None:
        victim = self.runtimes[-1]
        victim.children()  # remember every pid below it, for the orphan count
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        self.runtime_killed = victim
        self.runtime_kill_orphans = len(victim.orphans(grace=10.0))
        replacement = self.start_runtime("b2")
        replacement.ready()
        self.runtimes[-1] = replacement

    def _kill_node(self, index: int) -> None:
        name = f"{self.cluster.name}-{index + 1}"
        self.cluster.kill(index)
        self.node_kills.append(name)
        survivors = [u for i, u in enumerate(self.cluster.urls) if i != index]
        took = trio.run(
            _until_streams, survivors, lambda i: _leaderless(i, name), 60.0, self.lagging
        )
        self.elections.append(None if took is None else round(took, 3))
        self.cluster.restart(index)  # on its own port, with its data dir
        # As an operator waits before restarting the next node: until the restarted one
        # is a current replica (or the leader) of every stream again.
        took = trio.run(
            _until_streams, self.cluster.urls, lambda i: not _current(i, name), 120.0, self.lagging
        )
        self.rejoins.append(None if took is None else round(took, 3))


def _retried(call: Any, within: float = 60.0) -> Any:
    """``call()``, repeated while it fails with an actorq error (a stream electing a new
    leader after a node kill answers nothing for a few seconds), for ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except ActorqError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _schedule_figures(client: SyncClient, start_at: int, stopped: float) -> tuple[int, int, int]:
    """(double_fired, fired, missed) of the interval schedules, from their due-time jobs."""
    infos = _retried(client.schedules)
    runs = {info.name: info.runs for info in infos if info.name in SCHEDULES}
    double = fired = missed = 0
    for name, every in SCHEDULES.items():
        dues = [start_at + k * every for k in range(int((stopped - start_at) / every) + 1)]
        found: list[JobRecord | None] = [
            _retried(lambda job_id=f"{name}-{int(d)}": client.get_record(job_id)) for d in dues
        ]
        present = [i for i, rec in enumerate(found) if rec is not None]
        fired += len(present)
        if present:
            missed += sum(1 for rec in found[present[0] : present[-1] + 1] if rec is None)
        double += max(0, runs.get(name, 0) - len(present))
        double += sum(1 for rec in found if rec is not None and common.final_entries(rec) > 1)
    return double, fired, missed


def run_cluster(
    size: int, n: int, kills: int, job_ms: float, concurrency: int, settle: float, seed: int
) -> dict[str, Any]:
    """The cluster chaos run; its figures."""
    started = time.monotonic()
    key = os.urandom(32)
    with tempfile.TemporaryDirectory(prefix="actorq-chaosc-") as tmp_name:
        tmp = Path(tmp_name)
        marker = tmp / "runs"
        marker.mkdir()
        cluster = LocalCluster(size, data_dir=tmp / "cluster")
        runtimes: list[common.Runtime] = []
        every: list[common.Runtime] = []
        killer: ClusterKiller | None = None
        try:
            cluster.start()
            trio.run(wait_for_jetstream, cluster.urls)
            config = tmp / "chaos.toml"
            config.write_text(
                common.config_text(
                    NAMESPACE,
                    f"[nats]\nurl = {json.dumps(cluster.urls)}\nreplicas = 3\n\n"
                    f'[security]\nsigning_key_env = "{_KEY_ENV}"\n',
                    concurrency,
                )
            )

            def start_runtime(name: str) -> common.Runtime:
                runtime = common.Runtime(
                    config, tmp / f"up-{name}.stderr", env={_KEY_ENV: key.hex()}
                )
                every.append(runtime)
                return runtime

            for name in ("a", "b"):
                runtimes.append(start_runtime(name))
                runtimes[-1].ready()
            poison_fns = {
                "oversize": _chaos_jobs.oversize,
                "exits": _chaos_jobs.exits,
                "unimportable": common.client_only_function(tmp),
            }
            kinds: dict[str, str] = {}
            send_retries = 0
            with SyncClient(cluster.urls, namespace=NAMESPACE, signing_key=key) as client:
                start_at = math.ceil(time.time()) + 2
                for name, period in SCHEDULES.items():
                    client.schedule(
                        name, _chaos_jobs.tick, name, str(marker), every=period, start_at=start_at
                    )
                killer = ClusterKiller(runtimes, start_runtime, cluster, kills, seed)
                killer.start()
                send_started = time.monotonic()
                for i in range(n):
                    job_id = f"chaos-{i}"
                    if i % 100 == 50:
                        kind = list(common.POISON)[(i // 100) % len(common.POISON)]
                        fn, args = poison_fns[kind], (i, str(marker))
                    else:
                        kind, fn, args = "ok", _chaos_jobs.work, (i, str(marker), job_ms)
                    kinds[job_id] = kind
                    send_retries += common.send(client, job_id, fn, args)
                send_s = time.monotonic() - send_started
                killer.done.wait(kills * 1.0 + 300)
                if killer.error is not None:
                    raise killer.error
                for name in SCHEDULES:
                    _retried(lambda name=name: client.pause_schedule(name))
                stopped = time.time()
                settle_started = time.monotonic()
                records = common.settle(client, list(kinds), settle)
                settle_s = time.monotonic() - settle_started
                values = {
                    job_id: common.value(client, record)
                    for job_id, record in records.items()
                    if record is not None and record.status == "succeeded"
                }
                double_fired, fired, missed = _schedule_figures(client, start_at, stopped)
            exit_codes = [rt.stop() for rt in runtimes]
            orphans: set[int] = set()
            for rt in every:
                orphans |= rt.orphans()
            ran = common.runs(marker)
        finally:
            for rt in every:
                rt.close()
            cluster.close()
            if killer is not None:
                killer.stop.set()
                killer.join(10)
    figures = common.tally(kinds, records, values, ran, _chaos_jobs.expected)
    delays = [
        rec.finished_at - rec.enqueued_at
        for job_id, rec in records.items()
        if rec is not None and rec.finished_at is not None and kinds[job_id] == "ok"
    ]
    elections = [e for e in killer.elections if e is not None]
    figures.update(
        orphans=len(orphans),
        double_fired=double_fired,
        schedule_fired=fired,
        schedule_missed=missed,
        leader_election_s=max(elections) if len(elections) == len(killer.elections) else None,
        leader_elections_s=killer.elections,
        node_rejoins_s=killer.rejoins,
        node_lagging=killer.lagging,
        worst_job_delay_s=round(max(delays), 3) if delays else None,
        runtime_kill_orphans=killer.runtime_kill_orphans,
        exit_codes=exit_codes,
        exit_code=0 if exit_codes and all(c == 0 for c in exit_codes) else exit_codes,
        kills=killer.queue_kills,
        node_kills=killer.node_kills,
        runtime_kills=int(killer.runtime_killed is not None),
        send_retries=send_retries,
        send_s=round(send_s, 2),
        settle_s=round(settle_s, 2),
        slow_waits=common.SLOW_WAITS[:10],
        cluster=size,
        wall_s=round(time.monotonic() - started, 2),
    )
    return figures
