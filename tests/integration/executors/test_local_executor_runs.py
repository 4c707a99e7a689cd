"""The local executor runs real commands: exit codes, environment, logs paged by byte offsets, bad input."""

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stargate import executors
from stargate.domain import LocalExecutorConfig, SlurmExecutorConfig
from stargate.executors import (
    LocalExecutor,
    RunRequest,
    RunState,
    RunStatus,
    UnknownExecutorError,
    build,
    capabilities_of,
    for_kind,
)
from stargate.executors.local_state import utf8_boundary

Wait = Callable[..., RunStatus]


def request(command: str, job_id: str = "j-000001", attempt: int = 0, gpus: tuple[int, ...] = (0,)) -> RunRequest:
    """A run request on cluster ``c1``."""
    return RunRequest(job_id=job_id, attempt=attempt, command=command, cluster="c1", gpu_ids=gpus)


def test_true_succeeds_with_exit_code_0(executor: LocalExecutor, wait_final: Wait) -> None:
    status = wait_final(executor, executor.submit(request("true")))
    assert status == RunStatus(RunState.SUCCEEDED, exit_code=0)


def test_false_fails_with_its_exit_code(executor: LocalExecutor, wait_final: Wait) -> None:
    status = wait_final(executor, executor.submit(request("false")))
    assert (status.state, status.exit_code, status.reason) == (RunState.FAILED, 1, "exit code 1")


def test_a_command_killed_by_a_signal_reports_the_signal(executor: LocalExecutor, wait_final: Wait) -> None:
    status = wait_final(executor, executor.submit(request("kill -KILL $$")))
    assert (status.state, status.exit_code) == (RunState.FAILED, 137)
    assert status.reason == "killed by signal 9 (SIGKILL)"


def test_the_job_sees_its_id_attempt_and_gpu_ids_but_no_server_secret(runs_dir: Path, wait_final: Wait) -> None:
    base = {"PATH": "/usr/bin:/bin", "STARGATE_ADMIN_TOKEN": "secret", "HOME": "/tmp"}
    executor = LocalExecutor(runs_dir, base_environment=base)
    req = RunRequest("j-7", 2, "env", "c9", [3, 5], environment={"MY_VAR": "x"})
    handle = executor.submit(req)
    assert wait_final(executor, handle).state is RunState.SUCCEEDED
    text, _ = executor.logs(handle)
    env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert env["STARGATE_JOB_ID"] == "j-7"
    assert env["STARGATE_ATTEMPT"] == "2"
    assert env["STARGATE_CLUSTER"] == "c9"
    assert env["CUDA_VISIBLE_DEVICES"] == env["STARGATE_GPU_IDS"] == "3,5"
    assert env["MY_VAR"] == "x"
    assert "STARGATE_ADMIN_TOKEN" not in env


def test_stdout_and_stderr_go_to_the_log_read_by_offsets(executor: LocalExecutor, wait_final: Wait) -> None:
    handle = executor.submit(request("for i in 1 2 3; do echo step $i; done; echo oops >&2; printf 'é€'"))
    wait_final(executor, handle)
    whole, end = executor.logs(handle)
    assert whole == "step 1\nstep 2\nstep 3\noops\né€"
    assert end == len(whole.encode()) == 31
    rest, end_again = executor.logs(handle, 7)
    assert (rest, end_again) == ("step 2\nstep 3\noops\né€", 31)
    assert executor.logs(handle, 26) == ("é€", 31)
    assert executor.logs(handle, end) == ("", end)


@given(st.text(), st.integers(min_value=0, max_value=40))
def test_utf8_boundary_keeps_whole_characters(text: str, cut: int) -> None:
    data = text.encode()[:cut]
    kept = utf8_boundary(data)
    data[:kept].decode()  # never raises: no split character
    assert len(data) - kept <= 3


def test_negative_log_offset_is_refused(executor: LocalExecutor, wait_final: Wait) -> None:
    handle = executor.submit(request("true"))
    with pytest.raises(ValueError, match="offset"):
        executor.logs(handle, -1)


def test_a_job_id_that_is_not_a_file_name_is_refused(executor: LocalExecutor) -> None:
    with pytest.raises(ValueError, match="cannot name a run directory"):
        executor.submit(request("true", job_id="../escape"))


def test_a_command_that_cannot_start_fails_with_127(runs_dir: Path, tmp_path: Path, wait_final: Wait) -> None:
    executor = LocalExecutor(runs_dir, workdir=tmp_path / "missing")
    handle = executor.submit(request("true"))
    status = wait_final(executor, handle)
    assert (status.state, status.exit_code) == (RunState.FAILED, 127)
    assert "cannot start the command" in executor.logs(handle)[0]


def test_the_run_directory_holds_the_record_and_exit_files(executor: LocalExecutor, wait_final: Wait) -> None:
    wait_final(executor, executor.submit(request("true", job_id="j-42", attempt=1)))
    run_dir = executor.run_dir("j-42", 1)
    assert run_dir == executor.runs_dir / "j-42" / "attempt-1"
    assert json.loads((run_dir / "exit.json").read_text())["exit_code"] == 0
    assert json.loads((run_dir / "run.json").read_text())["command"] == "true"


def test_for_kind_builds_the_local_executor_under_home(tmp_path: Path) -> None:
    executor = for_kind("local", SimpleNamespace(home=tmp_path))
    assert isinstance(executor, LocalExecutor)
    assert executor.runs_dir == tmp_path / "runs"
    built = build(LocalExecutorConfig(id="here", kind="local"), SimpleNamespace(home=tmp_path / "b"))
    assert isinstance(built, LocalExecutor) and built.runs_dir == tmp_path / "b" / "runs"


def test_for_kind_refuses_an_unknown_kind_clearly(tmp_path: Path) -> None:
    with pytest.raises(UnknownExecutorError, match=r"^unknown executor kind 'nomad' \(known: kubernetes, local, ray"):
        for_kind("nomad", SimpleNamespace(home=tmp_path))


def test_an_engine_executor_whose_module_is_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(executors._MODULES, "slurm", ("stargate.executors.no_such_module", "SlurmExecutor"))
    with pytest.raises(UnknownExecutorError, match=r"^the slurm executor is not available in this installation"):
        build(SlurmExecutorConfig(id="east", kind="slurm"), SimpleNamespace(home=tmp_path))
    fallback = capabilities_of(SlurmExecutorConfig(id="east", kind="slurm"))  # submit checks still know it
    assert fallback.images is False and fallback.argument_limits is None and fallback.multinode is True
    monkeypatch.setitem(executors._MODULES, "slurm", ("json", "NoSuchClass"))
    with pytest.raises(UnknownExecutorError, match=r"^the slurm executor is not available in this installation"):
        build(SlurmExecutorConfig(id="east", kind="slurm"), SimpleNamespace(home=tmp_path))
