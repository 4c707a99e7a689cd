"""The Budget page in a real browser against a real server with the demo fleet: drawn over time against the
envelope and the ceiling, costs of real runs by team, provider and day, the figures as the API gives them; the
budget overrides for admins only (a member and a viewer see spend only), and an admin's override awarding a request
that was over budget."""

import re
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from e2e.e2e_support import ServerProcess
from web.conftest import drawn, job_status, login, shot


def _usd(amount: str) -> str:
    """An amount as the page's usd() writes it: whole USD, en-GB grouping."""
    return f"{Decimal(amount).quantize(Decimal(1), rounding=ROUND_HALF_UP):,} USD"


def _budget(server: ServerProcess) -> dict[str, Any]:
    with server.client() as http:
        return dict(http.get("/api/v1/budget").json())


@pytest.fixture(scope="module")
def over_budget(web_server: ServerProcess) -> Iterator[dict[str, Any]]:
    """Two finished runs (teams product and research, on Azure's H100s) and a request far over the budget's
    ceiling (5,000,000 GB200 GPUs for a year: about 460 B USD against some 184 B USD of headroom today)."""
    with web_server.client() as http:
        jobs = [
            http.post(
                "/api/v1/jobs",
                json={"name": "tiny", "queue": queue, "gpus": 1, "gpu_models": ["H100-SXM"], "command": "sleep 2"},
            ).json()["id"]
            for queue in ("product-inference", "research-training")
        ]
        body = {"gpu_model": "GB200", "gpus": 5_000_000, "start": "2027-01-01", "term_days": 365, "reason": "web test"}
        request = http.post("/api/v1/procurement/requests", json=body).json()["request"]
        assert request["state"] == "over_budget", request
    for j in jobs:
        job_status(web_server, j, "succeeded")
    yield request


def test_an_admin_sees_drawn_against_the_envelope_costs_and_the_requests_over_budget(
    page: Page, web_server: ServerProcess, over_budget: dict[str, Any]
) -> None:
    budget = _budget(web_server)
    login(page, web_server, web_server.admin_token, to="budget")
    figures = page.get_by_label("Budget figures")
    expect(figures.locator(".kpi", has_text=re.compile("^Drawn"))).to_contain_text(_usd(budget["drawn_usd"]))
    expect(figures.locator(".kpi", has_text=re.compile("^Ceiling"))).to_contain_text("500,000,000,000 USD")
    assert drawn(page, "chart-budget-drawn") >= 3  # drawn, envelope, ceiling
    assert drawn(page, "chart-budget-teams") >= 2  # product and research
    assert drawn(page, "chart-budget-providers") >= 1
    assert drawn(page, "chart-budget-daily") >= 1
    expect(page.get_by_role("region", name="Conflicts")).to_contain_text("oracle-2027")
    overrides = page.get_by_role("region", name="Budget overrides (admins)")
    expect(overrides).to_contain_text(over_budget["id"])
    expect(overrides).to_contain_text("5,000,000 GPUs GB200")
    shot(page, "budget")


def test_a_member_and_a_viewer_see_their_spend_and_no_override(page: Page, web_server: ServerProcess) -> None:
    for role in ("member", "viewer"):
        token = web_server.create_token("research", role, f"research-{role}")
        login(page, web_server, token, to="budget")
        expect(page.get_by_text("Your team's runs only (team research)")).to_be_visible()
        assert drawn(page, "chart-budget-teams") >= 1
        teams = page.get_by_role("img", name="Cost of runs by team")
        expect(teams).to_have_attribute("aria-label", "Cost of runs by team: " + _team_cost(web_server, "research"))
        expect(page.get_by_role("region", name="Budget overrides (admins)")).to_have_count(0)
        expect(page.get_by_role("button", name="Override", exact=False)).to_have_count(0)
        page.get_by_role("button", name="Log out").click()


def _team_cost(server: ServerProcess, team: str) -> str:
    with server.client() as http:
        rows = http.get("/api/v1/costs", params={"by": "team"}).json()["rows"]
    amount = Decimal(next(r["cost_usd"] for r in rows if r["key"] == team))
    digits = 6 if amount < 1 else 2
    return f"{team} {amount.quantize(Decimal(1).scaleb(-digits)):,} USD"


def test_an_admin_overrides_the_budget_with_a_reason(
    page: Page, web_server: ServerProcess, over_budget: dict[str, Any]
) -> None:
    rid = over_budget["id"]
    before = Decimal(_budget(web_server)["drawn_usd"])
    login(page, web_server, web_server.admin_token, to="budget")
    page.get_by_label(f"Reason for {rid}").fill("board approved the overrun")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name=f"Override the budget for {rid}").click()
    done = page.get_by_role("region", name="Budget overrides (admins)")
    expect(done).to_contain_text("board approved the overrun")
    expect(done).to_contain_text("No request is over budget.")
    with web_server.client() as http:
        request = http.get(f"/api/v1/procurement/requests/{rid}").json()
    assert request["state"] == "awarded" and request["award"]["override_reason"] == "board approved the overrun"
    after = _budget(web_server)
    assert Decimal(after["drawn_usd"]) == before + Decimal(request["award"]["cost_usd"])
    figures = page.get_by_label("Budget figures")
    expect(figures.locator(".kpi", has_text=re.compile("^Drawn"))).to_contain_text(_usd(after["drawn_usd"]))
