"""Second review of the Ray and Slurm executors against real engines (one Ray head and one Slurm cluster for the
module): what a job can read, and what grows without bound. Defects are pinned as strict xfails: a passing test
here means the defect was fixed (remove its xfail mark).
"""

import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.ray_head import RayHead, ray_head_fixture
from engines.runs import ray_executor_on, state_dir_with_token, wait_final
from engines.slurm_cluster import TEST_ACCOUNTS, SlurmCluster, ensure_test_accounts, slurm_fixture
from stargate.domain.executors import SlurmExecutorConfig
from stargate.executors import RunRequest
from stargate.executors.ray_jobs import RayExecutor
from stargate.executors.slurm import SlurmExecutor

pytestmark = pytest.mark.slow

head = ray_head_fixture(gpus=2)
slurm = slurm_fixture(gpus_per_node=8)
TOKEN_ENV = "SG_REVIEW2_RAY_TOKEN"
SECRET = "sg_admin_review2_secret_0123456789"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return state_dir_with_token(tmp_path, SECRET)


@pytest.fixture
def ray_executor(head: RayHead, home: Path) -> Iterator[RayExecutor]:
    with ray_executor_on(head, home, "ray-review2", TOKEN_ENV) as executor:
        yield executor


def request(command: str, team: str, job_id: str = "j-000001") -> RunRequest:
    return RunRequest(
        job_id=job_id, attempt=0, command=command, cluster="c", gpu_ids=(), gpus=0, team=team, environment={}
    )


def test_a_ray_job_cannot_read_the_servers_admin_token(ray_executor: RayExecutor, home: Path) -> None:
    """A head on the server's machine runs each command in a sandbox that hides the state directory (it read the
    admin token)."""
    handle = ray_executor.submit(request(f"cat {home / 'admin-token'}; true", team="beta"))
    status = wait_final(ray_executor, handle, timeout_s=30.0)
    assert status.state.is_final(), status
    log, _ = ray_executor.logs(handle)
    assert SECRET not in log


def test_the_ray_how_to_warns_that_teams_sharing_a_ray_cluster_can_read_each_others_jobs() -> None:
    """The how-to says what a shared Ray cluster does not keep apart (it said nothing)."""
    text = (Path(__file__).parents[2] / "docs" / "howto" / "ray-cluster.md").read_text().lower()
    assert "other team" in text or "another team" in text


def test_a_ray_job_reads_another_teams_log_through_the_jobs_api(ray_executor: RayExecutor, head: RayHead) -> None:
    """What the how-to should warn about (a fact of Ray, pinned so that the warning stays true)."""
    beta = ray_executor.submit(request("echo beta-private-result-42", team="beta", job_id="j-000002"))
    assert wait_final(ray_executor, beta, timeout_s=30.0).state.value == "succeeded"
    spy = (
        'python3 -c "import os, json, urllib.request; r = urllib.request.Request('
        f"'{head.address}/api/jobs/{beta.key}/logs', "
        "headers={'Authorization': 'Bearer ' + os.environ['RAY_AUTH_TOKEN']}); "
        "print(json.load(urllib.request.urlopen(r))['logs'])\""
    )
    alpha = ray_executor.submit(request(spy, team="alpha", job_id="j-000003"))
    assert wait_final(ray_executor, alpha, timeout_s=30.0).state.value == "succeeded"
    assert "beta-private-result-42" in ray_executor.logs(alpha)[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="jobs run as other accounts only for a root server")
def test_a_root_server_makes_a_missing_log_dir_its_jobs_can_reach(home: Path) -> None:
    """Under the server's umask (077) the log_dir it makes is still 0711 (it was 0700, then refused as unreachable
    by the jobs' accounts)."""
    ensure_test_accounts()
    public = Path(tempfile.mkdtemp(prefix="sg-review2-"))
    try:
        public.chmod(0o711)
        logs = public / "stargate-logs"
        conf = SlurmExecutorConfig(id="slurm-r2", kind="slurm", user=TEST_ACCOUNTS[0], log_dir=str(logs))
        before = os.umask(0o077)  # what `stargate up` sets for everything the server writes
        try:
            SlurmExecutor(conf, home, "0123abcd")
        finally:
            os.umask(before)
        assert stat.S_IMODE(logs.stat().st_mode) == 0o711
    finally:
        shutil.rmtree(public)


def test_the_slurm_executor_keeps_no_per_run_state_in_memory_after_its_calls(slurm: SlurmCluster, home: Path) -> None:
    conf = SlurmExecutorConfig(id="slurm-r2", kind="slurm", slurm_conf=str(slurm.slurm_conf), user="root")
    executor = SlurmExecutor(conf, home, uuid.uuid4().hex)
    for n in range(100):
        assert executor.find(f"j-{n:06d}", 0) is None  # no such run: withdrawn
    assert len(executor._locks) < 100, len(executor._locks)
