"""The Fleet page in a real browser: the demo fleet's providers, sites and clusters; GPUs in use drawn from a job
that runs; the buildout's energised power; a cluster taken down by a fleet change shown as an outage, live."""

import copy
import re

from playwright.sync_api import Page, expect

from e2e.e2e_support import ServerProcess
from web.conftest import drawn, job_status, login, shot

JOB = {
    "name": "web-fleet-sleeper",
    "queue": "research-training",
    "gpus": 8,
    "command": "sleep 60",
    "priority_class": "batch",
}


def test_the_demo_fleet_with_a_running_job_and_an_outage(page: Page, web_server: ServerProcess) -> None:
    with web_server.client() as http:
        job_id = http.post("/api/v1/jobs", json=JOB).json()["id"]
    job = job_status(web_server, job_id, "running")
    login(page, web_server, web_server.admin_token)

    tree = page.get_by_role("group").filter(has_text="Stargate (owned campuses")
    expect(tree).to_contain_text("abilene · Abilene, TX")
    expect(page.get_by_role("cell", name="abilene-b1-gb200", exact=True)).to_be_visible()
    expect(page.get_by_label("Fleet figures")).to_contain_text(re.compile(r"In use now\s*8 GPUs"))
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=str(job["cluster"]), exact=True))
    expect(row.first).to_contain_text("8 GPUs")
    assert drawn(page, "chart-fleet-usage") >= 1
    assert drawn(page, "chart-fleet-power") >= 1  # Abilene's buildings, step by step
    energised = page.locator("#chart-fleet-power").get_attribute("aria-label") or ""
    kpi = page.get_by_label("Fleet figures").inner_text()
    assert re.search(r"Energised IT power\s*([\d,.]+ MW)", kpi).group(1) + " energised today" in energised  # type: ignore[union-attr]
    label = page.locator("#chart-fleet-usage").get_attribute("aria-label") or ""
    assert "now 8 GPUs in use" in label
    shot(page, "fleet")

    with web_server.client() as http:  # take one cluster down by a fleet change: the page shows it without reload
        fleet = copy.deepcopy(http.get("/api/v1/fleet").json()["fleet"])
        down = next(c for c in fleet["clusters"] if c["id"] == "abilene-b2-gb200")
        down["status"] = "down"
        plan = http.post("/api/v1/fleet/plan", json={"fleet": fleet}).json()
        assert http.post("/api/v1/fleet/apply", json={"plan_id": plan["plan_id"]}).status_code == 200
    outages = page.get_by_role("region", name="Cluster status and outages")
    expect(outages.get_by_role("row").filter(has_text="abilene-b2-gb200")).to_contain_text("down", timeout=15_000)
    expect(page.get_by_label("Fleet figures")).to_contain_text("down15 / 0 / 1")


def test_a_cluster_whose_checks_fail_shows_before_it_is_taken_down(page: Page, web_server: ServerProcess) -> None:
    """One cluster moved to a Ray executor nobody answers at, with an hour before it is taken down: the Fleet page
    lists it as up, with its failing checks counted, since when, and when it goes down if they go on failing."""
    with web_server.client() as http:
        fleet = copy.deepcopy(http.get("/api/v1/fleet").json()["fleet"])
        fleet["executors"] = [
            *fleet.get("executors", []),
            {"id": "ray-nowhere", "kind": "ray", "address": "http://127.0.0.1:9", "health": HEALTH},
        ]
        cluster = next(c for c in fleet["clusters"] if c["id"] == "abilene-b3-gb200")
        cluster["executor"] = "ray-nowhere"
        plan = http.post("/api/v1/fleet/plan", json={"fleet": fleet}).json()
        assert http.post("/api/v1/fleet/apply", json={"plan_id": plan["plan_id"]}).status_code == 200
    login(page, web_server, web_server.admin_token)
    outages = page.get_by_role("region", name="Cluster status and outages")
    row = outages.get_by_role("row").filter(has_text="abilene-b3-gb200")
    expect(row).to_contain_text(
        re.compile(r"up\s*.*\d+ checks? since .* down at .* if they go on failing"), timeout=15_000
    )
    expect(row).to_contain_text("ray at http://127.0.0.1:9")


HEALTH = {"interval_s": 1, "down_after_s": 3600}
