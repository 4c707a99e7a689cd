"""The scheduler loop with the real local executor: jobs run as real processes, finish, get cancelled, survive
restarts (a fresh context over the same database and runs directory) without running twice."""

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from integration.server.stargate_harness import Harness
from stargate import executors
from stargate.engine import get_policy
from stargate.executors import RunHandle, RunRequest
from stargate.server.context import ServerContext
from stargate.server.scheduling.apply import apply_decisions
from stargate.server.scheduling.decide import decide
from stargate.server.scheduling.loop import CycleReport, run_cycle
from stargate.server.scheduling.snapshot import take_snapshot
from stargate.server.terms import engine_seconds
from stargate.store import JobEventRow, JobRow, RunRow, parse_job_id

TIMEOUT_S = 15.0


def _now() -> datetime:
    return datetime.now(UTC)


def _job(h: Harness, job_id: str) -> dict[str, object]:
    data: dict[str, object] = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers()).json()
    return data


def _cycle_until(h: Harness, done: Callable[[], bool], ctx: ServerContext | None = None) -> list[CycleReport]:
    """Run cycles (short sleeps between them) until ``done()``; fail after TIMEOUT_S."""
    reports = []
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        reports.append(run_cycle(ctx or h.ctx, _now()))
        if done():
            return reports
        assert time.monotonic() < deadline, f"timed out; last report: {reports[-1]}"
        time.sleep(0.05)


def _status(h: Harness, job_id: object) -> object:
    return _job(h, str(job_id))["status"]


def _runs(h: Harness, job_id: object) -> list[RunRow]:
    with h.ctx.db.read() as s:
        return list(s.scalars(select(RunRow).where(RunRow.job_id == parse_job_id(str(job_id))).order_by(RunRow.id)))


def test_true_succeeds_and_false_fails_with_their_exit_codes(harness: Harness) -> None:
    ok = harness.submit(command="true")["id"]
    bad = harness.submit(command="echo oops >&2; exit 3")["id"]
    first = run_cycle(harness.ctx, _now())
    assert (first.placed, first.started) == (2, 2)
    _cycle_until(harness, lambda: _status(harness, ok) == "succeeded" and _status(harness, bad) == "failed")
    good, failed = _job(harness, str(ok)), _job(harness, str(bad))
    assert (good["exit_code"], failed["exit_code"]) == (0, 3)
    assert (failed["reason"], failed["detail"]) == ("failed", "exited with code 3")
    assert (good["reason"], good["detail"]) == ("succeeded", "exited with code 0")
    assert good["cluster"] in ("lab-h100", "lab-gb200")
    with harness.ctx.db.read() as s:
        moves = [
            (e.from_status, e.to_status)
            for e in s.scalars(select(JobEventRow).where(JobEventRow.job_id == parse_job_id(str(ok))))
        ]
    assert moves == [(None, "pending"), ("pending", "placed"), ("placed", "running"), ("running", "succeeded")]
    assert [(r.attempt, r.ended, r.exit_code) for r in _runs(harness, bad)] == [(0, True, 3)]
    logs = harness.client.get(f"/api/v1/jobs/{bad}/logs", headers=harness.headers()).json()
    assert logs["text"] == "oops\n" and logs["complete"] is True


def test_an_image_only_job_on_an_all_local_fleet_is_never_placed_and_fails_with_the_reason(harness: Harness) -> None:
    # The API refuses image-only jobs on an all-local fleet; a stored one (e.g. from a mixed fleet) is rejected by
    # the engine: no cluster's executor runs images, so it is never placed (it would run an empty command).
    job_id = harness.submit(command="true")["id"]
    with harness.ctx.db.write() as s:
        row = s.get(JobRow, parse_job_id(str(job_id)))
        assert row is not None
        row.spec = {**row.spec, "command": None, "image": "ubuntu:22.04"}
    _cycle_until(harness, lambda: _status(harness, job_id) == "failed")
    job = _job(harness, str(job_id))
    assert (job["reason"], job["cluster"], job["exit_code"]) == ("no_allowed_cluster", None, None)
    assert job["detail"] == "no cluster matches all of an executor that runs images"


def test_an_image_only_job_placed_on_the_local_executor_fails_with_the_reason(harness: Harness) -> None:
    # Placed while the fleet still ran it elsewhere: the executor step must not "succeed" it with an empty command.
    job_id = harness.submit(command="true")["id"]
    snap = take_snapshot(harness.ctx)
    assert snap is not None
    result, lost, _ = decide(snap, harness.ctx.policy_for(snap.fleet), engine_seconds(_now()))
    apply_decisions(harness.ctx, snap, result, lost, _now())  # placed; its executor not called yet
    with harness.ctx.db.write() as s:
        row = s.get(JobRow, parse_job_id(str(job_id)))
        assert row is not None and row.status == "placed"
        row.spec = {**row.spec, "command": None, "image": "ubuntu:22.04"}
    harness.ctx.loop.spec_terms.clear()
    _cycle_until(harness, lambda: _status(harness, job_id) == "failed")
    job = _job(harness, str(job_id))
    assert job["reason"] == "unstartable"
    assert job["detail"] == "the local executor runs commands; this job has only an image"
    assert job["exit_code"] is None


def test_gpus_are_never_shared_and_waiting_jobs_start_when_gpus_free(harness: Harness) -> None:
    ids = [harness.submit(gpus=4, gpu_models=["H100-SXM"], command="sleep 0.3")["id"] for _ in range(3)]
    report = run_cycle(harness.ctx, _now())
    assert report.placed == 2 and report.pending_after == 1
    placed = [_job(harness, str(i)) for i in ids[:2]]
    gpu_sets = [set(j["gpu_ids"]) for j in placed]  # type: ignore[arg-type]
    assert all(j["cluster"] == "lab-h100" for j in placed) and not gpu_sets[0] & gpu_sets[1]
    assert _status(harness, ids[2]) == "pending"
    _cycle_until(harness, lambda: all(_status(harness, i) == "succeeded" for i in ids))
    metrics = harness.client.get("/metrics").text
    assert "stargate_placements_total 3.0" in metrics
    assert 'stargate_running_gpus{cluster="lab-h100"} 0.0' in metrics


def test_a_job_no_cluster_can_hold_is_rejected_with_a_reason(harness: Harness) -> None:
    job = harness.submit(gpus=64)["id"]
    report = run_cycle(harness.ctx, _now())
    assert report.rejected == 1
    data = _job(harness, str(job))
    assert (data["status"], data["reason"], data["detail"]) == ("failed", "no_cluster_fits", "")


def test_cancelling_a_running_job_stops_its_process(harness: Harness, tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    job = harness.submit(command=f"sleep 20; touch {marker}")["id"]
    _cycle_until(harness, lambda: _status(harness, job) == "running")
    cancelled = harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    assert cancelled.json()["status"] == "cancelled"
    report = run_cycle(harness.ctx, _now())
    assert report.reaped == 1
    _cycle_until(harness, lambda: _runs(harness, job)[0].ended)  # ended once the executor reports it over
    run = _runs(harness, job)[0]
    assert run.handle_key and run.exit_code == 143  # 128 + SIGTERM
    assert run.exit_code == _job(harness, str(job))["exit_code"]
    executor = harness.ctx.executor("local")
    assert executor.poll(RunHandle("local", run.handle_key)).state.value == "cancelled"
    assert not marker.exists()


def test_a_crash_between_decision_and_submit_runs_the_job_exactly_once(harness: Harness, tmp_path: Path) -> None:
    tally = tmp_path / "tally"
    job = harness.submit(command=f"echo run >> {tally}")["id"]
    snap = take_snapshot(harness.ctx)
    assert snap is not None
    result, lost, _ = decide(snap, harness.ctx.policy_for(snap.fleet), engine_seconds(_now()))
    apply_decisions(harness.ctx, snap, result, lost, _now())  # decision committed, then "the server dies"
    assert _status(harness, job) == "placed" and _runs(harness, job)[0].handle_key is None
    harness.ctx.executor("local").submit(RunRequest(str(job), 0, f"echo run >> {tally}", "lab-h100", (0,)))
    restarted = ServerContext(settings=harness.ctx.settings, db=harness.ctx.db)  # a new process: fresh executors
    _cycle_until(harness, lambda: _status(harness, job) == "succeeded", ctx=restarted)
    assert tally.read_text() == "run\n"
    assert len(_runs(harness, job)) == 1


def test_a_restarted_scheduler_reattaches_to_running_jobs(harness: Harness, tmp_path: Path) -> None:
    job = harness.submit(command="sleep 0.5; echo done")["id"]
    _cycle_until(harness, lambda: _status(harness, job) == "running")
    restarted = ServerContext(settings=harness.ctx.settings, db=harness.ctx.db)
    _cycle_until(harness, lambda: _status(harness, job) == "succeeded", ctx=restarted)
    runs = _runs(harness, job)
    assert [(r.attempt, r.ended, r.exit_code) for r in runs] == [(0, True, 0)]
    assert harness.client.get(f"/api/v1/jobs/{job}/logs", headers=harness.headers()).json()["text"] == "done\n"


def test_preemption_requeues_the_victim_stops_its_run_and_restarts_it_as_a_new_attempt(harness: Harness) -> None:
    victim = harness.submit(queue="beta-q", gpus=4, gpu_models=["GB200"], priority_class="low", command="sleep 5")
    _cycle_until(harness, lambda: _status(harness, victim["id"]) == "running")
    urgent = harness.submit(gpus=4, gpu_models=["GB200"], priority_class="high", command="sleep 0.3")
    report = run_cycle(harness.ctx, _now())
    assert (report.preempted, report.placed, report.reaped) == (1, 1, 1)
    requeued = _job(harness, str(victim["id"]))
    assert (requeued["status"], requeued["attempt"], requeued["cluster"]) == ("pending", 1, None)
    assert (requeued["reason"], requeued["detail"]) == ("priority", "")
    _cycle_until(harness, lambda: _status(harness, urgent["id"]) == "succeeded")
    _cycle_until(harness, lambda: _status(harness, victim["id"]) == "running")
    assert [(r.attempt, r.ended) for r in _runs(harness, victim["id"])] == [(0, True), (1, False)]
    harness.client.post(f"/api/v1/jobs/{victim['id']}/cancel", headers=harness.headers())
    assert run_cycle(harness.ctx, _now()).reaped == 1


def test_idle_cycles_skip_the_engine_until_a_job_changes(harness: Harness) -> None:
    assert run_cycle(harness.ctx, _now()).decided  # the first cycle always decides
    harness.submit(gpus=64)  # rejected by the next decision: that writes an event, so one more cycle decides
    assert run_cycle(harness.ctx, _now()).rejected == 1
    assert run_cycle(harness.ctx, _now()).decided
    idle = run_cycle(harness.ctx, _now())
    assert not idle.decided and idle.placed == 0
    job = harness.submit(command="true")["id"]
    busy = run_cycle(harness.ctx, _now())
    assert busy.decided and busy.placed == 1 and _status(harness, job) == "running"


def test_a_decision_about_a_job_cancelled_meanwhile_is_dropped(harness: Harness) -> None:
    job = harness.submit()["id"]
    snap = take_snapshot(harness.ctx)
    assert snap is not None
    result, lost, _ = decide(snap, harness.ctx.policy_for(snap.fleet), engine_seconds(_now()))
    assert [s.job_id for s in result.starts] == [job]
    harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    applied = apply_decisions(harness.ctx, snap, result, lost, _now())
    assert applied.placed == 0
    assert _status(harness, job) == "cancelled" and _runs(harness, job) == []


def test_jobs_on_a_cluster_removed_from_the_fleet_go_back_to_pending(harness: Harness) -> None:
    job = harness.submit(gpus=4, gpu_models=["GB200"], command="sleep 5")["id"]
    _cycle_until(harness, lambda: _status(harness, job) == "running")
    fleet = harness.client.get("/api/v1/fleet", headers=harness.headers()).json()["fleet"]
    for cluster in fleet["clusters"]:  # replaced by another GB200 cluster: the job can still run (else refused)
        if cluster["id"] == "lab-gb200":
            cluster["id"] = "lab-gb200-b"
    plan = harness.client.post("/api/v1/fleet/plan", json={"fleet": fleet}, headers=harness.headers()).json()
    harness.client.post("/api/v1/fleet/apply", json={"plan_id": plan["plan_id"]}, headers=harness.headers())
    report = run_cycle(harness.ctx, _now())
    assert report.requeued == 1 and report.reaped == 1
    data = _job(harness, str(job))
    assert (data["status"], data["attempt"]) == ("pending", 1)
    assert (data["reason"], data["detail"]) == ("cluster_removed", "cluster 'lab-gb200' is no longer in the fleet")
    _cycle_until(harness, lambda: _runs(harness, job)[0].ended)  # the run on the removed cluster is stopped


def test_a_job_placed_where_no_executor_exists_fails_with_the_reason(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(executors._MODULES, "ray", ("stargate.executors.no_such_module", "RayExecutor"))
    fleet = harness.client.get("/api/v1/fleet", headers=harness.headers()).json()["fleet"]
    fleet["providers"][0]["executor"] = "ray"
    plan = harness.client.post("/api/v1/fleet/plan", json={"fleet": fleet}, headers=harness.headers()).json()
    harness.client.post("/api/v1/fleet/apply", json={"plan_id": plan["plan_id"]}, headers=harness.headers())
    job = harness.submit()["id"]
    report = run_cycle(harness.ctx, _now())
    assert report.placed == 1 and report.started == 0 and report.executor_errors == 1
    data = _job(harness, str(job))
    assert (data["status"], data["reason"]) == ("failed", "unstartable")
    assert "the ray executor is not available in this installation" in str(data["detail"])
    assert 'stargate_executor_errors_total{executor="ray",operation="build"} 1.0' in harness.client.get("/metrics").text


def test_a_run_that_vanished_fails_its_job_as_lost(harness: Harness) -> None:
    job = harness.submit(command="sleep 20")["id"]
    _cycle_until(harness, lambda: _status(harness, job) == "running")
    run_dir = harness.ctx.settings.runs_dir / str(harness.ctx.settings.installation_id) / str(job) / "attempt-0"
    record = json.loads((run_dir / "run.json").read_text())
    for kill, target in ((os.killpg, record.get("pgid")), (os.kill, record.get("pid"))):
        if isinstance(target, int):
            with contextlib.suppress(ProcessLookupError):
                kill(target, signal.SIGKILL)
    shutil.rmtree(run_dir)
    _cycle_until(harness, lambda: _status(harness, job) == "failed")
    lost = _job(harness, str(job))
    assert lost["reason"] == "lost" and lost["detail"]  # the executor's account of it


def test_a_job_whose_cluster_is_removed_keeps_its_progress_up_to_its_last_checkpoint(harness: Harness) -> None:
    job = harness.submit(gpus=4, gpu_models=["GB200"], command="sleep 5", checkpoint_interval_s=10.0)["id"]
    t0 = _now()
    assert run_cycle(harness.ctx, t0).placed == 1
    fleet = harness.client.get("/api/v1/fleet", headers=harness.headers()).json()["fleet"]
    for cluster in fleet["clusters"]:  # replaced by another GB200 cluster: the job can still run (else refused)
        if cluster["id"] == "lab-gb200":
            cluster["id"] = "lab-gb200-b"
    plan = harness.client.post("/api/v1/fleet/plan", json={"fleet": fleet}, headers=harness.headers()).json()
    harness.client.post("/api/v1/fleet/apply", json={"plan_id": plan["plan_id"]}, headers=harness.headers())
    assert run_cycle(harness.ctx, t0 + timedelta(seconds=25)).requeued == 1
    with harness.ctx.db.read() as s:
        row = s.get(JobRow, parse_job_id(str(job)))
        # two 10-s checkpoints of 25 s, less the default policy's restart cost (the next run reloads the checkpoint)
        cost = get_policy(fleet["scheduling"]["policy"]).restart_cost_s
        assert cost > 0
        assert row is not None and (row.status, row.progress_s) == ("pending", 20.0 - cost)


def _apply(harness: Harness, change: Callable[[dict[str, Any]], None]) -> None:
    fleet = harness.client.get("/api/v1/fleet", headers=harness.headers()).json()["fleet"]
    change(fleet)
    plan = harness.client.post("/api/v1/fleet/plan", json={"fleet": fleet}, headers=harness.headers()).json()
    harness.client.post("/api/v1/fleet/apply", json={"plan_id": plan["plan_id"]}, headers=harness.headers())


def _status_of(cluster: str, status: str) -> Callable[[dict[str, Any]], None]:
    def change(fleet: dict[str, Any]) -> None:
        for c in fleet["clusters"]:
            if c["id"] == cluster:
                c["status"] = status

    return change


def test_a_rebuilt_driver_counts_progress_from_the_current_run_not_the_first(harness: Harness) -> None:
    job = harness.submit(gpus=4, gpu_models=["GB200"], command="sleep 60", checkpoint_interval_s=10.0)["id"]
    t0 = _now()
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    assert run_cycle(harness.ctx, at(0)).placed == 1
    _apply(harness, _status_of("lab-gb200", "down"))
    assert run_cycle(harness.ctx, at(100)).preempted == 1  # 100 s kept
    _apply(harness, _status_of("lab-gb200", "up"))
    assert run_cycle(harness.ctx, at(200)).placed == 1
    _apply(harness, lambda fleet: fleet.update(description="a change beyond statuses: the driver is rebuilt"))
    run_cycle(harness.ctx, at(250))
    _apply(harness, _status_of("lab-gb200", "down"))
    assert run_cycle(harness.ctx, at(260)).preempted == 1
    with harness.ctx.db.read() as s:
        row = s.get(JobRow, parse_job_id(str(job)))
        # 100 s, then 60 s of the run begun at 200 s, less the default policy's (gittins) 60-s restart cost per stop;
        # counted from the first run it would be 40 + 260 - 60 = 240 s
        assert row is not None and row.progress_s == 100.0 - 60.0 + 60.0 - 60.0
    assert _job(harness, str(job))["progress_s"] == 40.0  # shown by the API too
