"""The watch after an outage, with the real local executor: for a while after an engine answers again its orphaned
runs are only watched (one may yet be found to have completed its job), but only those whose job is still live; the
run of a job cancelled meanwhile is stopped in the same cycle, not at the watch's end."""

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from integration.server.cycle_support import TIMEOUT_S, cycle_until
from integration.server.stargate_harness import Harness
from stargate.domain import ClusterStatus
from stargate.executors import RunHandle, RunState
from stargate.executors.base import Health
from stargate.server.scheduling import health
from stargate.server.scheduling.execute import Executed
from stargate.server.scheduling.loop import CycleReport, _decide_and_apply, run_cycle
from stargate.server.scheduling.reap import STOPPING, reap_orphans
from stargate.store import RunRow, parse_job_id
from stargate.store.repositories import health as health_repo
from stargate.store.repositories.health import Change


def _now() -> datetime:
    return datetime.now(UTC)


def _runs(h: Harness, job_id: object) -> list[RunRow]:
    with h.ctx.db.read() as s:
        return list(s.scalars(select(RunRow).where(RunRow.job_id == parse_job_id(str(job_id))).order_by(RunRow.id)))


def _state(h: Harness, run: RunRow) -> RunState:
    assert run.handle_key is not None
    state: RunState = h.ctx.executor(run.executor).poll(RunHandle(run.executor, run.handle_key)).state
    return state


def _back_from_an_outage(h: Harness, executor: str) -> None:
    """The health step's state once ``executor``'s engine failed a check and answered the next one just now: its
    orphans are being watched (see ``health.settling``)."""
    tracker = health.HealthTracker(executor, down_after_s=60.0)
    now = _now()
    tracker.judge(Health(reachable=False, reason="refused"), now - timedelta(seconds=5), ClusterStatus.UP)
    tracker.judge(Health(reachable=True), now, ClusterStatus.UP)
    health.state_of(h.ctx).trackers[executor] = tracker
    assert health.settling(h.ctx, _now()) == {executor}


def test_a_job_cancelled_while_its_engine_is_watched_has_its_run_stopped_in_that_cycle(harness: Harness) -> None:
    job = harness.submit(command="sleep 60")["id"]
    cycle_until(harness, lambda: bool(_runs(harness, job)) and _runs(harness, job)[0].handle_key is not None)
    (run,) = _runs(harness, job)
    assert _state(harness, run) is RunState.RUNNING
    _back_from_an_outage(harness, run.executor)
    cancelled = harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    run_cycle(harness.ctx, _now())  # within the watch: the cancelled job's run is stopped all the same
    (run,) = _runs(harness, job)
    assert run.note.startswith(STOPPING), run.note
    deadline = time.monotonic() + TIMEOUT_S
    while not _state(harness, run).is_final():
        assert time.monotonic() < deadline, "the cancelled job's run still runs"
        time.sleep(0.05)
    assert health.settling(harness.ctx, _now()) == {run.executor}  # all this within the watch


def test_a_requeued_jobs_run_is_only_watched_until_the_watch_ends(harness: Harness) -> None:
    job = harness.submit(command="sleep 60", gpu_models=["H100-SXM", "GB200"])["id"]
    cycle_until(harness, lambda: bool(_runs(harness, job)) and _runs(harness, job)[0].handle_key is not None)
    (old,) = _runs(harness, job)
    with harness.ctx.db.write() as s:
        down = Change(old.cluster, "local", "up", "down", "executor local unreachable: refused")
        health_repo.record(s, [down], _now())
    _decide_and_apply(harness.ctx, _now(), CycleReport(at=_now()))  # requeued and placed on the other cluster
    watch = frozenset({old.executor})
    reap_orphans(harness.ctx, _now(), Executed(), watch_only=watch)
    old = _runs(harness, job)[0]
    assert not old.note.startswith(STOPPING) and _state(harness, old) is RunState.RUNNING  # it might yet complete
    reap_orphans(harness.ctx, _now(), Executed())  # the watch is over
    assert _runs(harness, job)[0].note.startswith(STOPPING)
    harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    cycle_until(harness, lambda: all(r.ended for r in _runs(harness, job)))
