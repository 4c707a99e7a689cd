"""Everything accepted can run, or fails once with a reason: bounded start failures (counted across restarts), runs
the executor cannot start, and a cancelled job that is never started (real database, real local executor)."""

import inspect
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from integration.server.stargate_harness import Harness
from stargate.executors import LocalExecutor, LocalExecutorError, RunRequest, local_runner
from stargate.server.context import ExecutorRegistry, ServerContext
from stargate.server.scheduling.apply import apply_decisions
from stargate.server.scheduling.decide import decide
from stargate.server.scheduling.loop import run_cycle
from stargate.server.scheduling.snapshot import take_snapshot
from stargate.server.terms import engine_seconds
from stargate.store import JobRow, RunRow, parse_job_id

TIMEOUT_S = 15.0


def _now() -> datetime:
    return datetime.now(UTC)


def _row(h: Harness, job_id: object) -> JobRow:
    """The job's row, read from the database (a spec corrupted on purpose would not pass the API's read)."""
    with h.ctx.db.read() as s:
        row = s.get(JobRow, parse_job_id(str(job_id)))
        assert row is not None
        s.expunge(row)
        return row


def _runs(h: Harness, job_id: object) -> list[RunRow]:
    with h.ctx.db.read() as s:
        rows = list(s.scalars(select(RunRow).where(RunRow.job_id == parse_job_id(str(job_id))).order_by(RunRow.id)))
        for r in rows:
            s.expunge(r)
        return rows


def _unstartable(h: Harness, job_id: object) -> None:
    """Store an environment name the OS refuses (``A=B``): every start of the job raises in the executor. The API
    refuses such a spec now; a row stored before (or by a bug) must still not be retried forever."""
    with h.ctx.db.write() as s:
        row = s.get(JobRow, parse_job_id(str(job_id)))
        assert row is not None
        row.spec = {**row.spec, "environment": {"A=B": "x"}}


def _cycle_until(h: Harness, done: object, ctx: ServerContext | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():  # type: ignore[operator]
        run_cycle(ctx or h.ctx, _now())
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _runner_args(run_dir: Path, cwd: Path, marker: Path) -> list[str]:
    """The runner's command line: ``RUN_DIR GRACE_S`` (what to run is in its launch file), or, for a runner that
    takes them as arguments, ``RUN_DIR GRACE_S CWD COMMAND``."""
    if len(inspect.signature(local_runner.run).parameters) == 2:
        return [str(run_dir), "1"]
    return [str(run_dir), "1", str(cwd), f"touch {marker}"]


def test_a_job_whose_start_keeps_failing_fails_after_three_tries_and_frees_its_gpus(harness: Harness) -> None:
    bad = harness.submit(gpus=4, gpu_models=["GB200"], command="true")["id"]
    _unstartable(harness, bad)
    waiting = harness.submit(gpus=4, gpu_models=["GB200"], command="true")["id"]  # needs the same 4 GPUs
    for tries in (1, 2):
        report = run_cycle(harness.ctx, _now())
        assert (_row(harness, bad).status, _runs(harness, bad)[0].start_failures) == ("placed", tries)
        assert report.started == 0 and _row(harness, waiting).status == "pending"
    run_cycle(harness.ctx, _now())
    job = _row(harness, bad)
    assert job.status == "failed"
    assert job.reason == "start_failed" and job.detail.startswith("on local executor after 3 tries: ")
    assert "environment variable" in job.detail  # the executor's own error
    run_cycle(harness.ctx, _now())  # orphaned runs are stopped before placed jobs start: the next cycle withdraws it
    [run] = _runs(harness, bad)
    assert run.ended and run.start_failures == 3 and run.handle_key is None
    assert run.note == f"withdrawn before it started: {bad} attempt 0 moved on"
    _cycle_until(harness, lambda: _row(harness, waiting).status == "succeeded")  # the GPUs were released
    metrics = harness.client.get("/metrics").text
    assert 'stargate_start_failures_total{executor="local"} 3.0' in metrics
    assert 'stargate_jobs_finished_total{status="failed"} 1.0' in metrics
    for _ in range(3):  # nothing is retried after the job failed
        assert run_cycle(harness.ctx, _now()).executor_errors == 0


def test_the_count_of_failed_starts_holds_across_restarts(harness: Harness) -> None:
    job = harness.submit(command="true")["id"]
    _unstartable(harness, job)
    for tries in (1, 2, 3):
        restarted = ServerContext(settings=harness.ctx.settings, db=harness.ctx.db)  # a new process each time
        run_cycle(restarted, _now())
        assert _runs(harness, job)[0].start_failures == tries
    assert _row(harness, job).status == "failed"
    assert _row(harness, job).reason == "start_failed"
    assert _row(harness, job).detail.startswith("on local executor after 3 tries: ")


def test_the_bound_on_tries_is_a_setting(harness: Harness) -> None:
    job = harness.submit(command="true")["id"]
    _unstartable(harness, job)
    once = ServerContext(settings=replace(harness.ctx.settings, start_tries=1), db=harness.ctx.db)
    run_cycle(once, _now())
    assert _row(harness, job).detail.startswith("on local executor after 1 tries: ")


def test_a_command_the_executor_cannot_start_fails_once_with_the_reason(harness: Harness, tmp_path: Path) -> None:
    settings = harness.ctx.settings
    missing = tmp_path / "no-such-dir"
    broken = LocalExecutor(settings.runs_dir, workdir=missing)  # every command's working directory is missing
    ctx = ServerContext(settings=settings, db=harness.ctx.db, executors=ExecutorRegistry(settings, {"local": broken}))
    job = harness.submit(command="true")["id"]
    _cycle_until(harness, lambda: _row(harness, job).status == "failed", ctx=ctx)
    row = _row(harness, job)
    assert row.reason == "unstartable" and row.detail.startswith("on local executor: cannot start the command: ")
    assert str(missing) in row.detail and row.exit_code == 127
    [run] = _runs(harness, job)
    assert run.ended and run.start_failures == 0 and run.exit_code == 127


def test_cancelling_a_job_placed_without_a_run_never_runs_its_command(harness: Harness, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    job = harness.submit(command=f"touch {marker}")["id"]
    snap = take_snapshot(harness.ctx)
    assert snap is not None
    result, lost, _ = decide(snap, harness.ctx.policy_for(snap.fleet), engine_seconds(_now()))
    apply_decisions(harness.ctx, snap, result, lost, _now())  # the decision is committed, then "the server dies"
    assert _row(harness, job).status == "placed" and _runs(harness, job)[0].handle_key is None
    cancelled = harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    assert cancelled.json()["status"] == "cancelled"
    restarted = ServerContext(settings=harness.ctx.settings, db=harness.ctx.db)
    report = run_cycle(restarted, _now())
    assert report.reaped == 1 and report.started == 0
    [run] = _runs(harness, job)
    assert run.ended and run.handle_key is None and run.note.startswith("withdrawn before it started")
    # A runner the crashed server had already spawned, arriving late, finds the run withdrawn and runs nothing:
    run_dir = restarted.executor("local").run_dir(str(job), 0)  # type: ignore[attr-defined]
    late = subprocess.run(
        [sys.executable, "-I", local_runner.__file__, *_runner_args(run_dir, tmp_path, marker)],
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert late.returncode == 0 and not (run_dir / local_runner.RECORD).exists()
    with pytest.raises(LocalExecutorError, match="withdrawn"):  # and a submit of that attempt is refused
        restarted.executor("local").submit(RunRequest(str(job), 0, f"touch {marker}", "lab-h100", (0,)))
    for _ in range(3):
        run_cycle(restarted, _now())
    time.sleep(0.2)
    assert not marker.exists()
    assert _row(harness, job).status == "cancelled"


def test_a_cancelled_running_job_records_its_exit_code(harness: Harness) -> None:
    job = harness.submit(command="trap 'exit 7' TERM; sleep 20 & wait")["id"]
    _cycle_until(harness, lambda: _row(harness, job).status == "running")
    harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    _cycle_until(harness, lambda: _runs(harness, job)[0].ended)
    data = harness.client.get(f"/api/v1/jobs/{job}", headers=harness.headers()).json()
    assert (data["status"], data["exit_code"]) == ("cancelled", 7)
    assert _runs(harness, job)[0].exit_code == 7
