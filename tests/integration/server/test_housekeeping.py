"""The housekeeping step with the real local executor: a pass removes the run and working directories of jobs that
ended at least the retention ago and nothing of a job still live, of a run not yet marked ended, nor of an executor
settling after an outage; the log of a pruned job is a 410 saying so; passes come a minute after leading, then every
ten minutes, never with ``never``; 200 finished runs leave no records behind (figures printed)."""

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from integration.server.cycle_support import cycle_until
from integration.server.stargate_harness import Harness
from stargate.domain import ClusterStatus
from stargate.executors.base import Health
from stargate.server.scheduling import health, housekeeping
from stargate.server.scheduling.loop import run_cycle
from stargate.store import JobRow, RunRow, parse_job_id

WEEK_S = 7 * 86_400.0
TIMEOUT_S = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


def _status(h: Harness, job: object) -> str:
    return str(h.client.get(f"/api/v1/jobs/{job}", headers=h.headers()).json()["status"])


def _until(h: Harness, done: Callable[[], bool]) -> None:
    cycle_until(h, done, TIMEOUT_S)


def _records(h: Harness) -> list[str]:
    return sorted(r.what for r in h.ctx.executor("local").records())


def _age(h: Harness, job: object, by: timedelta) -> None:
    """Make ``job`` (and its runs) have ended ``by`` earlier than they did."""
    row = parse_job_id(str(job))
    with h.ctx.db.write() as session:
        found = session.get(JobRow, row)
        assert found is not None and found.finished_at is not None
        session.execute(update(JobRow).where(JobRow.id == row).values(finished_at=found.finished_at - by))
        for run in session.scalars(select(RunRow).where(RunRow.job_id == row)):
            assert run.ended_at is not None
            session.execute(update(RunRow).where(RunRow.id == run.id).values(ended_at=run.ended_at - by))


def test_a_pass_removes_only_what_no_one_needs_and_the_log_then_says_it_was_pruned(harness: Harness) -> None:
    old = harness.submit(command="echo old")["id"]
    _until(harness, lambda: _status(harness, old) == "succeeded")
    _age(harness, old, timedelta(days=10))
    going = harness.submit(command="sleep 60")["id"]
    cancelled = harness.submit(command="sleep 60")["id"]
    _until(harness, lambda: _status(harness, going) == _status(harness, cancelled) == "running")
    answer = harness.client.post(f"/api/v1/jobs/{cancelled}/cancel", headers=harness.headers())
    assert answer.json()["status"] == "cancelled"  # final, while its run is not yet marked ended (no cycle since)
    assert len(_records(harness)) == 6  # a run directory and a working directory each

    done = housekeeping.prune_pass(harness.ctx, _now() + timedelta(days=8), WEEK_S)
    (local,) = done.executors
    assert (local.executor, local.records, local.removed, local.problems) == ("local", 6, 2, ())
    assert local.kept == {"still going on the engine": 4}
    assert not any(old in what for what in _records(harness))
    logs = harness.client.get(f"/api/v1/jobs/{old}/logs", headers=harness.headers())
    assert logs.status_code == 410, logs.text
    detail = logs.json()["detail"]
    assert detail.startswith(f"the log of job {old} was pruned 7 days after the job ended (")
    assert detail.endswith(
        "UTC): executor 'local' keeps a finished run's log and records that long (STARGATE_RUN_RETENTION)"
    )
    assert harness.client.get(f"/api/v1/jobs/{going}/logs", headers=harness.headers()).status_code == 200

    run_cycle(harness.ctx, _now())  # the reap step asks the executor to stop the cancelled job's run
    deadline = time.monotonic() + TIMEOUT_S
    while any(r.active for r in harness.ctx.executor("local").records() if r.job_id == cancelled):
        assert time.monotonic() < deadline, "the cancelled job's run still runs"
        time.sleep(0.05)
    kept = housekeeping.prune_pass(harness.ctx, _now() + timedelta(days=8), WEEK_S)  # over, not yet marked ended
    assert kept.removed == 0 and kept.executors[0].kept == {"still going on the engine": 2, "run not ended": 2}
    _until(harness, lambda: not any(r.job_id == parse_job_id(cancelled) for r in _live_runs(harness)))
    again = housekeeping.prune_pass(harness.ctx, _now() + timedelta(days=8), WEEK_S)
    assert again.removed == 2 and again.executors[0].kept == {"still going on the engine": 2}
    assert all(going in what for what in _records(harness))
    harness.client.post(f"/api/v1/jobs/{going}/cancel", headers=harness.headers())
    _until(harness, lambda: not _live_runs(harness))


def _live_runs(h: Harness) -> list[RunRow]:
    with h.ctx.db.read() as session:
        return list(session.scalars(select(RunRow).where(RunRow.ended.is_(False))))


def test_passes_come_a_minute_after_leading_then_every_ten_minutes_never_when_turned_off(harness: Harness) -> None:
    t0 = _now()
    assert housekeeping.step(harness.ctx, t0, wait=True) is None  # the first cycle led: a pass is due a minute later
    assert housekeeping.step(harness.ctx, t0 + timedelta(seconds=59), wait=True) is None
    first = housekeeping.step(harness.ctx, t0 + timedelta(seconds=60), wait=True)
    assert first is not None and [e.executor for e in first.executors] == ["local"]
    assert housekeeping.step(harness.ctx, t0 + timedelta(seconds=659), wait=True) is None
    skipped = housekeeping.step(harness.ctx, t0 + timedelta(seconds=660), frozenset({"local"}), wait=True)
    assert skipped is not None and skipped.executors == []  # its engine does not answer, or is settling
    harness.ctx.settings = replace(harness.ctx.settings, run_retention_s=None)  # STARGATE_RUN_RETENTION=never
    assert housekeeping.step(harness.ctx, t0 + timedelta(days=30), wait=True) is None


def test_the_cycle_leaves_an_executor_settling_after_an_outage_alone(harness: Harness) -> None:
    old = harness.submit(command="true")["id"]
    _until(harness, lambda: _status(harness, old) == "succeeded")
    _age(harness, old, timedelta(days=10))
    tracker = health.HealthTracker("local", down_after_s=60.0)  # its engine failed a check, then answered just now
    now = _now()
    tracker.judge(Health(reachable=False, reason="refused"), now - timedelta(seconds=5), ClusterStatus.UP)
    tracker.judge(Health(reachable=True), now, ClusterStatus.UP)
    health.state_of(harness.ctx).trackers["local"] = tracker
    state = housekeeping.state_of(harness.ctx)
    state.due = now  # a pass is due this cycle
    run_cycle(harness.ctx, now)
    assert state.running is not None
    state.running.join(TIMEOUT_S)
    assert state.finished is not None and state.finished.executors == []
    assert len(_records(harness)) == 2  # kept until the watch after the outage is over


@pytest.mark.slow
def test_200_finished_runs_leave_no_records_behind(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [harness.submit(command="echo done")["id"] for _ in range(200)]
    began = time.monotonic()
    _until(harness, lambda: not _live_runs(harness) and _status(harness, jobs[-1]) == "succeeded")
    ran_s = time.monotonic() - began
    runs_dir = harness.ctx.settings.home
    before, size = len(_records(harness)), _bytes(runs_dir)
    assert before == 400  # a run directory and a working directory per run: grows with every run
    done = housekeeping.prune_pass(harness.ctx, _now() + timedelta(days=8), WEEK_S)
    after = len(_records(harness))
    steady = housekeeping.prune_pass(harness.ctx, _now() + timedelta(days=8), WEEK_S)
    assert (done.removed, after, steady.removed) == (400, 0, 0)
    assert all(_status(harness, j) == "succeeded" for j in jobs[:5])
    with capsys.disabled():
        print(
            f"\nretention: 200 runs ({ran_s:.1f} s to run) left {before} records ({size / 1024:.0f} KiB under the "
            f"state directory); a pass removed {done.removed} in {done.took_s * 1000:.0f} ms "
            f"({done.took_s / max(done.removed, 1) * 1e6:.0f} µs a record), {after} left; a pass with nothing to "
            f"remove: {steady.took_s * 1000:.1f} ms; {_bytes(runs_dir) / 1024:.0f} KiB after"
        )


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith("stargate.db"))
