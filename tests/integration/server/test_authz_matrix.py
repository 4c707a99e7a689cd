"""Role × endpoint authorisation matrix (table-driven): admin, a member of team alpha, a viewer of team alpha.

Each row is one request; ``{alpha}`` and ``{beta}`` are fresh jobs of teams alpha and beta made for that row.
Other teams' jobs answer 404 (their existence is not revealed); forbidden actions answer 403.
"""

from dataclasses import dataclass

import pytest

from integration.server.stargate_harness import Harness

ROLES = ("admin", "member", "viewer")
FLEET_DOC = {"name": "tiny"}


@dataclass(frozen=True)
class Row:
    """One request and the status each role gets."""

    method: str
    path: str
    admin: int
    member: int
    viewer: int
    body: dict[str, object] | None = None

    def expected(self, role: str) -> int:
        """The status ``role`` should get."""
        return int(getattr(self, role))


def _job(queue: str) -> dict[str, object]:
    return {"name": "m", "queue": queue, "gpus": 1, "command": "true"}


MATRIX = [
    Row("GET", "/api/v1/whoami", 200, 200, 200),
    Row("GET", "/api/v1/jobs", 200, 200, 200),
    Row("GET", "/api/v1/jobs?team=alpha", 200, 200, 200),
    Row("GET", "/api/v1/jobs?team=beta", 200, 403, 403),
    Row("POST", "/api/v1/jobs", 201, 201, 403, _job("alpha-q")),
    Row("POST", "/api/v1/jobs", 201, 403, 403, _job("beta-q")),
    Row("GET", "/api/v1/jobs/{alpha}", 200, 200, 200),
    Row("GET", "/api/v1/jobs/{beta}", 200, 404, 404),
    Row("POST", "/api/v1/jobs/{alpha}/cancel", 200, 200, 403),
    Row("POST", "/api/v1/jobs/{beta}/cancel", 200, 404, 404),
    Row("GET", "/api/v1/jobs/{alpha}/logs", 200, 200, 200),
    Row("GET", "/api/v1/jobs/{beta}/logs", 200, 404, 404),
    Row("GET", "/api/v1/events", 200, 200, 200),
    Row("GET", "/api/v1/events?job_id={alpha}", 200, 200, 200),
    Row("GET", "/api/v1/events?job_id={beta}", 200, 404, 404),
    Row("GET", "/api/v1/queues", 200, 200, 200),
    Row("GET", "/api/v1/teams", 200, 200, 200),
    Row("GET", "/api/v1/fleet", 200, 200, 200),
    Row("POST", "/api/v1/fleet/plan", 422, 403, 403, {"fleet": {"name": ""}}),
    Row("POST", "/api/v1/fleet/apply", 404, 403, 403, {"plan_id": "p-missing"}),
    Row("POST", "/api/v1/tokens", 201, 403, 403, {"name": "t", "team": "alpha", "role": "viewer"}),
    Row("GET", "/api/v1/tokens", 200, 403, 403),
    Row("POST", "/api/v1/tokens/t-0000000000000000/revoke", 404, 403, 403),
]


def _headers(harness: Harness, role: str) -> dict[str, str]:
    return harness.headers("admin") if role == "admin" else harness.headers(role, "alpha")


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_answers_each_role_as_the_matrix_says(harness: Harness, role: str) -> None:
    wrong = []
    for row in MATRIX:
        alpha, beta = harness.submit()["id"], harness.submit(queue="beta-q")["id"]
        path = row.path.format(alpha=alpha, beta=beta)
        response = harness.client.request(row.method, path, json=row.body, headers=_headers(harness, role))
        if response.status_code != row.expected(role):
            wrong.append(f"{row.method} {row.path}: {response.status_code} {response.text[:120]}")
    assert wrong == []


def test_every_api_endpoint_needs_a_token(harness: Harness) -> None:
    harness.submit()
    harness.submit(queue="beta-q")
    statuses = {
        f"{row.method} {row.path}": harness.client.request(
            row.method, row.path.format(alpha="j-000001", beta="j-000002"), json=row.body
        ).status_code
        for row in MATRIX
    }
    assert set(statuses.values()) == {401}, statuses


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_non_admins_list_only_their_own_teams_jobs_and_events(harness: Harness, role: str) -> None:
    harness.submit()
    harness.submit(queue="beta-q")
    headers = _headers(harness, role)
    jobs = harness.client.get("/api/v1/jobs", headers=headers).json()["items"]
    events = harness.client.get("/api/v1/events", headers=headers).json()["items"]
    assert [j["team"] for j in jobs] == ["alpha"]
    assert {e["job_id"] for e in events} == {jobs[0]["id"]}
    everything = harness.client.get("/api/v1/jobs", headers=harness.headers()).json()["items"]
    assert len(everything) == 2
