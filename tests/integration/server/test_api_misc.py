"""Health, metrics, OpenAPI, whoami, tokens, queues and teams."""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from integration.server.stargate_harness import Harness
from stargate.server.scheduling.loop import run_cycle
from stargate.store import JobRow, TokenRow


def test_healthz_and_openapi_need_no_token(harness: Harness) -> None:
    assert harness.client.get("/healthz").json() == {"status": "ok"}
    paths = harness.client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}/cancel", "/api/v1/fleet/plan", "/api/v1/tokens"} <= set(paths)


def test_metrics_are_prometheus_text_per_app(
    harness: Harness, make_harness: Callable[[str], Harness], tmp_path: Path
) -> None:
    harness.ctx.metrics.placements.inc(3)
    text = harness.client.get("/metrics").text
    assert "stargate_placements_total 3.0" in text
    assert "stargate_scheduler_cycle_seconds_bucket" in text and "stargate_executor_errors" in text
    other = make_harness(f"sqlite:///{tmp_path / 'other.db'}")
    assert "stargate_placements_total 0.0" in other.client.get("/metrics").text


def test_missing_or_bad_tokens_are_401(harness: Harness) -> None:
    for headers in ({}, {"Authorization": "Bearer nope-nope-nope-nope"}, {"Authorization": "Basic abc"}):
        response = harness.client.get("/api/v1/whoami", headers=headers)
        assert response.status_code == 401 and response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_whoami_describes_the_token(harness: Harness) -> None:
    me = harness.client.get("/api/v1/whoami", headers=harness.headers("member", "beta")).json()
    assert (me["name"], me["team"], me["role"]) == ("member-beta", "beta", "member")
    assert me["token_id"].startswith("t-")


def test_admin_creates_tokens_that_work_once_shown(harness: Harness) -> None:
    response = harness.client.post(
        "/api/v1/tokens", json={"name": "ci", "team": "alpha", "role": "viewer"}, headers=harness.headers()
    )
    assert response.status_code == 201
    created = response.json()
    me = harness.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {created['token']}"}).json()
    assert (me["token_id"], me["role"], me["team"]) == (created["id"], "viewer", "alpha")


def test_tokens_are_stored_hashed(harness: Harness) -> None:
    with harness.ctx.db.read() as session:
        rows = list(session.scalars(select(TokenRow)))
    secret = harness.admin_token.split("_", 2)[2]
    assert rows and all(secret not in (r.secret_hash, r.salt, r.id) for r in rows)
    assert all(len(r.secret_hash) == 64 and len(r.salt) == 32 for r in rows)
    assert len({r.salt for r in rows}) == len(rows)  # each token has its own salt


def test_token_for_an_unknown_team_or_without_team_is_422(harness: Harness) -> None:
    for body, where in (
        ({"name": "x", "team": "gamma", "role": "member"}, "team: found 'gamma'"),
        ({"name": "x", "role": "viewer"}, "team: found nothing"),
        ({"name": "x", "team": "alpha", "role": "root"}, "body.role"),
    ):
        response = harness.client.post("/api/v1/tokens", json=body, headers=harness.headers())
        assert response.status_code == 422 and where in response.json()["detail"]


def test_queues_show_counts_and_teams_list_queues(harness: Harness) -> None:
    harness.submit(gpus=2)
    harness.submit(gpus=3)
    queues = {q["id"]: q for q in harness.client.get("/api/v1/queues", headers=harness.headers()).json()}
    assert queues["alpha-q"]["pending_jobs"] == 2 and queues["alpha-q"]["running_gpus"] == 0
    assert queues["beta-q"]["pending_jobs"] == 0 and queues["beta-q"]["team"] == "beta"
    # No cycle has judged them: they count as 'submitted'; once judged, by their wait reason.
    assert (queues["alpha-q"]["pending_gpus"], queues["alpha-q"]["pending_reasons"]) == (5, {"submitted": 2})
    assert (queues["beta-q"]["pending_gpus"], queues["beta-q"]["pending_reasons"]) == (0, {})
    assert queues["alpha-q"]["held_by_model"] == {}
    with harness.ctx.db.write() as session:  # as the scheduler writes a judgement (test_wait_reasons.py runs it)
        first = session.scalars(select(JobRow).order_by(JobRow.id).limit(1)).one()
        first.wait_reason, first.wait_detail = "capacity", "largest free block on its 1 cluster: 0 GPUs (lab-h100)"
    queues = {q["id"]: q for q in harness.client.get("/api/v1/queues", headers=harness.headers()).json()}
    assert queues["alpha-q"]["pending_reasons"] == {"capacity": 1, "submitted": 1}


def test_queues_count_held_gpus_by_the_model_of_each_jobs_cluster_and_jobs_list_oldest_first(harness: Harness) -> None:
    first = harness.submit(gpus=2, gpu_models=["H100-SXM"])
    second = harness.submit(gpus=4, gpu_models=["GB200"])
    third = harness.submit(gpus=1, gpu_models=["H100-SXM"])
    assert run_cycle(harness.ctx, datetime.now(UTC)).placed == 3
    queues = {q["id"]: q for q in harness.client.get("/api/v1/queues", headers=harness.headers()).json()}
    assert queues["alpha-q"]["held_by_model"] == {"GB200": 4, "H100-SXM": 3}
    assert queues["alpha-q"]["running_gpus"] == 7
    page = harness.client.get("/api/v1/jobs?order=oldest&limit=2", headers=harness.headers()).json()
    assert [j["id"] for j in page["items"]] == [first["id"], second["id"]]
    rest = harness.client.get(
        f"/api/v1/jobs?order=oldest&limit=2&cursor={page['next_cursor']}", headers=harness.headers()
    )
    assert [j["id"] for j in rest.json()["items"]] == [third["id"]] and rest.json()["next_cursor"] is None
    newest = harness.client.get("/api/v1/jobs?limit=1", headers=harness.headers()).json()["items"]
    assert [j["id"] for j in newest] == [third["id"]]
    bad = harness.client.get("/api/v1/jobs?order=random", headers=harness.headers())
    assert bad.status_code == 422 and "order" in bad.json()["detail"]
    assert queues["alpha-q"]["quotas"] == [{"gpu_model": "*", "gpus": 8, "borrowing_limit_gpus": None}]
    teams = harness.client.get("/api/v1/teams", headers=harness.headers()).json()
    assert teams == [
        {"id": "alpha", "name": "Team Alpha", "queues": ["alpha-q"]},
        {"id": "beta", "name": "Team Beta", "queues": ["beta-q"]},
    ]
