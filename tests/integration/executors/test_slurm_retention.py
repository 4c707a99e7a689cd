"""Retention of the Slurm executor's records against a real one-node Slurm cluster: what it lists (its ``jobs/``,
``withdrawn/`` and ``refused/`` files and logs, a pending or running job active), what it removes, and its log read
once a run's records are gone."""

import os
import time
import uuid
from pathlib import Path

import pytest

from engines.slurm_cluster import TEST_ACCOUNTS, SlurmCluster, slurm_fixture
from stargate.domain.executors import SlurmExecutorConfig
from stargate.executors.base import Executor, RunGoneError, RunHandle, RunRecord, RunRequest, RunState
from stargate.executors.slurm import SlurmExecutor

slurm = slurm_fixture(gpus_per_node=8)
ROOT = os.geteuid() == 0


def make_executor(cluster: SlurmCluster, home: Path) -> SlurmExecutor:
    settings = type("Settings", (), {"home": home, "installation_id": uuid.uuid4().hex})()
    given: dict[str, object] = {}
    if ROOT:  # a root server runs jobs as a test account, their logs in a directory it can reach
        given = {"user": TEST_ACCOUNTS[0], "log_dir": str(cluster.public_dir / f"logs-{uuid.uuid4().hex[:12]}")}
    conf = SlurmExecutorConfig(id="slurm-test", kind="slurm", slurm_conf=str(cluster.slurm_conf), **given)  # type: ignore[arg-type]
    return SlurmExecutor.from_config(conf, settings)


def request(command: str, job_id: str, **more: object) -> RunRequest:
    return RunRequest(job_id=job_id, attempt=1, command=command, cluster="slurm-a", gpu_ids=(), **more)  # type: ignore[arg-type]


def wait_final(executor: SlurmExecutor, handle: RunHandle) -> None:
    deadline = time.monotonic() + 30
    while not executor.poll(handle).state.is_final():
        assert time.monotonic() < deadline, f"{handle.key} never ended"
        time.sleep(0.1)


def test_records_list_what_the_executor_keeps_and_prune_removes_only_what_it_is_given(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    executor = make_executor(slurm, tmp_path)
    assert isinstance(executor, Executor)
    done = executor.submit(request("echo finished", "j-000001"))
    going = executor.submit(request("sleep 60", "j-000002"))
    refused = executor.submit(request("true", "j-000003", gpus=9, gpus_per_node=9))  # more GPUs than the node has
    assert executor.find("j-000004", 1) is None  # withdrawn
    wait_final(executor, done)
    assert executor.poll(refused).state is RunState.FAILED
    name = lambda job: f"sg-{executor.installation[:8]}-{job}-a1"  # type: ignore[index]  # noqa: E731
    try:
        records = {r.what: r for r in executor.records()}
        refused_log = {f"log/{name('j-000003')}"} if ROOT else set()  # made for its account before sbatch
        assert set(records) == {
            f"jobs/{name('j-000001')}",
            f"log/{name('j-000001')}",
            f"jobs/{name('j-000002')}",
            f"log/{name('j-000002')}",
            f"refused/{name('j-000003')}",
            f"withdrawn/{name('j-000004')}",
            *refused_log,
        }, sorted(records)
        assert records[f"jobs/{name('j-000002')}"].active and records[f"log/{name('j-000002')}"].active
        assert not records[f"jobs/{name('j-000001')}"].active
        assert records[f"log/{name('j-000001')}"] == RunRecord("j-000001", 1, f"log/{name('j-000001')}")
        assert executor.logs(done)[0] == "finished\n"
        gone = [r for r in records.values() if r.job_id in ("j-000001", "j-000003", "j-000004")]
        pruned = executor.prune([*gone, RunRecord("j-9", 1, "jobs/../../etc/passwd")])
        assert (
            pruned.removed == 4 + len(refused_log)
            and len(pruned.problems) == 1
            and "not a record" in pruned.problems[0]
        )
        assert {r.what for r in executor.records()} == {f"jobs/{name('j-000002')}", f"log/{name('j-000002')}"}
        with pytest.raises(RunGoneError):
            executor.logs(done)
        with pytest.raises(RunGoneError):
            executor.logs(refused)
        assert executor.logs(going) == ("", 0)  # still kept: its record is there
        assert executor.prune(gone).removed == 0  # already gone: nothing, and no problem
    finally:
        executor.cancel(going)
