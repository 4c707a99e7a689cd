"""The outage bound in the server, with the real local executor: a job whose runs keep being stopped by outages of
its cluster without getting it past its last checkpoint fails as ``outage_limit`` once past the policy's
``max_outage_stops`` (its count kept on the job row, so a restarted server counts on); a job that saves a checkpoint
between outages is never failed for them. Outages are the health step's records, as an executor's failed checks
write them."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from integration.server.outage_support import job as job_json
from integration.server.outage_support import mark, outage_harness, stopped_by_outage
from integration.server.stargate_harness import Harness
from stargate.store import JobEventRow, JobRow, parse_job_id


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = outage_harness(db_url, tmp_path, 1)
    yield h
    h.client.close()
    h.ctx.db.close()


def _row(h: Harness, job_id: object) -> tuple[int, float]:
    with h.ctx.db.read() as s:
        row = s.scalars(select(JobRow).where(JobRow.id == parse_job_id(str(job_id)))).one()
        return row.outage_stops, row.progress_s


def _outage(h: Harness, job: object, ran_s: float) -> None:
    """Let the job run ``ran_s`` on lab-h100, take the cluster down until the job has left it, and up again."""
    stopped_by_outage(h, job, ran_s)
    mark(h, "up", "down")


def test_a_job_stopped_by_outages_before_any_checkpoint_fails_past_the_limit(harness: Harness) -> None:
    job = harness.submit(command="sleep 60", gpu_models=["H100-SXM"], checkpoint_interval_s=3600)["id"]
    _outage(harness, job, 0.0)
    assert job_json(harness, job)["status"] == "pending" and _row(harness, job)[0] == 1
    _outage(harness, job, 0.0)
    found = job_json(harness, job)
    assert (found["status"], found["reason"]) == ("failed", "outage_limit"), found
    assert str(found["detail"]).startswith("outages stopped its last 2 runs in a row (the last on lab-h100)")
    assert "the policy allows 1 (max_outage_stops)" in str(found["detail"])
    with harness.ctx.db.read() as s:
        rows = s.scalars(select(JobEventRow).where(JobEventRow.job_id == parse_job_id(str(job))))
        moves = [(e.from_status, e.to_status, e.reason) for e in rows]
    assert moves[-2:] == [("running", "pending", "cluster_down"), ("pending", "failed", "outage_limit")], moves
    assert moves.count(("running", "pending", "cluster_down")) == 2


def test_a_job_that_saves_a_checkpoint_between_outages_keeps_waiting(harness: Harness) -> None:
    job = harness.submit(command="sleep 60", gpu_models=["H100-SXM"], checkpoint_interval_s=1)["id"]
    for _ in range(3):
        _outage(harness, job, 1.3)  # each run saves a checkpoint (every 1 s) before its cluster goes down
        assert job_json(harness, job)["status"] == "pending"
        stops, progress = _row(harness, job)
        assert stops == 0 and progress > 0.0
    harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
