"""Second review of the Ray and Slurm executors with a real ``stargate up``, a real one-node Slurm, a real Ray head
and the CLI: failure injection (slurmd alone, slurmctld killed by a job, a Ray head restarted, a Ray dashboard cut
off, a fleet change across a server restart) and fleet-file input. Defects are pinned as strict xfails: a passing
test here means the defect was fixed (remove its xfail mark).

Needs Slurm and munge (``.ci/run`` installs them) and Ray (the ``engines`` extra).
"""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_support import ServerFactory, ServerProcess, child_environment, job_of, run_cli, submit_command, wait_for

from engines.ray_head import RayHead, start_ray_head
from engines.slurm_cluster import SlurmCluster, start_slurm
from integration.server.tcp_forwarder import TcpForwarder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]  # a Ray head may take 90 s to start on a loaded machine

FINAL = ("succeeded", "failed", "cancelled")

FLEET = """
name: review2
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


def _server(
    make_server: ServerFactory, tmp_path: Path, slurm: SlurmCluster, down_after_s: float, more: str = ""
) -> ServerProcess:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET.format(conf=slurm.slurm_conf, down_after=down_after_s) + more)
    return make_server(fleet=fleet, interval_s=0.1).start()


def _slurm_state(slurm: SlurmCluster, job: str = "1") -> str:
    return slurm.command("scontrol", "show", "job", job).stdout.split("JobState=")[-1].split()[0]


def _kill_slurmd(slurm: SlurmCluster) -> None:
    """SIGKILL slurmd alone (slurmctld, slurmstepd and the jobs keep running): the node stops answering."""
    for proc in list(slurm._daemons):
        if proc.args[0].endswith("slurmd"):  # type: ignore[index]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            slurm._daemons.remove(proc)


def test_a_run_that_completes_while_slurmd_is_down_completes_its_job_once(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    server = _server(make_server, tmp_path, slurm, down_after_s=4)
    done = tmp_path / "done"
    done.touch()
    started = tmp_path / "started"
    command = (
        f'if [ "$STARGATE_ATTEMPT" = 0 ]; then touch {started}; sleep 8; echo 0 >> {done}; '
        f'else sleep 40; echo "$STARGATE_ATTEMPT" >> {done}; fi'
    )
    job = submit_command(server, command)
    wait_for("started on Slurm", started.exists, 15)
    _kill_slurmd(slurm)  # slurmctld answers; the node stops responding; the job step runs on and completes
    wait_for("attempt 0 completed in Slurm", lambda: _slurm_state(slurm) == "COMPLETED", 25)
    deadline = time.monotonic() + 8  # the scheduler polls every cycle (0.1 s)
    while job_of(server, job)["status"] not in FINAL and time.monotonic() < deadline:
        time.sleep(0.2)
    found = job_of(server, job)
    seen = (found["status"], found["attempt"], found["cluster"], found["detail"], done.read_text().split())
    assert found["status"] == "succeeded", seen  # today: running at attempt 1 on lab-a, whose run completes again
    assert done.read_text().split() == ["0"], seen


RAY_FLEET = """
name: review2-ray
providers:
  - {{id: rayco, name: Ray cloud, kind: cloud, executor: ray-r}}
  - {{id: here, name: This machine, kind: cloud, executor: local}}
sites:
  - {{id: ray-1, provider: rayco, region: here}}
  - {{id: lab, provider: here, region: here}}
clusters:
  - {{id: ray-a, site: ray-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 1.0}}
  - {{id: lab-a, site: lab, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 3.0}}
teams:
  - {{id: alpha, name: Alpha}}
queues:
  - {{id: alpha-q, team: alpha, quotas: [{{gpu_model: "*", gpus: 16}}]}}
executors:
  - id: ray-r
    kind: ray
    address: {address}
    token_env: {token_env}
    health: {{interval_s: 1, down_after_s: {down_after}}}
"""
RAY_TOKEN_ENV = "SG_REVIEW2_RAY_TOKEN"


def test_a_ray_head_restart_shorter_than_down_after_runs_its_jobs_again(
    make_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run the restarted head forgot is interrupted and its job runs again (it failed as lost for good)."""
    first = start_ray_head(tmp_path / "ray-1", gpus=8)
    heads = [first]
    forwarder = TcpForwarder("127.0.0.1", _port(first.address))  # the address the fleet names, whichever head
    try:
        monkeypatch.setenv(RAY_TOKEN_ENV, first.token)
        fleet = tmp_path / "fleet.yaml"
        address = f"http://127.0.0.1:{forwarder.port}"
        fleet.write_text(RAY_FLEET.format(address=address, token_env=RAY_TOKEN_ENV, down_after=120))
        server = make_server(fleet=fleet, interval_s=0.1).start()
        started, done = tmp_path / "started", tmp_path / "done"
        job = submit_command(
            server,
            f'if [ "$STARGATE_ATTEMPT" = 0 ]; then touch {started}; sleep 60; fi; echo ok > {done}',
            allowed_providers=["rayco"],
        )
        wait_for("started on Ray", started.exists, 30, lambda: (job_of(server, job), _ray_jobs(first)))
        assert job_of(server, job)["cluster"] == "ray-a"
        first.stop()  # the head goes down with its job table; an operator starts it again at the same address
        monkeypatch.setattr("engines.ray_head.secrets.token_hex", lambda _: first.token)
        heads.append(start_ray_head(tmp_path / "ray-2", gpus=8))
        forwarder.upstream = ("127.0.0.1", _port(heads[-1].address))
        wait_for("final", lambda: job_of(server, job)["status"] in FINAL or done.exists(), 25)
        time.sleep(1)
        found = job_of(server, job)
        seen = (found["status"], found["reason"], found["attempt"], found["detail"])
        assert found["reason"] != "lost", seen  # it was: failed, lost, 0, Ray at ... has no job sg-...-a0
        wait_for("ran again", done.exists, 20)
    finally:
        forwarder.cut()
        for head in heads:
            head.stop()


def _ray_jobs(head: RayHead) -> list[tuple[str, str, str]]:
    answer = httpx.get(f"{head.address}/api/jobs/", headers={"Authorization": f"Bearer {head.token}"}, timeout=5)
    return [(j["submission_id"], j["status"], str(j.get("message"))[:200]) for j in answer.json()]


def _requeued_or_final(server: ServerProcess, job: str, attempt: int) -> bool:
    found = job_of(server, job)
    return bool(found["attempt"] > attempt or found["status"] in FINAL)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_a_job_on_an_executor_the_fleet_renamed_still_ends_after_a_restart(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    server = _server(make_server, tmp_path, slurm, down_after_s=30)
    started = tmp_path / "started"
    job = submit_command(server, f"touch {started}; sleep 4", allowed_providers=["hpc"])
    wait_for("started on Slurm", started.exists, 15)
    server.keep_port().kill()
    server.fleet.write_text(server.fleet.read_text().replace("slurm-r", "slurm-east"))  # same Slurm, new id
    server.start()
    wait_for("its run ended in Slurm", lambda: _slurm_state(slurm) == "COMPLETED", 15)
    deadline = time.monotonic() + 10
    while job_of(server, job)["status"] not in FINAL and time.monotonic() < deadline:
        time.sleep(0.2)
    found = job_of(server, job)
    assert found["status"] in FINAL, (found["status"], found["cluster"], found["detail"])  # today: running for ever


def test_a_job_that_takes_its_engine_down_each_time_is_not_requeued_for_ever(
    slurm: SlurmCluster, make_server: ServerFactory, tmp_path: Path
) -> None:
    server = _server(
        make_server, tmp_path, slurm, down_after_s=0, more="scheduling: {settings: {max_outage_stops: 2}}\n"
    )
    pid_file = slurm.root / "run" / "slurmctld.pid"
    # a poison job; it waits 5 s first, for slurmctld to save that it started it: killed sooner, slurmctld restarts
    # over a state in which the job never ran and starts it again, which takes it down before Stargate sees it back
    poison = f"sleep 5; kill -9 $(cat {pid_file}); sleep 120"
    job = submit_command(server, poison, allowed_providers=["hpc"])
    outages = 0
    deadline = time.monotonic() + 110
    while outages < 5 and job_of(server, job)["status"] not in FINAL:  # an operator restarts slurmctld each time
        attempt = job_of(server, job)["attempt"]
        wait_for("slurmctld taken down", lambda: slurm._daemons[0].poll() is not None, 20, lambda: job_of(server, job))
        slurm.kill_controller()  # reap the dead controller's process record
        wait_for("requeued", lambda: _requeued_or_final(server, job, attempt), 20, lambda: job_of(server, job))  # noqa: B023
        outages += 1
        slurm.start_controller()
        assert time.monotonic() < deadline
    found = job_of(server, job)
    assert found["status"] == "failed", (outages, found["status"], found["attempt"], found["detail"])
    assert (outages, found["reason"], found["attempt"]) == (3, "outage_limit", 3), found  # 2 allowed, the 3rd fails


VALIDATE_FLEET = """
name: review2-validate
providers:
  - {{id: hpc, name: HPC centre, kind: owned, executor: {executor}}}
sites:
  - {{id: hpc-1, provider: hpc, region: here}}
clusters:
  - {{id: hpc-a, site: hpc-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 1.0}}
teams:
  - {{id: alpha, name: Alpha}}
queues:
  - {{id: alpha-q, team: alpha, quotas: [{{gpu_model: "*", gpus: 8}}]}}
executors:
  - {entry}
"""


@pytest.mark.parametrize(
    ("executor", "entry", "field"),
    [
        ("ray-x", "{id: ray-x, kind: ray, address: 'http://ray-head:99999'}", "executors[0].address"),
        ("slurm-x", "{id: slurm-x, kind: slurm, log_dir: stargate-logs}", "executors[0].log_dir"),
        ("slurm-x", "{id: slurm-x, kind: slurm, work_dir: scratch}", "executors[0].work_dir"),
        ("x", "{id: x, kind: slurm, slurm_conf: etc/slurm.conf}", "executors[0].slurm_conf"),
        ("x", "{id: x, kind: slurm, bin_dir: slurm/bin}", "executors[0].bin_dir"),
        ("x", "{id: x, kind: slurm, gres: 'gpu:8'}", "executors[0].gres"),
        ("x", "{id: x, kind: kubernetes, namespace: Training_NS}", "executors[0].namespace"),
        ("x", "{id: x, kind: ray, token_env: STARGATE_DATABASE_URL}", "executors[0].token_env"),
    ],
    ids=[
        *("ray-port", "slurm-log-dir", "slurm-work-dir", "slurm-conf-relative", "bin-dir-relative"),
        *("gres-with-count", "k8s-namespace", "token-env-server-secret"),
    ],
)
def test_fleet_validate_refuses_executor_settings_that_cannot_work(
    tmp_path: Path, executor: str, entry: str, field: str
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(VALIDATE_FLEET.format(executor=executor, entry=entry))
    done = run_cli(["fleet", "validate", str(path)], child_environment({}))
    assert done.returncode != 0, done.stdout
    assert "fleet.yaml:" in done.stderr + done.stdout and field in done.stderr + done.stdout


def test_a_ray_run_that_finished_during_a_partition_completes_its_job_once(
    make_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard unreachable (a network partition, the head and its job alive): the cluster goes down, the job
    moves to lab-a; its Ray run finishes meanwhile; once Ray answers, the job succeeds from that run, once, and the
    fleet events tell the outage and the recovery."""
    head = start_ray_head(tmp_path / "ray-1", gpus=8)
    forwarder = TcpForwarder("127.0.0.1", _port(head.address))
    try:
        monkeypatch.setenv(RAY_TOKEN_ENV, head.token)
        fleet = tmp_path / "fleet.yaml"
        address = f"http://127.0.0.1:{forwarder.port}"
        fleet.write_text(RAY_FLEET.format(address=address, token_env=RAY_TOKEN_ENV, down_after=2))
        server = make_server(fleet=fleet, interval_s=0.1).start()
        started, done = tmp_path / "started", tmp_path / "done"
        done.touch()
        job = submit_command(
            server,
            f'if [ "$STARGATE_ATTEMPT" = 0 ]; then touch {started}; sleep 8; echo 0 >> {done}; else sleep 40; fi',
        )
        wait_for("started on Ray", started.exists, 30)
        assert job_of(server, job)["cluster"] == "ray-a"
        forwarder.cut()
        wait_for("moved to lab-a", lambda: job_of(server, job)["attempt"] == 1, 15)
        wait_for("attempt 0 finished on Ray", lambda: done.read_text().split() == ["0"], 15)
        forwarder.restore()
        wait_for("final", lambda: job_of(server, job)["status"] in FINAL, 15)
        found = job_of(server, job)
        assert found["status"] == "succeeded", found
        assert str(found["detail"]).startswith("attempt 0 on ray-a exited with code 0"), found
        with server.client() as http:
            told = [(e["from"], e["to"]) for e in http.get("/api/v1/fleet/events").json()["items"]]
        assert told == [("down", "up"), ("up", "down")], told
        assert done.read_text().split() == ["0"]
    finally:
        forwarder.cut()
        head.stop()
