"""Review of the Ray and Slurm executors against real engines: defects found by attacking them, each pinned as a
strict xfail (one Ray head and one Slurm cluster for the module).

A passing test here means the defect was fixed: remove its xfail mark.
"""

import os
import pwd
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from engines.ray_head import RayHead, ray_head_fixture
from engines.runs import ray_executor_on, state_dir_with_token, wait_final
from engines.slurm_cluster import TEST_ACCOUNTS, SlurmCluster, slurm_fixture
from stargate.domain.executors import RayExecutorConfig, SlurmExecutorConfig
from stargate.executors import RunHandle, RunRequest, UnknownExecutorError, build
from stargate.executors.ray_jobs import RayExecutor
from stargate.executors.slurm import SlurmExecutor

pytestmark = pytest.mark.slow

head = ray_head_fixture(gpus=2)
slurm = slurm_fixture(gpus_per_node=8)
TOKEN_ENV = "SG_REVIEW_RAY_TOKEN"
SECRET = "sg_admin_review_secret_0123456789"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return state_dir_with_token(tmp_path, SECRET)


@pytest.fixture
def slurm_executor(slurm: SlurmCluster, home: Path) -> SlurmExecutor:
    """As root (CI), team beta's jobs run as the second test account, every other team's as the first."""
    accounts = {}
    if os.geteuid() == 0:
        logs = slurm.public_dir / f"review-{uuid.uuid4().hex[:12]}"
        accounts = {"user": TEST_ACCOUNTS[0], "team_users": {"beta": TEST_ACCOUNTS[1]}, "log_dir": str(logs)}
    conf = SlurmExecutorConfig(id="slurm-review", kind="slurm", slurm_conf=str(slurm.slurm_conf), **accounts)  # type: ignore[arg-type]
    return SlurmExecutor.from_config(conf, SimpleNamespace(home=home, installation_id=uuid.uuid4().hex))


@pytest.fixture
def ray_executor(head: RayHead, home: Path) -> Iterator[RayExecutor]:
    with ray_executor_on(head, home, "ray-review", TOKEN_ENV) as executor:
        yield executor


def request(command: str, gpus: int = 1, team: str = "beta", **environment: str) -> RunRequest:
    return RunRequest(
        job_id="j-000001",
        attempt=0,
        command=command,
        cluster="c",
        gpu_ids=tuple(range(gpus)),
        gpus=gpus,
        team=team,
        environment=environment,
    )


def whole_log(executor: SlurmExecutor | RayExecutor, handle: RunHandle) -> str:
    text, offset, parts = "", 0, []
    while True:
        text, offset = executor.logs(handle, offset)
        if not text:
            return "".join(parts)
        parts.append(text)


def test_a_ray_executor_whose_token_variable_is_missing_builds_as_an_unknown_executor(tmp_path: Path) -> None:
    os.environ.pop("SG_REVIEW_NEVER_SET", None)
    conf = RayExecutorConfig(id="ray-east", kind="ray", address="http://127.0.0.1:9", token_env="SG_REVIEW_NEVER_SET")
    with pytest.raises(UnknownExecutorError, match="SG_REVIEW_NEVER_SET"):
        build(conf, SimpleNamespace(home=tmp_path, installation_id="0123abcd"))


def test_a_slurm_job_of_any_team_cannot_read_the_servers_admin_token(slurm_executor: SlurmExecutor) -> None:
    handle = slurm_executor.submit(request("pwd; cat ../../../admin-token; true"))
    status = wait_final(slurm_executor, handle)
    assert status.state.is_final(), status
    log = whole_log(slurm_executor, handle)
    assert SECRET not in log
    assert log.strip() and str(slurm_executor.dir.parents[2]) not in log  # it never starts in STARGATE_HOME


def test_a_slurm_job_of_a_root_server_runs_under_its_teams_uid(slurm_executor: SlurmExecutor) -> None:
    assert os.geteuid() == 0, "this test pins the root case"
    handle = slurm_executor.submit(request("id -u; true"))
    status = wait_final(slurm_executor, handle)
    assert status.state.value == "succeeded", status
    assert whole_log(slurm_executor, handle).split() == [str(pwd.getpwnam(TEST_ACCOUNTS[1]).pw_uid)]  # team beta's


def test_a_slurm_job_does_not_start_through_a_login_shell_of_the_servers_user(slurm_executor: SlurmExecutor) -> None:
    handle = slurm_executor.submit(request("env"))
    status = wait_final(slurm_executor, handle)
    assert status.state.value == "succeeded", status
    assert "SLURM_GET_USER_ENV=1" not in whole_log(slurm_executor, handle).splitlines()


def test_a_slurm_job_cannot_widen_its_gpus_through_its_environment(slurm_executor: SlurmExecutor) -> None:
    handle = slurm_executor.submit(request('echo "CVD=$CUDA_VISIBLE_DEVICES"', CUDA_VISIBLE_DEVICES="0,1,2,3"))
    status = wait_final(slurm_executor, handle)
    assert status.state.value == "succeeded", status
    assert "CVD=0\n" in whole_log(slurm_executor, handle)


def test_a_ray_job_that_sets_path_ends_instead_of_pending_for_ever(ray_executor: RayExecutor) -> None:
    handle = ray_executor.submit(request("echo ok", gpus=0, PATH="/opt/venv/bin"))
    try:
        status = wait_final(ray_executor, handle, timeout_s=20.0)
        assert status.state.is_final(), f"{handle.key} still {status} after 20 s"
    finally:
        ray_executor.cancel(handle)
