"""Failover across real engines: a fleet with a Slurm cluster and a Ray cluster, a real ``stargate up``, 50 short
jobs; the Slurm daemons are stopped (a node failure: every job step killed) while jobs run there. The health step
marks the Slurm cluster down after ``down_after_s``, the engine requeues its jobs (checkpointed progress kept) and
places them on Ray. Every job succeeds, each one's completion line appears exactly once (none lost, none run twice
to completion), the jobs that were on Slurm finish on Ray, the cluster events show the outage with its reason and
the job events show every move. Prints the outage-to-recovery time (daemons stopped → every moved job running on
Ray again).

Needs Slurm and munge (``.ci/run`` installs them) and Ray (the lock's ``engines`` extra).
"""

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_support import ServerFactory, ServerProcess, all_jobs, run_cli

from engines.failover_fleet import completions, failover_fleet, job_command, job_events, on_slurm, submit_jobs
from engines.ray_head import RayHead, ray_head_fixture
from engines.slurm_cluster import SlurmCluster, slurm_fixture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

JOBS = 50
JOB_S = 3.0
"""How long each job works before it records its completion, s. The daemons are stopped at once after checking
that no job the server sees running on Slurm has recorded its completion yet (a job that finished there the instant
before, unseen by the server, would run again on Ray: an engine that dies with the only record of a finished run
cannot be reconciled; see docs/reference/health.md)."""
DOWN_AFTER_S = 2.0
STOP_AFTER = 16
"""Jobs that have succeeded when the Slurm daemons are stopped (Slurm, the cheaper cluster, runs most of them: a Ray
job costs this machine about a CPU-second to start). The queue's quota (16 GPUs) keeps 8 jobs on Ray meanwhile, so
the 8 Ray GPUs left free take the moved jobs as soon as they are requeued."""
FINAL_TIMEOUT_S = 110.0
TOKEN_ENV = "SG_E2E_RAY_TOKEN"


slurm = slurm_fixture(gpus_per_node=8)
ray = ray_head_fixture(gpus=16)


def _jobs(server: ServerProcess) -> dict[str, dict[str, Any]]:
    return {j["id"]: j for j in all_jobs(server)}


def _events(server: ServerProcess, job_id: str) -> list[dict[str, Any]]:
    with server.client() as http:
        return job_events(http, job_id)


def test_stopping_slurm_moves_its_jobs_to_ray_with_none_lost_or_run_twice(
    slurm: SlurmCluster,
    ray: RayHead,
    make_server: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, ray.token)  # the server's environment names the token; the fleet file does not
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(failover_fleet(slurm.slurm_conf, ray.address, TOKEN_ENV, DOWN_AFTER_S))
    done = tmp_path / "shared" / "completed.txt"
    done.parent.mkdir()
    done.touch()
    server = make_server(fleet=fleet, interval_s=0.1).start()
    with server.client() as http:
        ids = submit_jobs(http, JOBS, job_command(JOB_S, done))

    deadline = time.monotonic() + FINAL_TIMEOUT_S
    while True:  # wait until jobs run on Slurm and some have finished: the middle of the run
        jobs = _jobs(server)
        running_there = on_slurm(jobs, ("running",))
        finished = {j["id"] for j in jobs.values() if j["status"] == "succeeded"}
        recorded = {job_id for job_id, _ in completions(done)}
        if len(running_there) >= 4 and len(finished) >= STOP_AFTER and not recorded & running_there:
            break
        assert time.monotonic() < deadline, f"no jobs ran on Slurm: {Counter(j['status'] for j in jobs.values())}"
        time.sleep(0.1)
    stopped_at = time.monotonic()
    slurm.stop_daemons()
    moved = on_slurm(_jobs(server))
    assert moved, "no job was on Slurm when its daemons stopped"

    back: dict[str, float] = {}
    while True:  # every job final; note when each moved job runs on Ray again
        jobs = _jobs(server)
        now = time.monotonic()
        for job_id in moved - back.keys():
            j = jobs[job_id]
            if j["cluster"] == "ray-a" and j["status"] in ("running", "succeeded"):
                back[job_id] = now - stopped_at
        if all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs.values()):
            break
        assert time.monotonic() < deadline, f"not all final: {Counter(j['status'] for j in jobs.values())}"
        time.sleep(0.1)
    recovery_s = max(back.values())
    print(
        f"\nengine failover: {JOBS} jobs, {len(moved)} on Slurm when its daemons stopped; every one running on Ray "
        f"again {recovery_s:.1f} s after the stop (first {min(back.values()):.1f} s; down_after_s {DOWN_AFTER_S:g})"
    )

    failed = {
        i: [(e["to"], e["reason"], e["detail"]) for e in _events(server, i)]
        for i, j in jobs.items()
        if j["status"] != "succeeded"
    }
    assert Counter(j["status"] for j in jobs.values()) == {"succeeded": JOBS}, failed
    lines = completions(done)
    completed = Counter(job_id for job_id, _ in lines)
    assert set(completed) == set(ids) and set(completed.values()) == {1}, completed.most_common(3)
    assert all(jobs[job_id]["cluster"] == "ray-a" for job_id in moved)
    attempts = dict(lines)
    assert all(attempts[job_id] >= 1 for job_id in moved) and set(back) == moved

    with server.client() as http:
        cluster_events = http.get("/api/v1/fleet/events").json()["items"]
        health = {c["cluster"]: c for c in http.get("/api/v1/fleet/health").json()["clusters"]}
    outage = [e for e in cluster_events if e["cluster"] == "slurm-a" and e["to"] == "down"]
    assert len(outage) == 1 and outage[0]["from"] == "up"
    said = re.match(r"executor slurm-e2e unreachable for (\d+(?:\.\d+)?) s: slurm \(", outage[0]["reason"])
    assert said and float(said.group(1)) >= DOWN_AFTER_S, outage[0]["reason"]  # how long it was, at least the limit
    assert not [e for e in cluster_events if e["cluster"] == "ray-a"]
    assert (health["slurm-a"]["observed"], health["ray-a"]["observed"]) == ("down", "up")

    for job_id in moved:  # the move, told by the job's events: Slurm → requeued for the outage → placed on Ray
        moves = [(e["from"], e["to"], e["reason"], e["detail"]) for e in _events(server, job_id)]
        requeued = [m for m in moves if m[0] in ("placed", "running") and m[1:3] == ("pending", "cluster_down")]
        assert len(requeued) == 1, moves
        assert requeued[0][3].startswith("cluster slurm-a down: executor slurm-e2e unreachable for"), moves
        after = moves[moves.index(requeued[0]) + 1 :]
        assert [m[:2] for m in after] == [("pending", "placed"), ("placed", "running"), ("running", "succeeded")]
        assert after[0][3].startswith("on ray-a")

    env = server.env | {"STARGATE_URL": server.url, "STARGATE_TOKEN": server.admin_token}
    cli = run_cli(["fleet", "events", "--json"], env)
    assert cli.returncode == 0, cli.stderr
    assert [e["to"] for e in json.loads(cli.stdout) if e["cluster"] == "slurm-a"] == ["down"]
    shown = run_cli(["fleet", "health"], env)
    assert shown.returncode == 0 and "slurm-e2e" in shown.stdout and "unreachable" in shown.stdout, shown
