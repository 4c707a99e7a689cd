"""Retention of the Kubernetes executor's records against recorded exchanges (see test_kubernetes_executor.py): its
markers and the Jobs and JobSets of its installation are listed (page by page, a JobSet's own Jobs left to it), the
finished ones deleted with background propagation, and the log of a deleted Job says the run is gone."""

from pathlib import Path

import pytest

from integration.executors.test_kubernetes_executor import INSTALLATION, TOKEN, config, handle, replay
from stargate.executors.base import RunGoneError, RunRecord
from stargate.executors.kubernetes import KubernetesExecutor


@pytest.fixture
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KubernetesExecutor:
    monkeypatch.setenv("K8S_TOKEN", TOKEN)
    settings = type("Settings", (), {"home": tmp_path, "installation_id": INSTALLATION})()
    return KubernetesExecutor.from_config(config(), settings)


def test_records_list_markers_jobs_and_jobsets_and_prune_deletes_the_finished_ones(
    executor: KubernetesExecutor,
) -> None:
    for where, name in (
        (executor.withdrawn_dir, "sg-0f3a9c2e-j-000127-a1"),
        (executor.cancelled_dir, "sg-0f3a9c2e-j-000123-a2"),
        (executor.withdrawn_dir, "sg-77aa0000-j-000009-a1"),  # another installation's
    ):
        where.mkdir(parents=True, exist_ok=True)
        (where / name).touch()
    fake = replay(executor, "retention.json")
    records = executor.records()
    assert records == [
        RunRecord("j-000127", 1, "withdrawn/sg-0f3a9c2e-j-000127-a1"),
        RunRecord("j-000123", 2, "cancelled/sg-0f3a9c2e-j-000123-a2"),
        RunRecord("j-000123", 2, "jobs/sg-0f3a9c2e-j-000123-a2"),
        RunRecord("j-000125", 1, "jobs/sg-0f3a9c2e-j-000125-a1", active=True),
        RunRecord("j-000126", 1, "jobs/sg-0f3a9c2e-j-000126-a1"),
        RunRecord("j-000124", 1, "jobsets/sg-0f3a9c2e-j-000124-a1"),
    ]
    finished = [r for r in records if not r.active]
    pruned = executor.prune([*finished, RunRecord("j-1", 1, "jobs/kube-system-coredns")])
    assert pruned.removed == 4  # 2 markers and 2 objects (the third was gone already: fine); no active one
    assert pruned.problems == ("jobs/kube-system-coredns: not a record of the Kubernetes executor 'k8s-west'",)
    assert not (executor.withdrawn_dir / "sg-0f3a9c2e-j-000127-a1").exists()
    assert (executor.withdrawn_dir / "sg-77aa0000-j-000009-a1").exists()
    with pytest.raises(RunGoneError, match="no longer exists"):
        executor.logs(handle())
    fake.done()
