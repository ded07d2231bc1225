"""A local 3-node cluster: R3 streams from the config's replicas, jobs that survive a
node killed and restarted, and `actorq server --cluster 3`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from actorq import SyncClient
from actorq.constants import DEFAULT_NAMESPACE
from actorq.jobs.streams import JobStreams
from actorq.nats import open_nats
from actorq.nats.cluster import LocalCluster, wait_for_jetstream
from actorq.process.heartbeat import procs_bucket
from tests.helpers import jobfuncs, paths
from tests.helpers.jobs_harness import open_runtime
from tests.helpers.up_harness import run_up, wait_gone

pytestmark = pytest.mark.timeout(180)


async def _replicas(urls: list[str], stream: str) -> int:
    async with open_nats(urls) as conn:
        info = await conn.jsm("stream_info", stream)
        return int(info.config.num_replicas)


async def test_jobs_on_r3_streams_survive_a_node_killed_and_restarted(tmp_path: Path) -> None:
    cluster = LocalCluster(3, data_dir=tmp_path / "cluster")
    try:
        cluster.start()
        with trio.fail_after(150):
            await wait_for_jetstream(cluster.urls)
            async with open_runtime(cluster.urls) as rt:
                streams = JobStreams(rt.namespace)
                # The runtime's owner asks for R3: existing R1 streams and buckets move.
                assert await _replicas(cluster.urls, streams.jobs_stream) == 1
                async with open_nats(cluster.urls) as conn:
                    await streams.provision(conn, replicas=3)
                for name in (
                    streams.jobs_stream,
                    streams.outcomes_stream,
                    streams.undelivered_stream,
                    f"KV_{streams.results_bucket}",
                    f"KV_{streams.leader_bucket}",
                    f"OBJ_{streams.objects_bucket}",
                ):
                    assert await _replicas(cluster.urls, name) == 3, name
                # A client's provisioning (no replicas) leaves the owner's choice alone.
                async with open_nats(cluster.urls) as conn:
                    await streams.provision(conn)
                assert await _replicas(cluster.urls, streams.jobs_stream) == 3
                assert await _replicas(cluster.urls, f"OBJ_{streams.objects_bucket}") == 3

                before = [await rt.client.enqueue(jobfuncs.add, i, 1) for i in range(10)]
                assert [await j.result(timeout=30) for j in before] == list(range(1, 11))
                cluster.kill(0)
                # Clients and actors move to the surviving nodes; stream leaders that
                # were on the lost node are elected again, so allow for retries.
                during = []
                for i in range(10):
                    with trio.fail_after(60):
                        while True:
                            try:
                                during.append(await rt.client.enqueue(jobfuncs.add, i, 100))
                                break
                            except Exception:
                                await trio.sleep(0.2)
                assert [await j.result(timeout=60) for j in during] == [
                    i + 100 for i in range(10)
                ]
                cluster.restart(0)
                await wait_for_jetstream(cluster.urls[:1], within=60)
                after = await rt.client.enqueue(jobfuncs.add, 40, 2)
                assert await after.result(timeout=60) == 42
    finally:
        cluster.close()
    assert all(not node.running for node in cluster.nodes)


def test_actorq_server_cluster_runs_three_routed_nodes_and_stops_them_together(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorq", "server", "--cluster", "3",
         "--data-dir", str(tmp_path / "c")],
        cwd=paths.ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ}, start_new_session=True,
    )  # fmt: skip
    pids: set[int] = set()
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
            assert len(lines) < 20, lines
        urls = [ln.split()[0] for ln in lines if ln.startswith("nats://")]
        assert len(urls) == 3, lines
        pids = {int(ln.split("pid ")[1].split(",")[0]) for ln in lines if "pid " in ln}
        assert len(pids) == 3, lines
        # doctor: single-copy streams on a cluster are flagged, replicated ones pass.
        trio.run(_provision, urls, None)
        assert _doctor_replicas(urls)["ok"] is False
        assert trio.run(_replicas_ok, urls)
        assert _doctor_replicas(urls)["ok"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
    assert wait_gone(pids) == set()


async def _provision(urls: list[str], replicas: int | None) -> None:
    async with open_nats(urls) as conn:
        await JobStreams("clustercli").provision(conn, replicas=replicas)


def _doctor_replicas(urls: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "actorq", "doctor", "--json", "--namespace", "clustercli",
         "--url", ",".join(urls)],
        cwd=paths.ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    return checks["replicas"]


async def _replicas_ok(urls: list[str]) -> bool:
    # A stream created with three replicas needs all three nodes.
    async with open_nats(urls) as conn:
        streams = JobStreams("clustercli")
        await streams.provision(conn, replicas=3)
        info = await conn.jsm("stream_info", streams.jobs_stream)
        return len(info.cluster.replicas or []) == 2 and info.config.num_replicas == 3


def test_two_runtimes_on_one_cluster_share_the_work_and_one_scheduler_leads(
    tmp_path: Path,
) -> None:
    key = os.urandom(32)
    cluster = LocalCluster(3, data_dir=tmp_path / "cluster")
    try:
        cluster.start()
        trio.run(_wait, cluster.urls)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        env = {
            "ACTORQ_NATS_URL": ",".join(cluster.urls),
            "ACTORQ_NATS_REPLICAS": "3",
            "ACTORQ_SECURITY_SIGNING_KEY_ENV": "CLUSTER_TEST_KEY",
            "CLUSTER_TEST_KEY": key.hex(),
            "ACTORQ_QUEUES_0_CONCURRENCY": "2",
        }
        with run_up(tmp_path / "a", dict(env), name="up-a") as a:
            a.ready()
            with run_up(tmp_path / "b", dict(env), name="up-b") as b:
                b.ready()
                # The heartbeat bucket too follows [nats] replicas (an R1 one stopped
                # `actorq ps` while its node was down; found by bench/chaos.py --cluster).
                procs = f"KV_{procs_bucket(DEFAULT_NAMESPACE)}"
                assert trio.run(_replicas, cluster.urls, procs) == 3
                a_pids = {p for n, p in a.pids.items() if n.startswith("default-")}
                b_pids = {p for n, p in b.pids.items() if n.startswith("default-")}
                assert len(a_pids) == len(b_pids) == 2, (a.pids, b.pids)
                # A client on the third node, as on a third host.
                with SyncClient(cluster.urls[2], signing_key=key) as client:
                    jobs = [client.enqueue(jobfuncs.add, i, 1) for i in range(40)]
                    assert [j.result(timeout=60) for j in jobs] == [i + 1 for i in range(40)]
                    workers = {
                        int(record.worker.rsplit(":", 1)[1])
                        for record in (client.get_record(j.id) for j in jobs)
                        if record is not None
                    }
                assert workers & a_pids, "runtime a ran none of the jobs"
                assert workers & b_pids, "runtime b ran none of the jobs"
                b.close()
            a.close()
        leads = (a.stderr() + b.stderr()).count(" leads")
        assert leads == 1, "exactly one scheduler leads while both run"
        assert wait_gone(a.seen | b.seen) == set()
    finally:
        cluster.close()


async def _wait(urls: list[str]) -> None:
    await wait_for_jetstream(urls)
