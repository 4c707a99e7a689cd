"""The outage bound in the server, with the real local executor: a job whose runs keep being stopped by outages of
its cluster before they save a checkpoint fails as ``outage_limit`` once past the policy's ``max_outage_stops`` (its
count kept on the job row, so a restarted server counts on); a job that saves a checkpoint between outages is never
failed for them. Outages are the health step's records, as an executor's failed checks write them."""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from integration.server.stargate_harness import TINY_FLEET, Harness, build_harness
from stargate.server.scheduling.loop import run_cycle
from stargate.store import JobEventRow, JobRow, parse_job_id
from stargate.store.repositories import health as health_repo
from stargate.store.repositories.health import Change

TIMEOUT_S = 15.0
SCHEDULING = "\nscheduling:\n  policy: fifo\n  settings:\n    max_outage_stops: 1\n"


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    fleet = tmp_path / "tiny-outages.yaml"
    fleet.write_text(TINY_FLEET.read_text(encoding="utf-8") + SCHEDULING, encoding="utf-8")
    h = build_harness(db_url, tmp_path / "home", fleet)
    yield h
    h.client.close()
    h.ctx.db.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _mark(h: Harness, status: str, before: str) -> None:
    with h.ctx.db.write() as s:
        health_repo.record(s, [Change("lab-h100", "local", before, status, "executor local unreachable: test")], _now())


def _job(h: Harness, job_id: object) -> dict[str, object]:
    data: dict[str, object] = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers()).json()
    return data


def _until(h: Harness, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        assert time.monotonic() < deadline, "timed out"
        run_cycle(h.ctx, _now())
        time.sleep(0.05)


def _row(h: Harness, job_id: object) -> tuple[int, float]:
    with h.ctx.db.read() as s:
        row = s.scalars(select(JobRow).where(JobRow.id == parse_job_id(str(job_id)))).one()
        return row.outage_stops, row.progress_s


def _outage(h: Harness, job: object, ran_s: float) -> None:
    """Let the job run ``ran_s`` on lab-h100, then take the cluster down until the job has left it, and up again."""
    _until(h, lambda: _job(h, job)["status"] == "running")
    time.sleep(ran_s)
    _mark(h, "down", "up")
    _until(h, lambda: _job(h, job)["status"] in ("pending", "failed"))
    _mark(h, "up", "down")


def test_a_job_stopped_by_outages_before_any_checkpoint_fails_past_the_limit(harness: Harness) -> None:
    job = harness.submit(command="sleep 60", gpu_models=["H100-SXM"], checkpoint_interval_s=3600)["id"]
    _outage(harness, job, 0.0)
    assert _job(harness, job)["status"] == "pending" and _row(harness, job)[0] == 1
    _outage(harness, job, 0.0)
    found = _job(harness, job)
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
        assert _job(harness, job)["status"] == "pending"
        stops, progress = _row(harness, job)
        assert stops == 0 and progress > 0.0
    harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
