"""Review of health and failover through the API (in-process app, real local executor): defects pinned as strict
xfails. A passing test here means the defect was fixed: remove its xfail mark."""

import re
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from integration.server.stargate_harness import Harness
from stargate.server.scheduling.loop import run_cycle
from stargate.store.repositories import health as health_repo
from stargate.store.repositories.health import Change

TIMEOUT_S = 15.0


def _now() -> datetime:
    return datetime.now(UTC)


def _mark_down(h: Harness, cluster: str, reason: str) -> None:
    with h.ctx.db.write() as s:
        health_repo.record(s, [Change(cluster, "local", "up", "down", reason)], _now())


def _job(h: Harness, job_id: object) -> dict[str, object]:
    data: dict[str, object] = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers()).json()
    return data


def _until(h: Harness, done: object) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        run_cycle(h.ctx, _now())
        time.sleep(0.05)


def test_fleet_events_query_parameters_are_refused_with_located_422s(harness: Harness) -> None:
    """What works: every bad limit/before so far is a located 422 (control for the 64-bit case below)."""
    client = TestClient(harness.app, raise_server_exceptions=False)
    for query, where in [
        ("limit=0", "query.limit"),
        ("limit=1001", "query.limit"),
        ("limit=x", "query.limit"),
        ("before=0", "query.before"),
        ("before=2026-01-01", "query.before"),
    ]:
        answer = client.get(f"/api/v1/fleet/events?{query}", headers=harness.headers("viewer", "alpha"))
        assert answer.status_code == 422 and where in answer.json()["detail"], (query, answer.text)


@pytest.mark.parametrize("before", ["9223372036854775808", "99999999999999999999"])
def test_fleet_events_before_past_64_bits_is_a_located_422_not_a_500(harness: Harness, before: str) -> None:
    client = TestClient(harness.app, raise_server_exceptions=False)
    answer = client.get(f"/api/v1/fleet/events?before={before}", headers=harness.headers("viewer", "alpha"))
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert "query.before" in answer.json()["detail"]


def test_the_cluster_down_detail_never_says_a_negative_number_of_seconds_kept(harness: Harness) -> None:
    job = harness.submit(command="sleep 30", gpu_models=["H100-SXM", "GB200"])["id"]
    _until(harness, lambda: _job(harness, job)["status"] == "running")
    first = str(_job(harness, job)["cluster"])
    _mark_down(harness, first, "executor local unreachable for 60 s: connection refused")
    _until(harness, lambda: _job(harness, job)["attempt"] == 1)
    events = harness.client.get("/api/v1/events", params={"job_id": job}, headers=harness.headers()).json()["items"]
    details = [e["detail"] for e in events if e["reason"] == "cluster_down"]
    harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    assert len(details) == 1 and f"cluster {first} down" in details[0]
    assert not re.search(r"\(-\d", details[0]), details[0]


def test_a_job_waiting_only_for_a_cluster_observed_down_says_why(harness: Harness) -> None:
    _mark_down(harness, "lab-h100", "executor local unreachable for 60 s: connection refused")
    job = harness.submit(command="true", gpu_models=["H100-SXM"])["id"]
    for _ in range(5):
        run_cycle(harness.ctx, _now())
    found = _job(harness, job)
    assert found["status"] == "pending" and found["waiting"]["reason"] == "clusters_down"
    assert "lab-h100" in found["waiting"]["detail"] and "down" in found["waiting"]["detail"], found
