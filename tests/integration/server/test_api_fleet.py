"""Fleet over HTTP: read with its version, plan a change (entity-level diff), apply it, refuse stale plans."""

import copy
import threading
from typing import Any

from integration.server.stargate_harness import Harness
from stargate.store.repositories import fleet_versions

FLEET = "/api/v1/fleet"


def _current(harness: Harness) -> dict[str, Any]:
    data: dict[str, Any] = harness.client.get(FLEET, headers=harness.headers()).json()
    return data


def _plan(harness: Harness, fleet: dict[str, Any]) -> dict[str, Any]:
    response = harness.client.post(f"{FLEET}/plan", json={"fleet": fleet}, headers=harness.headers())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_the_fleet_in_force_has_a_content_version(harness: Harness) -> None:
    current = _current(harness)
    assert len(current["version"]) == 64 and current["fleet"]["name"] == "tiny"
    assert [c["id"] for c in current["fleet"]["clusters"]] == ["lab-h100", "lab-gb200"]
    assert current["applied_by"] == "stargate up"


def test_plan_lists_added_removed_and_changed_entities(harness: Harness) -> None:
    current = _current(harness)
    proposed = copy.deepcopy(current["fleet"])
    proposed["clusters"][0]["nodes"] = 3
    proposed["clusters"].pop(1)
    proposed["teams"].append({"id": "gamma", "name": "Team Gamma"})
    proposed["description"] = "changed"
    plan = _plan(harness, proposed)
    assert plan["base_version"] == current["version"] and plan["new_version"] != current["version"]
    changes = {(c["kind"], c["entity"], c["id"]): c["fields"] for c in plan["changes"]}
    assert changes == {
        ("change", "fleet", "fleet"): ["description"],
        ("change", "clusters", "lab-h100"): ["nodes"],
        ("remove", "clusters", "lab-gb200"): [],
        ("add", "teams", "gamma"): [],
    }


def test_apply_makes_the_plan_the_fleet_and_syncs_teams(harness: Harness) -> None:
    proposed = copy.deepcopy(_current(harness)["fleet"])
    proposed["teams"].append({"id": "gamma", "name": "Team Gamma"})
    proposed["queues"].append({"id": "gamma-q", "team": "gamma"})
    plan = _plan(harness, proposed)
    applied = harness.client.post(f"{FLEET}/apply", json={"plan_id": plan["plan_id"]}, headers=harness.headers())
    assert applied.status_code == 200 and applied.json()["version"] == plan["new_version"]
    assert _current(harness)["version"] == plan["new_version"]
    teams = [t["id"] for t in harness.client.get("/api/v1/teams", headers=harness.headers()).json()]
    assert teams == ["alpha", "beta", "gamma"]
    assert harness.submit(queue="gamma-q")["team"] == "gamma"


def test_a_stale_plan_is_refused_with_409(harness: Harness) -> None:
    base = _current(harness)["fleet"]
    first = copy.deepcopy(base)
    first["description"] = "first"
    second = copy.deepcopy(base)
    second["description"] = "second"
    plan_a, plan_b = _plan(harness, first), _plan(harness, second)
    ok = harness.client.post(f"{FLEET}/apply", json={"plan_id": plan_a["plan_id"]}, headers=harness.headers())
    assert ok.status_code == 200
    stale = harness.client.post(f"{FLEET}/apply", json={"plan_id": plan_b["plan_id"]}, headers=harness.headers())
    assert stale.status_code == 409 and "stale" in stale.json()["detail"]
    again = harness.client.post(f"{FLEET}/apply", json={"plan_id": plan_a["plan_id"]}, headers=harness.headers())
    assert again.status_code == 409 and "already applied" in again.json()["detail"]
    assert again.json()["detail"].endswith("Z") and "+00:00" not in again.json()["detail"]  # as every API time
    assert _current(harness)["fleet"]["description"] == "first"


def test_an_invalid_fleet_gets_located_problems(harness: Harness) -> None:
    proposed = copy.deepcopy(_current(harness)["fleet"])
    proposed["clusters"][0]["site"] = "atlantis"
    proposed["clusters"][1]["nodes"] = -1
    response = harness.client.post(f"{FLEET}/plan", json={"fleet": proposed}, headers=harness.headers())
    assert response.status_code == 422
    assert "body.fleet.clusters[1].nodes: found -1, expected an integer greater than 0" in response.json()["detail"]
    proposed["clusters"][1]["nodes"] = 1
    response = harness.client.post(f"{FLEET}/plan", json={"fleet": proposed}, headers=harness.headers())
    assert response.status_code == 422
    assert "fleet.clusters[0].site: found 'atlantis'" in response.json()["detail"]


def test_a_fleet_that_would_strand_live_jobs_is_refused_until_they_end(harness: Harness) -> None:
    beta = harness.submit(queue="beta-q", command="sleep 60")["id"]
    beta_high = harness.submit(queue="beta-q", priority_class="high", command="sleep 60")["id"]
    high = harness.submit(queue="alpha-q", priority_class="high", command="sleep 60")["id"]
    proposed = copy.deepcopy(_current(harness)["fleet"])
    proposed["queues"] = [q for q in proposed["queues"] if q["id"] != "beta-q"]
    alpha = next(q for q in proposed["queues"] if q["id"] == "alpha-q")
    alpha["priority_classes"] = ["low", "normal"]
    refused = harness.client.post(f"{FLEET}/plan", json={"fleet": proposed}, headers=harness.headers())
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "found queue 'beta-q' removed while it has 2 jobs not finished (pending, placed or running)" in detail
    assert detail.count("beta-q") == 1  # one line per queue, whatever the jobs' classes
    assert "found priority class 'high' no longer usable in queue 'alpha-q' while it has 1 job" in detail
    for job in (beta, beta_high, high):
        harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    assert _plan(harness, proposed)["changes"]  # once they ended, the same fleet is accepted


def test_a_fleet_on_which_live_jobs_could_never_run_is_refused(harness: Harness) -> None:
    job = harness.submit(gpus=8, command="sleep 60")["id"]  # only lab-h100 (2 nodes of 4) holds 8 GPUs
    proposed = copy.deepcopy(_current(harness)["fleet"])
    proposed["clusters"][0]["nodes"] = 1
    refused = harness.client.post(f"{FLEET}/plan", json={"fleet": proposed}, headers=harness.headers())
    assert refused.status_code == 422
    assert (
        f"found 1 job not finished (pending, placed or running) that could never run on it (no_cluster_fits: {job})"
        in (refused.json()["detail"])
    )
    harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    assert _plan(harness, proposed)["changes"]


def test_submissions_wait_for_a_fleet_change_in_progress(harness: Harness) -> None:
    """A submission's transaction holds fleet changes off and waits for one in progress (PostgreSQL: a shared
    advisory lock against apply's exclusive one; SQLite: one writer at a time), so an apply that refuses to remove a
    queue with jobs never misses a job committed meanwhile."""
    done = threading.Event()
    with harness.ctx.db.write() as session:
        fleet_versions.lock(session)  # as an apply does, until its transaction ends
        worker = threading.Thread(target=lambda: (harness.submit(queue="beta-q"), done.set()))
        worker.start()
        assert not done.wait(0.5)  # the submission waits for the fleet change
    worker.join(10)
    assert done.is_set()
