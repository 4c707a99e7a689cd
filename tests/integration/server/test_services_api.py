"""``/api/v1/services``: create (idempotent for the same spec, 409 for another), list and show with team isolation,
roles as for jobs, delete; every bad input is a located 422 (or 403/409) that stores nothing. No scheduler runs
here: the services step has tests of its own (test_services_control.py). On SQLite and PostgreSQL."""

from typing import Any

import pytest

from integration.server.services_support import local_spec
from integration.server.stargate_harness import Harness

URL = "/api/v1/services"


def _post(harness: Harness, body: Any, role: str = "admin", team: str | None = None) -> Any:
    return harness.client.post(URL, json=body, headers=harness.headers(role, team))


def _nothing_stored(harness: Harness) -> None:
    assert harness.client.get(URL, headers=harness.headers()).json() == []
    assert harness.client.get("/api/v1/jobs", headers=harness.headers()).json()["items"] == []


def test_a_member_creates_a_service_and_the_same_spec_again_gives_it_back(harness: Harness) -> None:
    created = _post(harness, local_spec(), "member", "alpha")
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["team"], body["queue"], body["state"], body["url"]) == (
        "chat",
        "alpha",
        "alpha-q",
        "active",
        "/services/chat/",
    )
    assert (body["desired_replicas"], body["ready_replicas"], body["replicas"], body["traffic"]) == (1, 0, [], None)
    assert [(d["from"], d["to"], d["reason"]) for d in body["decisions"]] == [(0, 1, "created: min_replicas 1")]
    assert body["created_by"] == "token:member-alpha" and body["spec"]["profiles"][0]["gpu_model"] == "H100-SXM"
    again = _post(harness, local_spec(), "member", "alpha")
    assert again.status_code == 200 and again.json()["created_at"] == body["created_at"]
    other = _post(harness, local_spec(max_replicas=5), "member", "alpha")
    assert other.status_code == 409
    assert other.json()["detail"] == (
        "service 'chat' exists with another spec; delete it first (stargate service chat --delete) or choose another "
        "name"
    )
    taken = _post(harness, local_spec(queue="beta-q"), "member", "beta")
    assert (taken.status_code, taken.json()["detail"]) == (
        409,
        "body.name: found 'chat', which another team's service has",
    )


def test_teams_see_only_their_own_services_and_roles_apply(harness: Harness) -> None:
    assert _post(harness, local_spec(), "member", "alpha").status_code == 201
    assert _post(harness, local_spec(name="other", queue="beta-q"), "member", "beta").status_code == 201
    names = {role: [s["name"] for s in harness.client.get(URL, headers=harness.headers(*role)).json()] for role in (
        ("admin", None), ("member", "alpha"), ("viewer", "beta"))}  # fmt: skip
    assert names == {("admin", None): ["chat", "other"], ("member", "alpha"): ["chat"], ("viewer", "beta"): ["other"]}
    hidden = harness.client.get(f"{URL}/other", headers=harness.headers("member", "alpha"))
    assert (hidden.status_code, hidden.json()) == (404, {"detail": "no service 'other'"})
    assert harness.client.get(f"{URL}/chat", headers=harness.headers("viewer", "alpha")).status_code == 200
    refused = _post(harness, local_spec(name="third"), "viewer", "alpha")
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        "token 'viewer-alpha' has role 'viewer', which is read-only",
    )
    wrong = _post(harness, local_spec(name="third"), "member", "beta")
    assert (wrong.status_code, wrong.json()["detail"]) == (
        403,
        "token 'member-beta' belongs to team 'beta', not to team 'alpha'",
    )
    assert harness.client.delete(f"{URL}/chat", headers=harness.headers("member", "beta")).status_code == 404
    assert harness.client.delete(f"{URL}/chat", headers=harness.headers("viewer", "alpha")).status_code == 403
    assert harness.client.get(URL).status_code == 401


def test_delete_marks_the_service_deleting_and_is_idempotent(harness: Harness) -> None:
    assert _post(harness, local_spec(), "member", "alpha").status_code == 201
    first = harness.client.delete(f"{URL}/chat", headers=harness.headers("member", "alpha"))
    second = harness.client.delete(f"{URL}/chat", headers=harness.headers("member", "alpha"))
    assert (first.status_code, first.json()["state"]) == (200, "deleting")
    assert second.json()["updated_at"] == first.json()["updated_at"]
    again = _post(harness, local_spec(), "member", "alpha")
    assert again.status_code == 409 and "is being deleted" in again.json()["detail"]
    assert harness.client.delete(f"{URL}/nope", headers=harness.headers()).status_code == 404


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"queue": "nope"}, "body.queue: found 'nope', expected the id of a queue (alpha-q, beta-q)"),
        (
            {"priority_class": "gold"},
            "body.priority_class: found 'gold', expected a priority class the queue allows (low, normal, high)",
        ),
        (
            {"environment": {"PORT": "80"}},
            "body.environment.PORT: found a value, expected none: the control plane sets PORT for each replica "
            "(PORT: the loopback port it must listen on)",
        ),
        ({"command": None}, "body.command: found nothing, expected a shell command (or body.image for containers)"),
        (
            {"gpu_models": [], "profiles": [{**local_spec()["profiles"][0], "gpu_model": "TPU-v9"}]},
            "body.profiles[0].gpu_model: found 'TPU-v9', expected a GPU model of the fleet's catalogue",
        ),
        ({"min_replicas": 4, "max_replicas": 2}, "body: found min_replicas 4 above max_replicas 2"),
        ({"gpus_per_replica": 0}, "body.gpus_per_replica: found 0, expected greater than or equal to 1"),
        ({"autoscaling": {"policy": "in-flight"}}, "found policy 'in-flight' without target_in_flight"),
        ({"name": "Chat!"}, "body.name: found 'Chat!'"),
    ],
)
def test_bad_input_is_a_located_422_and_stores_nothing(harness: Harness, change: dict[str, Any], detail: str) -> None:
    change = dict(change)  # the parameters are shared by both databases' runs
    scaling = change.pop("autoscaling", None)
    body = local_spec(**change)
    if scaling is not None:
        body["autoscaling"] = scaling
    if change.get("command", "") is None:
        body.pop("command")
    answer = _post(harness, body, "member", "alpha")
    assert answer.status_code == 422, answer.text
    assert detail in answer.json()["detail"]
    _nothing_stored(harness)


def test_a_key_twice_and_an_unknown_field_are_refused(harness: Harness) -> None:
    text = '{"name": "chat", "name": "chat2"}'
    twice = harness.client.post(URL, content=text, headers={**harness.headers(), "Content-Type": "application/json"})
    assert (twice.status_code, twice.json()["detail"]) == (
        422,
        "body: found the key 'name' twice, expected each key once",
    )
    unknown = _post(harness, {**local_spec(), "replicas": 3})
    assert unknown.status_code == 422 and "body.replicas" in unknown.json()["detail"]
    _nothing_stored(harness)
