"""A pending job whose every cluster it could run on is down says so in its wait reason (``clusters_down``) and detail
(which clusters, since when, why), through the API, with the real local executor; its own detail stays its last status
change's; once a cluster it could use is up again it waits for something else, and no event is written for it."""

import time
from datetime import UTC, datetime

from sqlalchemy import func, select

from integration.server.stargate_harness import Harness
from stargate.server.scheduling.loop import run_cycle
from stargate.store import JobEventRow, parse_job_id
from stargate.store.repositories import health as health_repo
from stargate.store.repositories.health import Change

TIMEOUT_S = 15.0
SINCE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
WHY = "executor local unreachable for 60 s: connection refused"


def _now() -> datetime:
    return datetime.now(UTC)


def _mark(h: Harness, cluster: str, before: str, after: str, at: datetime = SINCE) -> None:
    with h.ctx.db.write() as s:
        health_repo.record(s, [Change(cluster, "local", before, after, WHY if after == "down" else "")], at)


def _job(h: Harness, job_id: object) -> dict[str, object]:
    data: dict[str, object] = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers()).json()
    return data


def _events(h: Harness, job_id: object) -> int:
    with h.ctx.db.read() as s:
        query = select(func.count()).where(JobEventRow.job_id == parse_job_id(str(job_id)))
        return int(s.scalar(query) or 0)


def _cycles(h: Harness, n: int = 3) -> None:
    for _ in range(n):
        run_cycle(h.ctx, _now())


def _until(h: Harness, done: object) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        run_cycle(h.ctx, _now())
        time.sleep(0.05)


def test_the_detail_names_the_down_cluster_since_when_and_why_without_an_event(harness: Harness) -> None:
    _mark(harness, "lab-h100", "up", "down")
    job = harness.submit(command="true", gpu_models=["H100-SXM"])["id"]
    _cycles(harness)
    found = _job(harness, job)
    assert (found["status"], found["reason"], found["detail"]) == ("pending", "submitted", "")
    assert found["waiting"] == {
        "reason": "clusters_down",
        "detail": f"waits for lab-h100 (down since 2026-12-01T10:00:00Z: {WHY})",
    }
    assert _events(harness, job) == 1  # the submission only: waiting is not a status change
    listed = harness.client.get("/api/v1/jobs", params={"status": "pending"}, headers=harness.headers()).json()
    assert [j["waiting"] for j in listed["items"] if j["id"] == job] == [found["waiting"]]
    _mark(harness, "lab-h100", "down", "up", _now())
    _until(harness, lambda: _job(harness, job)["status"] == "succeeded")


def test_a_job_with_a_cluster_up_but_full_does_not_say_it_waits_for_a_down_one(harness: Harness) -> None:
    """Both clusters down: each pending job names the ones it could use; one back up and taken by one of them: the
    other waits for free GPUs now (capacity), not for a repair; the jobs' own details stay their last status
    change's throughout."""
    busy = harness.submit(command="sleep 30", gpus=4, gpu_models=["GB200"])["id"]
    _until(harness, lambda: _job(harness, busy)["status"] == "running")
    _mark(harness, "lab-h100", "up", "down")
    both = harness.submit(command="sleep 30", gpus=4, gpu_models=["H100-SXM", "GB200"])["id"]
    try:
        _cycles(harness)
        assert (_job(harness, both)["status"], _job(harness, both)["waiting"]["reason"]) == ("pending", "capacity")
        _mark(harness, "lab-gb200", "up", "down")
        _until(harness, lambda: _job(harness, busy)["status"] == "pending")
        _cycles(harness)
        down = f"(down since 2026-12-01T10:00:00Z: {WHY})"
        assert _waiting(harness, both) == ("clusters_down", f"waits for lab-h100 {down}; lab-gb200 {down}")
        assert _waiting(harness, busy) == ("clusters_down", f"waits for lab-gb200 {down}")
        assert _last_event(harness, busy)[0] == "cluster_down"  # the event keeps why it stopped
        assert _job(harness, busy)["detail"] == _last_event(harness, busy)[1]
        _mark(harness, "lab-gb200", "down", "up", _now())
        _until(harness, lambda: {_job(harness, j)["status"] for j in (busy, both)} & {"placed", "running"})
        _cycles(harness)
        waiting = [j for j in (busy, both) if _job(harness, j)["status"] == "pending"]
        assert len(waiting) == 1, [_job(harness, j) for j in (busy, both)]
        assert _job(harness, waiting[0])["detail"] == _last_event(harness, waiting[0])[1]
        assert _waiting(harness, waiting[0])[0] == "capacity"
    finally:
        for job in (busy, both):
            harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())


def _waiting(h: Harness, job_id: object) -> tuple[str, str]:
    found = _job(h, job_id)["waiting"]
    assert found is not None
    return found["reason"], found["detail"]


def _last_event(h: Harness, job_id: object) -> tuple[str, str]:
    events = h.client.get("/api/v1/events", params={"job_id": job_id}, headers=h.headers()).json()["items"]
    return events[-1]["reason"], events[-1]["detail"]
