"""Cancelling local runs: the whole process group goes, SIGTERM first and SIGKILL after the grace period."""

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from stargate.executors import LocalExecutor, RunRequest, RunState, RunStatus

Wait = Callable[..., RunStatus]


def start(executor: LocalExecutor, command: str, wait_for: Callable[..., None], job_id: str = "j-1") -> dict[str, Any]:
    """Submit ``command`` and wait until it wrote ``ready`` to its log; return its run record."""
    handle = executor.submit(RunRequest(job_id, 0, f"{command}", "c1", [0]))
    wait_for(lambda: "ready" in executor.logs(handle)[0])
    record = json.loads((executor.run_dir(job_id, 0) / "run.json").read_text())
    return {"handle": handle, **record}


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def test_cancel_stops_the_whole_process_group(
    executor: LocalExecutor, wait_final: Wait, wait_for: Callable[..., None]
) -> None:
    run = start(executor, "sleep 300 & sleep 300 & echo ready; wait", wait_for)
    assert len(group_members(run["pgid"])) == 3  # the shell and its two sleeps
    executor.cancel(run["handle"])
    status = wait_final(executor, run["handle"])
    assert (status.state, status.exit_code, status.reason) == (RunState.CANCELLED, 143, "cancelled")
    wait_for(lambda: group_members(run["pgid"]) == [])


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace_period(
    executor: LocalExecutor, wait_final: Wait, wait_for: Callable[..., None]
) -> None:
    run = start(executor, "trap '' TERM; sleep 300 & echo ready; wait", wait_for)
    began = time.monotonic()
    executor.cancel(run["handle"])
    assert executor.poll(run["handle"]).state is RunState.RUNNING  # cancel returns at once
    status = wait_final(executor, run["handle"])
    assert time.monotonic() - began >= executor.grace_s * 0.9
    assert (status.state, status.exit_code) == (RunState.CANCELLED, 137)
    wait_for(lambda: group_members(run["pgid"]) == [])


def test_cancel_is_idempotent_and_leaves_a_finished_run_alone(
    executor: LocalExecutor, wait_final: Wait, wait_for: Callable[..., None]
) -> None:
    handle = executor.submit(RunRequest("j-2", 0, "true", "c1", [0]))
    assert wait_final(executor, handle).state is RunState.SUCCEEDED
    executor.cancel(handle)
    executor.cancel(handle)
    assert executor.poll(handle).state is RunState.SUCCEEDED
    assert not (executor.run_dir("j-2", 0) / "cancel_requested").exists()


def test_a_restarted_executor_can_cancel_a_run(
    executor: LocalExecutor, wait_final: Wait, wait_for: Callable[..., None]
) -> None:
    run = start(executor, "echo ready; sleep 300", wait_for)
    restarted = LocalExecutor(executor.runs_dir, grace_s=0.5)
    restarted.cancel(run["handle"])
    restarted.cancel(run["handle"])
    assert wait_final(restarted, run["handle"]).state is RunState.CANCELLED


def test_cancel_kills_the_command_when_its_runner_is_gone(
    executor: LocalExecutor, wait_final: Wait, wait_for: Callable[..., None]
) -> None:
    run = start(executor, "echo ready; sleep 300", wait_for)
    os.kill(run["pid"], signal.SIGKILL)
    wait_for(lambda: executor.poll(run["handle"]).state is RunState.LOST)
    executor.cancel(run["handle"])
    status = wait_final(executor, run["handle"])
    assert status.state is RunState.CANCELLED
    assert "before it recorded an exit code" in status.reason
    wait_for(lambda: group_members(run["pgid"]) == [])


def test_cancel_of_a_run_never_started_does_nothing(executor: LocalExecutor, tmp_path: Path) -> None:
    from stargate.executors import RunHandle
    from stargate.executors.local_state import RunKey

    executor.cancel(RunHandle("local", RunKey("j-none", 0, 1, None).encode()))
    assert not (executor.runs_dir / "j-none").exists()
