"""The local executor called from several threads at once, as the scheduler loop's executor pool calls it: every
run starts exactly once, even when the same (job id, attempt) is submitted concurrently."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from stargate.executors import LocalExecutor, RunRequest, RunState, RunStatus

Wait = Callable[..., RunStatus]


def _request(tmp_path: Path, n: int, attempt: int = 0) -> RunRequest:
    record = tmp_path / "runs.txt"
    command = f"echo $STARGATE_JOB_ID.$STARGATE_ATTEMPT >> {record}"
    return RunRequest(job_id=f"j-{n:06d}", attempt=attempt, command=command, cluster="c1", gpu_ids=[0])


def test_concurrent_submits_of_distinct_runs_each_start_once(
    executor: LocalExecutor, tmp_path: Path, wait_final: Wait
) -> None:
    requests = [_request(tmp_path, n) for n in range(12)]
    with ThreadPoolExecutor(6) as pool:
        handles = list(pool.map(executor.submit, requests))
    with ThreadPoolExecutor(6) as pool:
        states = [s.state for s in pool.map(wait_final, [executor] * len(handles), handles)]
    assert states == [RunState.SUCCEEDED] * 12
    started = sorted((tmp_path / "runs.txt").read_text().split())
    assert started == sorted(f"j-{n:06d}.0" for n in range(12))


def test_concurrent_submits_of_the_same_run_start_it_once(
    executor: LocalExecutor, tmp_path: Path, wait_final: Wait
) -> None:
    same = _request(tmp_path, 7, attempt=2)
    with ThreadPoolExecutor(4) as pool:
        handles = list(pool.map(executor.submit, [same] * 8))
    assert len({h.key for h in handles}) == 1
    assert wait_final(executor, handles[0]).state is RunState.SUCCEEDED
    assert (tmp_path / "runs.txt").read_text().split() == ["j-000007.2"]
