"""Review of health and failover with a real ``stargate up``, a real one-node Slurm and the CLI: defects pinned as
strict xfails. A passing test here means the defect was fixed: remove its xfail mark.

Needs Slurm and munge (``.ci/run`` installs them) for the Slurm tests.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import (
    SMALL_FLEET,
    ServerFactory,
    ServerProcess,
    child_environment,
    job_of,
    run_cli,
    submit_command,
    wait_for,
)

from engines.slurm_cluster import SlurmCluster, start_slurm

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

FLEET = """
name: review-health
providers:
  - {{id: hpc, name: HPC centre, kind: owned, executor: slurm-r}}
  - {{id: here, name: This machine, kind: owned, executor: local}}
sites:
  - {{id: hpc-1, provider: hpc, region: here}}
  - {{id: lab, provider: here, region: here}}
clusters:
  - {{id: slurm-a, site: hpc-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 1.0}}
  - {{id: lab-a, site: lab, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 3.0}}
teams:
  - {{id: alpha, name: Alpha}}
queues:
  - {{id: alpha-q, team: alpha, quotas: [{{gpu_model: "*", gpus: 16}}]}}
executors:
  - id: slurm-r
    kind: slurm
    slurm_conf: {conf}
    user: root  # on purpose: the jobs write into this test's private (0700) temporary directory
    health: {{interval_s: 1, down_after_s: {down_after}}}
"""


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[SlurmCluster]:
    cluster = start_slurm(tmp_path / "slurm", gpus_per_node=8, cpus=16)
    try:
        yield cluster
    finally:
        cluster.stop()


def _server(make_server: ServerFactory, tmp_path: Path, slurm: SlurmCluster, down_after_s: float) -> ServerProcess:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET.format(conf=slurm.slurm_conf, down_after=down_after_s))
    return make_server(fleet=fleet, interval_s=0.1).start()


def test_a_node_failure_shorter_than_down_after_requeues_its_job_instead_of_failing_it(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    server = _server(make_server, tmp_path, slurm, down_after_s=10)
    started = tmp_path / "started"
    job = submit_command(server, f'if [ "$STARGATE_ATTEMPT" = 0 ]; then touch {started}; fi; sleep 12')
    wait_for("started on Slurm", started.exists, 15)
    assert job_of(server, job)["cluster"] == "slurm-a"
    time.sleep(6)  # slurmctld has saved its state (the job running; it saves at most every 5 s): it dies here
    slurm.stop_daemons()  # a node failure: slurmd and the job step die; back about 1 s later
    slurm.start_daemons()
    wait_for("final", lambda: job_of(server, job)["status"] in ("succeeded", "failed", "cancelled"), 20)
    found = job_of(server, job)
    assert (found["status"], found["attempt"]) == ("succeeded", 1), found


def test_a_slurm_run_that_finished_while_slurmctld_was_down_completes_its_job_once(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    server = _server(make_server, tmp_path, slurm, down_after_s=1)
    done = tmp_path / "attempt0-done"
    started = tmp_path / "attempt0-started"
    command = f'if [ "$STARGATE_ATTEMPT" = 0 ]; then touch {started}; sleep 8; echo done > {done}; else sleep 25; fi'
    job = submit_command(server, command)
    wait_for("started on Slurm", started.exists, 15)
    assert job_of(server, job)["cluster"] == "slurm-a"
    time.sleep(6)  # slurmctld has saved the job as running (it saves at most every 5 s): it keeps its record
    slurm.kill_controller()
    wait_for("moved to lab-a", lambda: job_of(server, job)["attempt"] == 1, 10)
    wait_for("attempt 0 finished on Slurm", done.exists, 10)
    slurm.start_controller()
    back = time.monotonic()
    deadline = back + 25  # slurmd retries the completion message every 15 s; the scheduler watches for 30 s
    while job_of(server, job)["status"] not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.2)
    found = job_of(server, job)
    slurm_state = slurm.command("scontrol", "show", "job", "1").stdout.split("JobState=")[-1].split()[0]
    seen = (found["status"], found["attempt"], found["cluster"], found["detail"], slurm_state)
    assert found["status"] == "succeeded", seen  # today: running, 1, lab-a, on lab-a, CANCELLED (or COMPLETING)
    assert str(found["detail"]).startswith("attempt 0 on slurm-a exited with code 0"), seen


def test_fleet_health_table_columns_line_up_with_the_header(make_server: ServerFactory) -> None:
    server = make_server(fleet=SMALL_FLEET).start()
    env = child_environment({"STARGATE_URL": server.url, "STARGATE_TOKEN": server.admin_token})
    done = run_cli(["fleet", "health"], env)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert rows and all(row.index(" up ") + 1 == header.index("declared") for row in rows), done.stdout
