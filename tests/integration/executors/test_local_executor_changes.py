"""The local executor reports the runs that ended since the last call (``changes``), each once, instead of being
polled run by run; runs started by another executor instance (a restart) are reported once watched."""

import time
from pathlib import Path

import pytest

from stargate.executors import LocalExecutor, ReportsChanges, RunChange, RunRequest, RunState


def request(command: str, job_id: str, attempt: int = 0) -> RunRequest:
    """A run request on cluster ``c1``."""
    return RunRequest(job_id=job_id, attempt=attempt, command=command, cluster="c1", gpu_ids=(0,))


def changes_until(executor: LocalExecutor, count: int, timeout_s: float = 10.0) -> list[RunChange]:
    """Every change reported until ``count`` runs ended (asked every 10 ms); fails after ``timeout_s`` seconds."""
    found: list[RunChange] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        found += executor.changes()
        time.sleep(0.01)
    if len(found) < count:
        pytest.fail(f"{len(found)} of {count} runs reported ended after {timeout_s} s")
    return found


def test_the_local_executor_reports_changes(executor: LocalExecutor) -> None:
    assert isinstance(executor, ReportsChanges)


def test_nothing_ended_reports_nothing(executor: LocalExecutor) -> None:
    executor.submit(request("sleep 30", "j-000001"))
    assert executor.changes() == []
    assert executor.changes() == []


def test_an_ended_run_is_reported_once_with_its_final_status(executor: LocalExecutor) -> None:
    long = executor.submit(request("sleep 30", "j-000001"))
    done = executor.submit(request("exit 3", "j-000002", attempt=2))
    [change] = changes_until(executor, 1)
    assert (change.job_id, change.attempt, change.handle) == ("j-000002", 2, done)
    assert (change.status.state, change.status.exit_code) == (RunState.FAILED, 3)
    time.sleep(0.1)
    assert executor.changes() == []  # reported once; the long run is still going
    executor.cancel(long)
    [stopped] = changes_until(executor, 1)
    assert (stopped.job_id, stopped.status.state) == ("j-000001", RunState.CANCELLED)


def test_many_runs_ending_are_each_reported_once(executor: LocalExecutor) -> None:
    handles = {executor.submit(request("true", f"j-{n:06d}")).key for n in range(1, 6)}
    found = changes_until(executor, 5)
    assert {c.handle.key for c in found} == handles
    assert all(c.status.state is RunState.SUCCEEDED for c in found)
    assert executor.changes() == []


def test_a_run_of_another_instance_is_reported_once_watched(runs_dir: Path, executor: LocalExecutor) -> None:
    handle = executor.submit(request("exit 0", "j-000009"))
    after_restart = LocalExecutor(runs_dir)
    time.sleep(0.3)
    assert after_restart.changes() == []  # it knows nothing of that run yet
    after_restart.watch([handle])
    [change] = changes_until(after_restart, 1)
    assert (change.job_id, change.status.state, change.status.exit_code) == ("j-000009", RunState.SUCCEEDED, 0)
    after_restart.watch([type(handle)("local", "not a local key")])  # ignored, not an error
    assert after_restart.changes() == []
