"""The local executor across restarts: idempotent submit, reattachment, exit codes recorded while the server was
down, and pid reuse read as a lost run."""

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from stargate.executors import LocalExecutor, RunHandle, RunRequest, RunState, RunStatus
from stargate.executors.local_state import RunKey

Wait = Callable[..., RunStatus]


def gated(tmp_path: Path, job_id: str = "j-000001", attempt: int = 0, then: str = "echo finished") -> RunRequest:
    """A run that appends to ``runs.txt`` at once and then waits for the file ``go`` before ``then``."""
    gate, record = tmp_path / "go", tmp_path / "runs.txt"
    command = f"echo $STARGATE_JOB_ID.$STARGATE_ATTEMPT >> {record}; while [ ! -f {gate} ]; do sleep 0.02; done; {then}"
    return RunRequest(job_id=job_id, attempt=attempt, command=command, cluster="c1", gpu_ids=[0])


def runs_started(tmp_path: Path) -> list[str]:
    """The lines the gated runs appended, one per started process."""
    path = tmp_path / "runs.txt"
    return path.read_text().split() if path.exists() else []


def test_a_second_submit_of_the_same_attempt_returns_the_same_run(
    executor: LocalExecutor, tmp_path: Path, wait_final: Wait, wait_for: Callable[..., None]
) -> None:
    first = executor.submit(gated(tmp_path))
    again = executor.submit(gated(tmp_path))
    after_restart = LocalExecutor(executor.runs_dir).submit(gated(tmp_path))
    assert first == again == after_restart
    (tmp_path / "go").touch()
    assert wait_final(executor, first).state is RunState.SUCCEEDED
    assert runs_started(tmp_path) == ["j-000001.0"]


def test_concurrent_submits_of_one_attempt_start_one_process(runs_dir: Path, tmp_path: Path, wait_final: Wait) -> None:
    handles: list[RunHandle] = []

    def submit() -> None:
        handles.append(LocalExecutor(runs_dir).submit(gated(tmp_path)))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(handles) == 4 and len(set(handles)) == 1
    (tmp_path / "go").touch()
    assert wait_final(LocalExecutor(runs_dir), handles[0]).state is RunState.SUCCEEDED
    assert runs_started(tmp_path) == ["j-000001.0"]


def test_a_new_attempt_is_a_new_run(executor: LocalExecutor, tmp_path: Path, wait_final: Wait) -> None:
    (tmp_path / "go").touch()
    first = executor.submit(gated(tmp_path, attempt=0))
    second = executor.submit(gated(tmp_path, attempt=1))
    assert first != second
    assert wait_final(executor, first).state is wait_final(executor, second).state is RunState.SUCCEEDED
    assert sorted(runs_started(tmp_path)) == ["j-000001.0", "j-000001.1"]


def test_a_new_executor_reattaches_to_a_running_process(
    executor: LocalExecutor, tmp_path: Path, wait_final: Wait
) -> None:
    handle = executor.submit(gated(tmp_path))
    restarted = LocalExecutor(executor.runs_dir)
    assert restarted.poll(handle) == RunStatus(RunState.RUNNING)
    (tmp_path / "go").touch()
    assert wait_final(restarted, handle) == RunStatus(RunState.SUCCEEDED, exit_code=0)
    assert restarted.logs(handle)[0] == "finished\n"


SERVER = """
import sys, time
from pathlib import Path
from stargate.executors import LocalExecutor, RunRequest
executor = LocalExecutor(Path(sys.argv[1]))
handle = executor.submit(RunRequest("j-000009", 0, sys.argv[2], "c1", [0]))
print(handle.key, flush=True)
time.sleep(60)
"""


def test_the_exit_code_is_known_after_the_server_was_killed(runs_dir: Path, tmp_path: Path, wait_final: Wait) -> None:
    command = gated(tmp_path, then="echo finished; exit 4").command
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(runs_dir), command], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    key = server.stdout.readline().strip()
    server.send_signal(signal.SIGKILL)
    server.wait()
    handle = RunHandle("local", key)
    restarted = LocalExecutor(runs_dir)
    assert restarted.poll(handle).state is RunState.RUNNING  # the run survived its server
    (tmp_path / "go").touch()
    status = wait_final(restarted, handle)
    assert (status.state, status.exit_code) == (RunState.FAILED, 4)
    assert restarted.logs(handle)[0] == "finished\n"


def test_a_handle_whose_pid_was_reused_reads_as_lost(executor: LocalExecutor, tmp_path: Path) -> None:
    handle = executor.submit(gated(tmp_path))
    key = RunKey.decode(handle.key)
    forged = RunHandle("local", RunKey(key.job_id, key.attempt, key.pid, "ticks:1").encode())
    status = LocalExecutor(executor.runs_dir).poll(forged)
    assert status.state is RunState.LOST
    assert "pid reused" in status.reason
    assert executor.poll(handle).state is RunState.RUNNING  # the true handle still sees its run


def test_a_run_whose_runner_vanished_without_exit_code_is_lost(
    executor: LocalExecutor, tmp_path: Path, wait_for: Callable[..., None]
) -> None:
    handle = executor.submit(gated(tmp_path))
    record = json.loads((executor.run_dir("j-000001", 0) / "run.json").read_text())
    os.killpg(record["pgid"], signal.SIGKILL)
    os.kill(record["pid"], signal.SIGKILL)
    wait_for(lambda: executor.poll(handle).state is not RunState.RUNNING)
    status = executor.poll(handle)
    assert status.state is RunState.LOST
    assert f"process {record['pid']} is gone" in status.reason


def test_polling_an_unknown_run_is_lost_not_an_error(executor: LocalExecutor) -> None:
    status = executor.poll(RunHandle("local", RunKey("j-nothing", 0, 1, "ticks:1").encode()))
    assert status.state is RunState.LOST
    assert "no record of run j-nothing attempt 0" in status.reason
