"""Third review of the Ray and Slurm executors with a real ``stargate up``, a real one-node Slurm and the CLI:
failover under queue quotas, providers and online windows, a server killed in the middle of sbatch, a fleet
change that takes an executor away from running jobs, cancel during an outage, and fleet-file input. Defects are
pinned as strict xfails: a passing test here means the defect was fixed (remove its xfail mark).

Needs Slurm and munge (``.ci/run`` installs them).
"""

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import ServerFactory, ServerProcess, job_of, submit_command, wait_for

from engines.slurm_cluster import SlurmCluster, start_slurm

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FINAL = ("succeeded", "failed", "cancelled")

FLEET = """
name: review3
providers:
  - {{id: hpc, name: HPC centre, kind: owned, executor: slurm-r}}
  - {{id: here, name: This machine, kind: owned, executor: local}}
  - {{id: other, name: Another provider, kind: owned, executor: local}}
sites:
  - {{id: hpc-1, provider: hpc, region: here}}
  - {{id: lab, provider: here, region: here}}
  - {{id: other-1, provider: other, region: here}}
clusters:
  - {{id: slurm-a, site: hpc-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 1.0}}
  - {{id: lab-h200, site: lab, gpu_model: H200, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 0.5}}
  - {{id: lab-old, site: lab, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 0.5,
      online_until: 2020-12-31}}
  - {{id: other-h100, site: other-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 3.0}}
teams:
  - {{id: alpha, name: Alpha}}
queues:
  - {{id: alpha-q, team: alpha, quotas: [{{gpu_model: H100-SXM, gpus: 16}}]}}
executors:
  - id: slurm-r
    kind: slurm
    slurm_conf: {conf}
    {bin_dir}user: root  # on purpose: the jobs write into this test's private (0700) temporary directory
    health: {{interval_s: 1, down_after_s: {down_after}}}
"""


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[SlurmCluster]:
    cluster = start_slurm(tmp_path / "slurm", gpus_per_node=8, cpus=16)
    try:
        yield cluster
    finally:
        cluster.stop()


def _fleet_text(slurm: SlurmCluster, down_after_s: float, bin_dir: Path | None = None) -> str:
    more = f"bin_dir: {bin_dir}\n    " if bin_dir else ""
    return FLEET.format(conf=slurm.slurm_conf, down_after=down_after_s, bin_dir=more)


def _server(
    make_server: ServerFactory, tmp_path: Path, slurm: SlurmCluster, down_after_s: float, bin_dir: Path | None = None
) -> ServerProcess:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(_fleet_text(slurm, down_after_s, bin_dir))
    return make_server(fleet=fleet, interval_s=0.1).start()


def _events(server: ServerProcess, job: str) -> list[tuple[str, str, str]]:
    with server.client() as http:
        items = http.get("/api/v1/events", params={"job_id": job}).json()["items"]
    return [(e.get("to_status", ""), e.get("reason", ""), str(e.get("detail", ""))[:120]) for e in items]


def _slurm_jobs(slurm: SlurmCluster) -> list[tuple[str, str]]:
    """(name, state) of every job slurmctld knows."""
    done = slurm.command("squeue", "-h", "-t", "all", "-o", "%j %T")
    return [tuple(line.split()[:2]) for line in done.stdout.splitlines() if line.strip()]  # type: ignore[misc]


def test_jobs_moved_off_a_down_slurm_keep_to_their_quota_providers_and_online_windows(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    """slurmctld dies with two jobs on slurm-a. The one allowed on hpc and here may go neither to lab-h200 (H200:
    outside its queue's quotas) nor to lab-old (offline since 2021): it waits for slurm-a. The one allowed on hpc and
    other moves to other-h100, and never anywhere else."""
    server = _server(make_server, tmp_path, slurm, down_after_s=1)
    started = tmp_path / "started"
    stay = submit_command(server, f"echo x >> {started}; sleep 60", allowed_providers=["hpc", "here"])
    move = submit_command(server, f"echo y >> {started}; sleep 60", allowed_providers=["hpc", "other"])
    wait_for("both on Slurm", lambda: len(started.read_text().split()) == 2 if started.exists() else False, 20)
    assert {job_of(server, stay)["cluster"], job_of(server, move)["cluster"]} == {"slurm-a"}
    slurm.kill_controller()
    wait_for("moved", lambda: job_of(server, move)["cluster"] == "other-h100", 20, lambda: job_of(server, move))
    time.sleep(1)  # a few more cycles: the other job must still wait
    found = job_of(server, stay)
    assert found["status"] == "pending", found
    assert found["waiting"]["reason"] == "clusters_down", found["waiting"]
    assert "slurm-a" in found["waiting"]["detail"], found["waiting"]
    clusters = {e[2] for e in _events(server, stay) + _events(server, move) if e[0] == "placed"}
    assert not any("lab-h200" in c or "lab-old" in c for c in clusters), clusters


SLOW_SBATCH = """#!/bin/sh
# sbatch that is slow {when} handing the job to slurmctld (the server is killed meanwhile)
{before}
{sbatch} "$@"
code=$?
{after}
exit $code
"""


def _slow_bin_dir(tmp_path: Path, marker: Path, when: str) -> Path:
    """A bin_dir whose first sbatch touches ``marker`` and sleeps 4 s before or after the real sbatch; every other
    Slurm command is the real one."""
    bin_dir = tmp_path / "slurm-bin"
    bin_dir.mkdir()
    for name in ("squeue", "scontrol", "scancel", "sinfo", "sacct"):
        real = shutil.which(name)
        if real:
            (bin_dir / name).symlink_to(real)
    pause = f"[ -e {marker} ] || {{ touch {marker}; sleep 4; }}"  # only the first sbatch is slow
    script = SLOW_SBATCH.format(
        when=when,
        sbatch=shutil.which("sbatch"),
        before=pause if when == "before" else "",
        after=pause if when == "after" else "",
    )
    (bin_dir / "sbatch").write_text(script)
    (bin_dir / "sbatch").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_server_killed_during_sbatch_runs_its_job_once_after_a_restart(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path, when: str
) -> None:
    """The server is SIGKILLed while sbatch runs (before slurmctld took the job, or after it took it and before the
    server heard the answer), then started again once that sbatch has ended: the job runs exactly once."""
    _kill_during_sbatch(slurm, make_server, tmp_path, when, restart_after_s=5)


def test_a_server_killed_during_sbatch_and_restarted_at_once_runs_its_job_once(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    """As above, but started again at once (systemd's Restart=) while the killed server's sbatch still runs: that
    sbatch keeps the run's lock file, so the new server waits for it and finds its job by name."""
    _kill_during_sbatch(slurm, make_server, tmp_path, "before", restart_after_s=0)


def _kill_during_sbatch(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path, when: str, restart_after_s: float
) -> None:
    marker = tmp_path / "in-sbatch"
    bin_dir = _slow_bin_dir(tmp_path, marker, when)
    server = _server(make_server, tmp_path, slurm, down_after_s=30, bin_dir=bin_dir)
    done = tmp_path / "done"
    job = submit_command(server, f'sleep 2; echo "$STARGATE_ATTEMPT" >> {done}', allowed_providers=["hpc"])
    wait_for("in sbatch", marker.exists, 20, lambda: job_of(server, job))
    server.keep_port().kill()
    time.sleep(restart_after_s)
    server.start()
    wait_for(
        "final", lambda: job_of(server, job)["status"] in FINAL, 40, lambda: (job_of(server, job), _slurm_jobs(slurm))
    )
    time.sleep(6)  # the killed server's sbatch, and a second run if any, have ended by now
    found = job_of(server, job)
    assert found["status"] == "succeeded", found
    assert len(done.read_text().split()) == 1, (done.read_text(), _slurm_jobs(slurm))
    assert len(_slurm_jobs(slurm)) == 1, _slurm_jobs(slurm)


def _apply(server: ServerProcess, fleet: dict[str, Any]) -> None:
    with server.client() as http:
        plan = http.post("/api/v1/fleet/plan", json={"fleet": json.loads(json.dumps(fleet, default=str))})
        assert plan.status_code == 200, plan.text
        applied = http.post("/api/v1/fleet/apply", json={"plan_id": plan.json()["plan_id"]})
        assert applied.status_code == 200, applied.text


def test_a_fleet_change_that_takes_the_slurm_executor_away_leaves_its_running_job_ending_once(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    """While a job runs on Slurm the fleet switches hpc to the local executor and drops slurm-r: the job ends (its
    Slurm run completes it, or it is stopped and runs again), its command completes once, and nothing is left
    running in Slurm."""
    server = _server(make_server, tmp_path, slurm, down_after_s=30)
    started, done = tmp_path / "started", tmp_path / "done"
    job = submit_command(
        server, f'touch {started}; sleep 6; echo "$STARGATE_ATTEMPT" >> {done}', allowed_providers=["hpc"]
    )
    wait_for("started on Slurm", started.exists, 20)
    fleet = yaml.safe_load(server.fleet.read_text())
    fleet["executors"] = []
    fleet["providers"][0]["executor"] = "local"
    _apply(server, fleet)
    wait_for(
        "final", lambda: job_of(server, job)["status"] in FINAL, 40, lambda: (job_of(server, job), _slurm_jobs(slurm))
    )
    time.sleep(2)
    found = job_of(server, job)
    assert found["status"] == "succeeded", (found, _events(server, job))
    assert len(done.read_text().split()) == 1, done.read_text()
    assert not [s for _, s in _slurm_jobs(slurm) if s in ("RUNNING", "PENDING")], _slurm_jobs(slurm)


def test_a_job_cancelled_while_slurmctld_is_down_is_stopped_in_slurm_when_it_is_back(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    """Cancel while slurmctld is down (shorter than down_after_s): the job reads cancelled at once, and its run is
    stopped once slurmctld answers again: its command never completes."""
    server = _server(make_server, tmp_path, slurm, down_after_s=60)
    started, done = tmp_path / "started", tmp_path / "done"
    job = submit_command(server, f"touch {started}; sleep 45; touch {done}", allowed_providers=["hpc"])
    wait_for("started on Slurm", started.exists, 20)
    slurm.kill_controller()
    time.sleep(2)
    with server.client() as http:
        answer = http.post(f"/api/v1/jobs/{job}/cancel")
    assert answer.status_code in (200, 202), answer.text
    assert job_of(server, job)["status"] == "cancelled", job_of(server, job)
    slurm.start_controller()
    wait_for(
        "stopped in Slurm",
        lambda: _slurm_jobs(slurm) and _slurm_jobs(slurm)[0][1] == "CANCELLED",
        40,
        lambda: _slurm_jobs(slurm),
    )
    assert not done.exists()
    assert job_of(server, job)["status"] == "cancelled"


FAILING_SBATCH = """#!/bin/sh
echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2
exit 1
"""


def test_a_job_whose_sbatch_always_times_out_is_not_left_placed_for_ever(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    """slurmctld answers its health checks (scontrol ping, sinfo) but every sbatch times out: within 15 s the job
    has either failed after the server's start tries or moved to a cluster that works (down_after_s 2 s); it is not
    left `placed` on slurm-a, retried without bound."""
    bin_dir = _slow_bin_dir(tmp_path, tmp_path / "unused", "before")
    (bin_dir / "sbatch").write_text(FAILING_SBATCH)
    server = _server(make_server, tmp_path, slurm, down_after_s=2, bin_dir=bin_dir)
    job = submit_command(server, "true", allowed_providers=["hpc", "other"])
    time.sleep(15)
    found = job_of(server, job)
    seen = (found["status"], found["cluster"], found["attempt"], found["detail"], _events(server, job))
    assert found["status"] in FINAL or found["cluster"] == "other-h100", seen
