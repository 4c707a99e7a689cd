"""A run the infrastructure ended (an executor reports it interrupted: a Slurm node failure, say) requeues its job
from its last checkpoint, up to the policy's ``max_interruptions``; after that the job fails as lost. The runs here
are real local runs; the interruption is the status an executor reports (a real Slurm NODE_FAIL is in
tests/e2e/test_review_health_cli.py)."""

import time
from datetime import UTC, datetime, timedelta

from integration.server.stargate_harness import Harness
from stargate.executors import RunState, RunStatus
from stargate.server.scheduling.execute import Executed, _record_ended
from stargate.server.scheduling.loop import run_cycle
from stargate.store import JobStatus
from stargate.store.repositories import runs as run_repo

TIMEOUT_S = 15.0


def _job(h: Harness, job_id: object) -> dict[str, object]:
    data: dict[str, object] = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers()).json()
    return data


def _running(h: Harness, job_id: object) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while _job(h, job_id)["status"] != "running":
        assert time.monotonic() < deadline, _job(h, job_id)
        run_cycle(h.ctx, datetime.now(UTC))
        time.sleep(0.05)


def _interrupt(h: Harness, at: datetime) -> None:
    with h.ctx.db.read() as session:
        (run,) = run_repo.live(session, JobStatus.RUNNING)
    status = RunStatus(RunState.INTERRUPTED, reason="Slurm job 7: node_fail (NodeDown)")
    _record_ended(h.ctx, [(run, status)], at, Executed())


def test_an_interrupted_job_waits_again_from_its_checkpoint_then_fails_as_lost_past_the_limit(harness: Harness) -> None:
    job = harness.submit(command="sleep 60", checkpoint_interval_s=100)["id"]
    kept = []
    for attempt in range(3):  # the policy's default max_interruptions
        _running(harness, job)
        assert _job(harness, job)["attempt"] == attempt
        _interrupt(harness, datetime.now(UTC) + timedelta(seconds=250))  # ran 250 s: its checkpoint at 200 s
        found = _job(harness, job)
        assert (found["status"], found["reason"], found["attempt"]) == ("pending", "interrupted", attempt + 1), found
        assert "node_fail" in str(found["detail"]) and "resumes from its last checkpoint" in str(found["detail"])
        kept.append(found["progress_s"])
    assert kept[0] == 200 - 60  # the last checkpoint less the policy's restart cost (60 s), s
    assert kept[0] < kept[1] < kept[2]  # each run adds its checkpointed work
    _running(harness, job)
    _interrupt(harness, datetime.now(UTC))
    found = _job(harness, job)
    assert (found["status"], found["reason"]) == ("failed", "lost"), found
    assert str(found["detail"]).startswith("interrupted 4 times (the policy allows 3)"), found


def test_an_interruption_of_a_job_that_already_moved_on_changes_nothing(harness: Harness) -> None:
    job = harness.submit(command="sleep 60")["id"]
    _running(harness, job)
    with harness.ctx.db.read() as session:
        (run,) = run_repo.live(session, JobStatus.RUNNING)
    harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    status = RunStatus(RunState.INTERRUPTED, reason="Slurm job 7: node_fail")
    _record_ended(harness.ctx, [(run, status)], datetime.now(UTC), Executed())
    assert _job(harness, job)["status"] == "cancelled"
