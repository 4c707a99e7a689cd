"""Retention of the Ray executor's records against a real local Ray head: it lists its withdrawn markers and the
jobs Ray keeps of its runs (placeholders too; a running job active), deletes them through the Jobs API, and its log
read of a deleted job says the run is gone."""

import os
import time
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest

from engines.ray_head import RayHead, ray_head_fixture
from stargate.domain.executors import RayExecutorConfig
from stargate.executors.base import RunGoneError, RunHandle, RunRecord, RunRequest
from stargate.executors.ray_jobs import RayExecutor

pytestmark = pytest.mark.slow

head = ray_head_fixture(gpus=1)
TOKEN_ENV = "SG_TEST_RAY_RETENTION_TOKEN"
INSTALLATION = "5e7a1c00-ffff-4000-8000-000000000000"
SID = "sg-5e7a1c00-{}-a1"


@pytest.fixture(scope="module")
def ray(head: RayHead, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayExecutor]:
    os.environ[TOKEN_ENV] = head.token
    entry = RayExecutorConfig.model_validate(
        {"id": "ray-east", "kind": "ray", "address": head.address, "token_env": TOKEN_ENV}
    )
    home = tmp_path_factory.mktemp("home")
    executor = RayExecutor.from_config(entry, SimpleNamespace(home=home, installation_id=INSTALLATION))
    yield executor
    executor.close()
    os.environ.pop(TOKEN_ENV, None)


def submissions(head: RayHead) -> set[str]:
    answer = httpx.get(f"{head.address}/api/jobs/", headers={"Authorization": f"Bearer {head.token}"})
    return {str(job["submission_id"]) for job in answer.json()}


def test_records_are_the_markers_and_jobs_of_this_installation_and_prune_deletes_them(
    ray: RayExecutor, head: RayHead
) -> None:
    done = ray.submit(RunRequest("j-000001", 1, "echo finished", "ray-a", []))
    going = ray.submit(RunRequest("j-000002", 1, "sleep 60", "ray-a", []))
    assert ray.find("j-000003", 1) is None  # a placeholder job and a marker
    placeholder = RunHandle("ray-east", SID.format("j-000003"))
    deadline = time.monotonic() + 60
    while not (ray.poll(done).state.is_final() and ray.poll(placeholder).state.is_final()):
        assert time.monotonic() < deadline, "the Ray jobs never ended"
        time.sleep(0.1)
    try:
        records = {r.what: r for r in ray.records()}
        assert set(records) == {
            f"job/{SID.format('j-000001')}",
            f"job/{SID.format('j-000002')}",
            f"job/{SID.format('j-000003')}",
            f"marker/{SID.format('j-000003')}",
        }, sorted(records)  # Ray's warm-up job is not ours
        assert records[f"job/{SID.format('j-000002')}"].active
        assert records[f"job/{SID.format('j-000001')}"] == RunRecord("j-000001", 1, f"job/{SID.format('j-000001')}")
        began = time.monotonic()
        gone = [r for r in records.values() if not r.active]
        pruned = ray.prune([*gone, RunRecord("j-000002", 1, f"job/{SID.format('j-000002')}")])
        took = time.monotonic() - began
        assert pruned.removed == 3, pruned
        assert len(pruned.problems) == 1 and "non-terminal state" in pruned.problems[0]  # Ray keeps a running job
        assert SID.format("j-000001") not in submissions(head) and SID.format("j-000002") in submissions(head)
        assert {r.what for r in ray.records()} == {f"job/{SID.format('j-000002')}"}
        with pytest.raises(RunGoneError):
            ray.logs(done)
        assert ray.prune(gone).removed == 0  # already gone: nothing, and no problem
        assert ray.prune(gone).problems == ()
        print(f"\nray: 3 records pruned in {took * 1000:.0f} ms")
    finally:
        ray.cancel(going)
