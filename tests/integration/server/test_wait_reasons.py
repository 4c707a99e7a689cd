"""Why a pending job waits, through the server (SQLite and PostgreSQL, the real local executor): the engine's judgement
is written to the job's wait_reason and wait_detail, shown as ``waiting`` by GET /api/v1/jobs/{id} and counted by
GET /api/v1/queues; a cycle that changes nothing writes no job row; a job leaving pending has both cleared."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select

from integration.server.stargate_harness import Harness
from stargate.server.scheduling.loop import run_cycle
from stargate.store import JobRow, parse_job_id

TIMEOUT_S = 15.0


def _job(h: Harness, job_id: object) -> dict[str, Any]:
    data: dict[str, Any] = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers()).json()
    return data


def _until(h: Harness, done: Any) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        assert time.monotonic() < deadline, "timed out"
        run_cycle(h.ctx, datetime.now(UTC))
        time.sleep(0.05)


def _stored(h: Harness, job_id: object) -> tuple[str | None, str | None]:
    with h.ctx.db.read() as s:
        row = s.execute(
            select(JobRow.wait_reason, JobRow.wait_detail).where(JobRow.id == parse_job_id(str(job_id)))
        ).one()
        return row[0], row[1]


@contextmanager
def _job_updates(h: Harness) -> Iterator[list[str]]:
    """The UPDATE statements on the jobs table run inside the block."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE JOBS"):
            seen.append(statement)

    event.listen(h.ctx.db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(h.ctx.db.engine, "before_cursor_execute", note)


def test_a_pending_job_says_why_it_waits_and_an_unchanged_cycle_writes_no_row(harness: Harness) -> None:
    big = harness.submit(command="sleep 60", gpus=8, gpu_models=["H100-SXM"])["id"]
    _until(harness, lambda: _job(harness, big)["status"] == "running")
    assert _job(harness, big)["waiting"] is None
    waits = harness.submit(command="true", gpus=4, gpu_models=["H100-SXM"])["id"]
    assert _job(harness, waits)["waiting"] is None, "no cycle has judged it yet"
    try:
        _until(harness, lambda: _job(harness, waits)["waiting"] is not None)
        found = _job(harness, waits)
        assert (found["status"], found["reason"], found["detail"]) == ("pending", "submitted", "")
        assert found["waiting"] == {
            "reason": "capacity",
            "detail": "largest free block on its 1 cluster: 0 GPUs (lab-h100); asks 4 GPUs",
        }
        queues = {q["id"]: q for q in harness.client.get("/api/v1/queues", headers=harness.headers()).json()}
        assert queues["alpha-q"]["pending_reasons"] == {"capacity": 1}
        listed = harness.client.get("/api/v1/jobs", params={"status": "pending"}, headers=harness.headers()).json()
        assert [j["waiting"] for j in listed["items"] if j["id"] == waits] == [found["waiting"]]

        harness.ctx.loop.fingerprint = None  # force a decision although nothing changed
        with _job_updates(harness) as updates:
            report = run_cycle(harness.ctx, datetime.now(UTC))
        assert report.decided and report.placed == 0
        assert updates == [], "an unchanged judgement is not written again"
        assert _stored(harness, waits)[0] == "capacity"
    finally:
        harness.client.post(f"/api/v1/jobs/{big}/cancel", headers=harness.headers())
    _until(harness, lambda: _job(harness, waits)["status"] in ("placed", "running", "succeeded"))
    assert _job(harness, waits)["waiting"] is None
    assert _stored(harness, waits) == (None, None), "placed: its wait reason is cleared by its move"


def test_a_cancelled_pending_job_has_its_wait_reason_cleared(harness: Harness) -> None:
    big = harness.submit(command="sleep 60", gpus=4, gpu_models=["GB200"])["id"]
    _until(harness, lambda: _job(harness, big)["status"] == "running")
    waits = harness.submit(command="true", gpus=4, gpu_models=["GB200"])["id"]
    try:
        _until(harness, lambda: _stored(harness, waits)[0] == "capacity")
        harness.client.post(f"/api/v1/jobs/{waits}/cancel", headers=harness.headers())
        _until(harness, lambda: _stored(harness, waits) == (None, None))
        assert _job(harness, waits)["status"] == "cancelled"
    finally:
        harness.client.post(f"/api/v1/jobs/{big}/cancel", headers=harness.headers())
