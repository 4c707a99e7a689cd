"""The Slurm executor against a real one-node Slurm cluster (munged, slurmctld, slurmd started by the fixture).

One cluster for the module; each test uses its own installation id, so its job names never meet another test's.
As root (CI), jobs run as the test accounts of tests/engines/slurm_cluster.py, their logs in a directory those can
reach. The node-failure test runs last: it kills and restarts the daemons.
"""

import grp
import logging
import os
import pwd
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

import engines.slurm_cluster
from engines.slurm_cluster import TEST_ACCOUNTS, SlurmCluster, SlurmMissingError, slurm_fixture, start_slurm
from stargate.domain.executors import SlurmExecutorConfig
from stargate.executors import ExecutorBuildError, build
from stargate.executors.base import ChecksHealth, Executor, Health, RunHandle, RunRequest, RunState, RunStatus
from stargate.executors.slurm import SlurmExecutor, SlurmExecutorError, SlurmUnavailableError

slurm = slurm_fixture(gpus_per_node=8)
ROOT = os.geteuid() == 0
ALPHA, BETA = TEST_ACCOUNTS
as_root = pytest.mark.skipif(not ROOT, reason="a server not running as root runs Slurm jobs as its own user")


def run_as(cluster: SlurmCluster) -> dict[str, object]:
    """A root server's settings for jobs that run as the test account ALPHA: a log_dir that account can reach."""
    if not ROOT:
        return {}
    return {"user": ALPHA, "log_dir": str(cluster.public_dir / f"logs-{uuid.uuid4().hex[:12]}")}


def make_executor(cluster: SlurmCluster, home: Path, installation: str, **config: object) -> SlurmExecutor:
    settings = type("Settings", (), {"home": home, "installation_id": installation})()
    given = {**run_as(cluster), **config}
    conf = SlurmExecutorConfig(id="slurm-test", kind="slurm", slurm_conf=str(cluster.slurm_conf), **given)  # type: ignore[arg-type]
    return SlurmExecutor.from_config(conf, settings)


@pytest.fixture
def executor(slurm: SlurmCluster, tmp_path: Path) -> SlurmExecutor:
    return make_executor(slurm, tmp_path, uuid.uuid4().hex)


def request(command: str, job_id: str = "j-000001", attempt: int = 1, **more: object) -> RunRequest:
    return RunRequest(job_id=job_id, attempt=attempt, command=command, cluster="slurm-a", gpu_ids=(), **more)  # type: ignore[arg-type]


def wait_status(executor: SlurmExecutor, handle: RunHandle, done: Callable[[RunStatus], bool], timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = executor.poll(handle)
        if done(status):
            return status
        time.sleep(0.1)
    pytest.fail(f"{handle.key}: still {executor.poll(handle)} after {timeout_s} s")


def final(executor: SlurmExecutor, handle: RunHandle) -> RunStatus:
    return wait_status(executor, handle, lambda s: s.state.is_final())


def job_field(cluster: SlurmCluster, job: str, field: str) -> str:
    out = cluster.command("scontrol", "show", "job", "-o", job).stdout
    return next((part.split("=", 1)[1] for part in out.split() if part.startswith(f"{field}=")), "")


def slurm_id(handle: RunHandle) -> str:
    return handle.key.split(":")[0]


def test_is_an_executor_that_checks_health(executor: SlurmExecutor) -> None:
    assert isinstance(executor, Executor) and isinstance(executor, ChecksHealth)
    assert executor.capabilities.multinode and executor.capabilities.reattach and not executor.capabilities.images


def test_success_runs_the_command_with_the_jobs_environment_only(
    executor: SlurmExecutor, slurm: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SG_SERVER_SECRET", "do-not-leak")
    started = time.monotonic()
    handle = executor.submit(
        request(
            'echo "id=$STARGATE_JOB_ID a=$STARGATE_ATTEMPT foo=$FOO secret=${SG_SERVER_SECRET:-none} ü"',
            environment={"FOO": 'it\'s a "quoted" $value'},
        )
    )
    assert handle.executor == "slurm-test"
    wait_status(
        executor,
        handle,
        lambda s: s.state is not RunState.RUNNING or job_field(slurm, slurm_id(handle), "JobState") != "PENDING",
    )
    print(f"sbatch to running: {time.monotonic() - started:.2f} s")
    status = final(executor, handle)
    assert status == RunStatus(RunState.SUCCEEDED, exit_code=0)
    text, offset = executor.logs(handle)
    assert text == 'id=j-000001 a=1 foo=it\'s a "quoted" $value secret=none ü\n'
    assert offset == len(text.encode())
    assert executor.logs(handle, offset) == ("", offset)
    assert executor.logs(handle, offset - 3) == ("ü\n", offset)


def test_failing_command_reports_its_exit_code(executor: SlurmExecutor) -> None:
    status = final(executor, executor.submit(request("echo bad >&2; exit 7")))
    assert status.state is RunState.FAILED and status.exit_code == 7
    assert "failed" in status.reason


def test_cancel_stops_a_sleeping_job(executor: SlurmExecutor, slurm: SlurmCluster) -> None:
    handle = executor.submit(request("sleep 300"))
    wait_status(executor, handle, lambda s: job_field(slurm, slurm_id(handle), "JobState") == "RUNNING")
    executor.cancel(handle)
    status = final(executor, handle)
    assert status.state is RunState.CANCELLED
    executor.cancel(handle)  # idempotent on an ended job
    assert executor.poll(handle).state is RunState.CANCELLED


def test_submit_twice_runs_one_slurm_job(executor: SlurmExecutor, slurm: SlurmCluster) -> None:
    handles: list[RunHandle] = []
    threads = [threading.Thread(target=lambda: handles.append(executor.submit(request("sleep 1")))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handles.append(executor.submit(request("sleep 1")))
    assert len(set(handles)) == 1
    name = handles[0].key.split(":")[1]
    listed = slurm.command("squeue", "--name", name, "--states=all", "-h", "-o", "%i").stdout.split()
    assert listed == [slurm_id(handles[0])]
    assert final(executor, handles[0]).state is RunState.SUCCEEDED


def test_a_fresh_executor_finds_the_run_again(slurm: SlurmCluster, tmp_path: Path) -> None:
    installation = uuid.uuid4().hex
    first = make_executor(slurm, tmp_path / "a", installation)
    handle = first.submit(request("sleep 2", job_id="j-000042", attempt=3))
    for home in (tmp_path / "a", tmp_path / "b"):  # with this host's records, and with none (squeue by name)
        again = make_executor(slurm, home, installation)
        assert again.find("j-000042", 3) == handle
        assert again.submit(request("sleep 2", job_id="j-000042", attempt=3)) == handle
    assert final(again, handle).state is RunState.SUCCEEDED


def test_find_none_withdraws_the_attempt(executor: SlurmExecutor, slurm: SlurmCluster) -> None:
    assert executor.find("j-000009", 1) is None
    with pytest.raises(SlurmExecutorError, match="withdrawn"):
        executor.submit(request("echo never", job_id="j-000009"))
    name = f"sg-{executor.installation[:8]}-j-000009-a1"  # type: ignore[index]
    assert slurm.command("squeue", "--name", name, "--states=all", "-h", "-o", "%i").stdout.strip() == ""
    assert executor.find("j-000009", 1) is None


def test_gpus_are_asked_as_gres_and_too_many_never_run(executor: SlurmExecutor, slurm: SlurmCluster) -> None:
    handle = executor.submit(request("sleep 1", gpus=2, gpus_per_node=2))
    assert "gpu:2" in job_field(slurm, slurm_id(handle), "TresPerNode")
    assert final(executor, handle).state is RunState.SUCCEEDED
    big = executor.submit(request("echo ran", job_id="j-000002", gpus=9, gpus_per_node=9))
    status = executor.poll(big)
    assert status.state is RunState.FAILED and status.reason.startswith("cannot start: ")
    assert executor.logs(big) == ("", 0)
    assert executor.submit(request("echo ran", job_id="j-000002", gpus=9, gpus_per_node=9)) == big


def test_bad_input_fails_clearly(slurm: SlurmCluster, tmp_path: Path) -> None:
    executor = make_executor(slurm, tmp_path, uuid.uuid4().hex, partition="no-such-partition")
    status = executor.poll(executor.submit(request("true")))
    assert (
        status.state is RunState.FAILED and status.reason.startswith("cannot start: ") and "partition" in status.reason
    )
    plain = make_executor(slurm, tmp_path / "p", uuid.uuid4().hex)
    for job, bad in (("j-3", {"1BAD": "x"}), ("j-4", {"A=B": "x"}), ("j-5", {"OK": "nul\0"})):
        status = plain.poll(plain.submit(request("true", job_id=job, environment=bad)))
        assert status.state is RunState.FAILED and status.reason.startswith("cannot start: environment variable")
    with pytest.raises(ValueError, match="not a Slurm run handle"):
        plain.poll(RunHandle("slurm-test", "../../etc/passwd"))
    with pytest.raises(ValueError, match="cannot name a Slurm job"):
        plain.submit(request("true", job_id="../x"))
    with pytest.raises(ValueError, match="≥ 0 bytes"):
        plain.logs(RunHandle("slurm-test", "1:sg-x-j-1-a1"), -1)
    missing = make_executor(slurm, tmp_path / "m", "x", bin_dir=str(tmp_path / "nowhere"))
    health = missing.health()
    assert not health.reachable and "scontrol not found" in health.reason
    with pytest.raises(SlurmUnavailableError, match="squeue not found"):
        missing.submit(request("true"))


def log_path(executor: SlurmExecutor, handle: RunHandle) -> Path:
    return executor.log_dir / f"{handle.key.split(':')[1]}.log"


@as_root
def test_each_team_runs_as_its_own_account_which_other_teams_cannot_read(slurm: SlurmCluster, tmp_path: Path) -> None:
    executor = make_executor(slurm, tmp_path, uuid.uuid4().hex, team_users={"beta": BETA})
    secret = 'id -un; id -gn; echo secret-a > "$STARGATE_RUN_DIR/f"; echo "dir=$STARGATE_RUN_DIR"; sleep 60'
    alpha = executor.submit(request(secret, team="alpha"))  # no entry in team_users: runs as user
    try:
        wait_status(executor, alpha, lambda s: "dir=" in executor.logs(alpha)[0])
        lines = executor.logs(alpha)[0].splitlines()
        account = pwd.getpwnam(ALPHA)
        assert lines[:2] == [ALPHA, grp.getgrgid(account.pw_gid).gr_name]  # --gid: the account's primary group
        assert job_field(slurm, slurm_id(alpha), "UserId") == f"{ALPHA}({account.pw_uid})"
        info = log_path(executor, alpha).stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (account.pw_uid, account.pw_gid, 0o600)
        shared = executor.log_dir.stat()
        assert (shared.st_uid, stat.S_IMODE(shared.st_mode)) == (0, 0o711)  # passable, never listable
        run_dir = lines[2].removeprefix("dir=")
        spy = f"id -un; cat {log_path(executor, alpha)}; cat {run_dir}/f; ls {executor.log_dir}; true"
        beta = executor.submit(request(spy, job_id="j-000002", team="beta"))
        assert final(executor, beta).state is RunState.SUCCEEDED
        seen = executor.logs(beta)[0]
        assert seen.splitlines()[0] == BETA and "secret-a" not in seen
        assert seen.count("Permission denied") == 3, seen
    finally:
        executor.cancel(alpha)
    assert final(executor, alpha).state is RunState.CANCELLED


@as_root
def test_a_root_server_builds_no_slurm_executor_whose_jobs_would_run_as_root(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    settings = SimpleNamespace(home=tmp_path / "home", installation_id="0123abcd")
    conf = SlurmExecutorConfig(id="slurm-east", kind="slurm", slurm_conf=str(slurm.slurm_conf))
    with pytest.raises(ExecutorBuildError) as no_user:
        build(conf, settings)
    assert str(no_user.value).startswith(
        "executor 'slurm-east' (slurm): the server runs as root and executors[slurm-east].user is not set: set user"
    )
    assert "never run as root" in str(no_user.value)
    unknown = conf.model_copy(update={"user": ALPHA, "team_users": {"beta": "sg-no-such-account"}})
    with pytest.raises(
        ExecutorBuildError, match=r"'sg-no-such-account' \(executors\[slurm-east\]\.team_users\.beta\) does"
    ):
        build(unknown, settings)
    with pytest.raises(ExecutorBuildError, match=r"set executors\[slurm-east\]\.log_dir to a directory outside"):
        build(conf.model_copy(update={"user": ALPHA}), settings)
    private = conf.model_copy(update={"user": ALPHA, "log_dir": str(tmp_path / "logs")})  # pytest's 0700 tree
    with pytest.raises(ExecutorBuildError, match="the jobs' accounts cannot reach it, since others may not pass /"):
        build(private, settings)


@as_root
def test_user_root_runs_the_jobs_as_root_on_purpose(
    slurm: SlurmCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        executor = make_executor(slurm, tmp_path, uuid.uuid4().hex, user="root", log_dir=None)
    assert "executor slurm-test: Slurm jobs run as root (root)" in caplog.text
    assert executor.log_dir == executor.dir  # the server's private directory: root's jobs reach it
    handle = executor.submit(request("id -u"))
    assert final(executor, handle).state is RunState.SUCCEEDED and executor.logs(handle)[0] == "0\n"


def test_a_drained_node_is_a_failed_node(executor: SlurmExecutor, slurm: SlurmCluster) -> None:
    slurm.command("scontrol", "update", f"nodename={slurm.hostname}", "state=drain", "reason=maintenance")
    try:
        health = executor.health()
        assert health.reachable and health.nodes == 1 and health.failed_nodes == 1 and health.down()
        assert health.reason.endswith(f"1 of 1 nodes failed ({slurm.hostname} drained)")
    finally:
        slurm.command("scontrol", "update", f"nodename={slurm.hostname}", "state=resume")
    deadline = time.monotonic() + 20  # a resumed node may show as not responding ("idle*") until slurmd answers
    while (health := executor.health()) != Health(reachable=True, nodes=1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert health == Health(reachable=True, nodes=1)


def test_node_failure(executor: SlurmExecutor, slurm: SlurmCluster) -> None:
    healthy = executor.health()
    assert healthy.reachable and healthy.nodes == 1 and healthy.failed_nodes == 0 and not healthy.down()
    handle = executor.submit(request("while true; do date +%s.%N; sleep 0.2; done"))
    beats = lambda: executor.logs(handle)[1]  # noqa: E731 - the log grows while the job lives
    wait_status(executor, handle, lambda s: beats() > 0)
    started_at = time.time()
    state = slurm.root / "state" / "job_state"  # slurmctld saved the run as running: a restart remembers it
    wait_status(executor, handle, lambda s: state.exists() and state.stat().st_mtime > started_at + 0.1)
    slurm.stop_daemons()
    try:
        started = time.monotonic()
        health = executor.health()
        assert time.monotonic() - started <= 5.5
        assert not health.reachable and health.down() and health.reason.startswith("slurm (")
        with pytest.raises(SlurmUnavailableError):
            executor.poll(handle)  # an outage is an error to retry, never a lost run
        with pytest.raises(SlurmUnavailableError):
            executor.submit(request("true", job_id="j-000077"))
        last = beats()
        time.sleep(0.6)
        assert beats() == last  # the job died with its node
    finally:
        slurm.start_daemons()
    print(f"daemons back in {slurm.daemon_start_s:.2f} s")
    status = wait_status(executor, handle, lambda s: s.state.is_final(), timeout_s=60)
    assert status.state is RunState.INTERRUPTED and "node_fail" in status.reason, status  # the node's fault
    time.sleep(2)
    assert job_field(slurm, slurm_id(handle), "Restarts") == "0"
    assert executor.poll(handle) == status
    assert beats() == last
    assert executor.health().reachable
    again = executor.submit(request("true", job_id="j-000078"))
    assert final(executor, again).state is RunState.SUCCEEDED


def test_missing_slurm_config_is_unreachable(slurm: SlurmCluster, tmp_path: Path) -> None:
    conf = SlurmExecutorConfig(id="s", kind="slurm", slurm_conf=str(tmp_path / "none.conf"), **run_as(slurm))  # type: ignore[arg-type]
    executor = SlurmExecutor(conf, tmp_path)
    health = executor.health()
    assert not health.reachable and "does not exist" in health.reason and str(tmp_path) in health.reason
    with pytest.raises(SlurmUnavailableError):
        executor.poll(RunHandle("s", "12:sg-local-j-1-a1"))


def test_the_daemons_run_from_the_test_directory(slurm: SlurmCluster) -> None:
    pids = subprocess.run(["pgrep", "-f", str(slurm.slurm_conf)], capture_output=True, text=True).stdout.split()
    assert len(pids) == 2 and str(os.getpid()) not in pids  # slurmctld and slurmd, children of this process


def test_the_fixture_says_how_to_install_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines.slurm_cluster, "_which", lambda name: None if name == "slurmctld" else "/bin/true")
    with pytest.raises(SlurmMissingError, match=r"slurmctld is missing: \.ci/run installs them"):
        start_slurm(tmp_path)
