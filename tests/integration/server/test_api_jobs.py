"""Jobs over HTTP: submit, read, list with filters and keyset pagination, cancel, logs; located 4xx errors."""

import pytest

from integration.server.stargate_harness import Harness

JOBS = "/api/v1/jobs"


def test_submit_returns_the_job_with_every_contract_field(harness: Harness) -> None:
    job = harness.submit(name="train-1", gpus=4, gpu_models=["H100-SXM"], command="echo hi", kind="train")
    assert set(job) == {
        "id", "name", "queue", "team", "kind", "gpus", "gpu_models", "priority_class", "status", "reason",
        "detail", "attempt", "progress_s", "submitted_at", "started_at", "finished_at", "cluster", "gpu_ids",
        "exit_code", "spec", "waiting",
    }  # fmt: skip
    assert job["id"] == "j-000001" and job["status"] == "pending" and job["team"] == "alpha"
    assert job["waiting"] is None  # no cycle has judged it yet
    assert job["priority_class"] == "low"  # the lowest class of the fleet's defaults when the queue names none
    assert str(job["submitted_at"]).endswith("Z") and job["started_at"] is None
    assert isinstance(job["spec"], dict) and job["spec"]["command"] == "echo hi"
    again = harness.client.get(f"{JOBS}/{job['id']}", headers=harness.headers()).json()
    assert again == job


@pytest.mark.parametrize(
    ("body", "status", "located"),
    [
        ({"queue": "nope"}, 422, "body.queue: found 'nope', expected the id of a queue (alpha-q, beta-q)"),
        ({"gpu_models": ["Z9000"]}, 422, "body.gpu_models[0]: found 'Z9000'"),
        ({"priority_class": "vip"}, 422, "body.priority_class: found 'vip'"),
        ({"command": None}, 422, "found neither 'command' nor 'image'"),
        ({"command": None, "image": "ubuntu:22.04"}, 422, "body.command: found only an image"),
        ({"gpus": -1}, 422, "body.gpus: found -1, expected greater than or equal to 1"),
        ({"gpus": 0}, 422, "body.gpus: found 0, expected greater than or equal to 1"),
        ({"surprise": 1}, 422, "body.surprise: found unknown key 'surprise', expected only the documented keys"),
    ],
)
def test_bad_submissions_get_a_located_error(
    harness: Harness, body: dict[str, object], status: int, located: str
) -> None:
    full = {"name": "x", "queue": "alpha-q", "gpus": 1, "command": "true", **body}
    response = harness.client.post(JOBS, json=full, headers=harness.headers())
    assert response.status_code == status
    assert located in response.json()["detail"]


def test_list_is_newest_first_and_pages_without_gaps_or_repeats(harness: Harness) -> None:
    ids = [harness.submit(name=f"n{i}")["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = harness.client.get(JOBS, params=params, headers=harness.headers()).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_list_filters_by_status_queue_and_team(harness: Harness) -> None:
    a = harness.submit()
    b = harness.submit(queue="beta-q")
    harness.client.post(f"{JOBS}/{a['id']}/cancel", headers=harness.headers())

    def ids(**params: str) -> list[str]:
        return [j["id"] for j in harness.client.get(JOBS, params=params, headers=harness.headers()).json()["items"]]

    assert ids(status="cancelled") == [a["id"]]
    assert ids(status="pending") == [b["id"]]
    assert ids(queue="beta-q") == [b["id"]] == ids(team="beta")
    assert harness.client.get(JOBS, params={"status": "bogus"}, headers=harness.headers()).status_code == 422
    assert harness.client.get(JOBS, params={"cursor": "x1"}, headers=harness.headers()).status_code == 400


def test_cancel_moves_a_pending_job_to_cancelled_once(harness: Harness) -> None:
    job = harness.submit()
    first = harness.client.post(f"{JOBS}/{job['id']}/cancel", headers=harness.headers())
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    assert first.json()["finished_at"] is not None
    second = harness.client.post(f"{JOBS}/{job['id']}/cancel", headers=harness.headers())
    assert second.status_code == 409 and "already cancelled" in second.json()["detail"]


@pytest.mark.parametrize("job_id", ["j-999999", "nope", "j-", "j-12x"])
def test_unknown_jobs_are_404(harness: Harness, job_id: str) -> None:
    for method, path in (("GET", ""), ("POST", "/cancel"), ("GET", "/logs")):
        response = harness.client.request(method, f"{JOBS}/{job_id}{path}", headers=harness.headers())
        assert response.status_code == 404, (method, path)
        assert job_id in response.json()["detail"]


def test_logs_of_a_job_that_never_ran_are_empty_and_complete_once_final(harness: Harness) -> None:
    job = harness.submit()
    logs = harness.client.get(f"{JOBS}/{job['id']}/logs", headers=harness.headers()).json()
    assert logs == {"text": "", "next_offset": 0, "complete": False}
    harness.client.post(f"{JOBS}/{job['id']}/cancel", headers=harness.headers())
    logs = harness.client.get(f"{JOBS}/{job['id']}/logs?offset=0", headers=harness.headers()).json()
    assert logs["complete"] is True


def test_events_list_every_status_change_in_order(harness: Harness) -> None:
    job = harness.submit()
    harness.client.post(f"{JOBS}/{job['id']}/cancel", headers=harness.headers())
    page = harness.client.get("/api/v1/events", params={"job_id": job["id"]}, headers=harness.headers()).json()
    moves = [(e["from"], e["to"], e["actor"]) for e in page["items"]]
    assert moves == [(None, "pending", "token:admin"), ("pending", "cancelled", "token:admin")]
    after = harness.client.get("/api/v1/events", params={"after": page["items"][0]["id"]}, headers=harness.headers())
    assert [e["to"] for e in after.json()["items"]] == ["cancelled"]


def test_events_page_with_a_cursor(harness: Harness) -> None:
    for _ in range(5):
        harness.submit()
    first = harness.client.get("/api/v1/events", params={"limit": 2}, headers=harness.headers()).json()
    assert len(first["items"]) == 2 and first["next_cursor"] == str(first["items"][-1]["id"])
    rest = harness.client.get(
        "/api/v1/events", params={"after": first["next_cursor"], "limit": 10}, headers=harness.headers()
    ).json()
    assert len(rest["items"]) == 3 and rest["next_cursor"] is None


@pytest.mark.parametrize("field", ["estimated_duration_s", "checkpoint_interval_s"])
def test_a_number_too_large_for_a_float_is_422_not_stored_as_null(harness: Harness, field: str) -> None:
    body = f'{{"name": "x", "queue": "alpha-q", "gpus": 1, "command": "true", "{field}": 1e400}}'
    headers = {**harness.headers(), "Content-Type": "application/json"}
    response = harness.client.post(JOBS, content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert f"body.{field}" in response.json()["detail"]


def test_a_log_offset_beyond_any_file_is_422(harness: Harness) -> None:
    job = harness.submit()
    response = harness.client.get(f"{JOBS}/{job['id']}/logs?offset=99999999999999999999", headers=harness.headers())
    assert response.status_code == 422, response.text
    assert "offset" in response.json()["detail"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [("2030-01-01T12:00:00+02:00", "2030-01-01T10:00:00Z"), ("2030-01-01T12:00:00", "2030-01-01T12:00:00Z")],
)
def test_a_deadline_is_stored_in_utc(harness: Harness, given: str, stored: str) -> None:
    job = harness.submit(deadline=given)
    spec = job["spec"]
    assert isinstance(spec, dict) and spec["deadline"] == stored
