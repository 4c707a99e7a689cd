"""The Plan page in a real browser against a real server: a plan of the bundled scenario (a few Monte Carlo
scenarios) drawn as supply against demand and the shortfall band, its headline figures as the API gives them, a
plan computed from the page, applying one after confirming, and a viewer who sees no compute or apply control."""

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from e2e.e2e_support import ServerProcess
from web.conftest import DEMO_FLEET, drawn, login, shot

SCENARIO = (DEMO_FLEET / "plan.yaml").read_text()


@pytest.fixture(scope="module")
def plan(web_server: ServerProcess) -> dict[str, Any]:
    """A plan of the bundled scenario with 20 Monte Carlo scenarios, computed through the API."""
    with web_server.client() as api:
        answer = api.post("/api/v1/plans", json={"scenario_yaml": SCENARIO, "scenarios": 20, "seed": 3}, timeout=120)
        assert answer.status_code == 201, answer.text
        found: dict[str, Any] = answer.json()
        return found


def figure(page: Page, label: str) -> str:
    return page.locator(".kpi", has=page.locator(".label", has_text=label)).locator(".value").inner_text()


def test_the_plan_draws_supply_demand_and_risk_with_the_apis_figures(
    page: Page, web_server: ServerProcess, plan: dict[str, Any]
) -> None:
    login(page, web_server, web_server.admin_token, to="plan")
    expect(page.get_by_label("Plan (newest first)")).to_have_value(plan["id"])
    # stacked supply sources + demand + shortfall, the band's three lines + the plan's, spend
    assert drawn(page, "chart-plan-supply") >= 4
    assert drawn(page, "chart-plan-risk") >= 3
    assert drawn(page, "chart-plan-spend") >= 2
    assert plan["first_shortfall_month"] is not None
    assert figure(page, "First month of shortfall") == plan["first_shortfall_month"]
    assert figure(page, "Unmet demand (plan)") == f"{round(plan['unmet_gpu_hours']):,} GPU-hours"
    p90 = plan["result"]["risk"]["shortfall_gpu_hours"]["p90"]
    assert figure(page, "P90 shortfall") == f"{round(p90):,} GPU-hours"
    actions = plan["result"]["plan"]["actions"]
    rows = page.get_by_role("region", name="Recommended actions").locator("tbody tr")
    expect(rows).to_have_count(len(actions))
    biggest = max(actions, key=lambda a: a["cost_usd"])
    expect(rows.nth(actions.index(biggest))).to_contain_text(f"{round(biggest['cost_usd']):,} USD")
    legend = page.locator("#chart-plan-supply .legend").text_content() or ""
    assert "demand" in legend and "commitment" in legend
    shot(page, "plan")


def test_an_admin_computes_a_plan_from_the_shown_scenario_then_applies_it_after_confirming(
    page: Page, web_server: ServerProcess, plan: dict[str, Any]
) -> None:
    login(page, web_server, web_server.admin_token, to="plan")
    expect(page.get_by_label("Plan (newest first)")).to_have_value(plan["id"])
    page.get_by_label("Use the scenario of the plan shown").check()
    page.get_by_label("Monte Carlo scenarios (0 to 1,000)").fill("0")
    page.get_by_role("button", name="Compute plan").click()
    with web_server.client() as api:
        expect(page.get_by_label("Plan (newest first)")).not_to_have_value(plan["id"], timeout=30_000)
        new_id = page.get_by_label("Plan (newest first)").input_value()
        new = api.get(f"/api/v1/plans/{new_id}").json()
        assert new["scenario_yaml"] == SCENARIO and new["scenarios"] == 0
        expect(page.get_by_text("No Monte Carlo scenarios ran for this plan")).to_be_visible()
        assert drawn(page, "chart-plan-supply") >= 4

        page.get_by_role("button", name="Apply plan…").click()
        assert api.get(f"/api/v1/plans/{new_id}").json()["status"] == "computed"  # nothing before confirming
        page.get_by_role("button", name="Cancel").click()
        page.get_by_role("button", name="Apply plan…").click()
        page.get_by_role("button", name="Confirm: raise the capacity requests").click()
        expect(page.get_by_role("heading", name="Applied:")).to_be_visible(timeout=20_000)
        after = api.get(f"/api/v1/plans/{new_id}").json()
        assert after["status"] == "applied" and after["applied_requests"]
        heading = page.get_by_role("heading", name="Applied:").inner_text()
        assert heading == f"Applied: {len(after['applied_requests'])} capacity requests raised"
        expect(page.get_by_role("button", name="Apply plan…")).to_have_count(0)
        request_id = next(iter(after["applied_requests"].values()))
        expect(page.get_by_role("region", name="Recommended actions")).to_contain_text(request_id)
        assert api.get(f"/api/v1/plans/{plan['id']}").json()["status"] == "computed"  # the other is untouched


def test_a_viewer_sees_the_plan_but_no_compute_or_apply_control(
    page: Page, web_server: ServerProcess, plan: dict[str, Any]
) -> None:
    token = web_server.create_token("research", "viewer", "plan-viewer")
    login(page, web_server, token, to="plan")
    assert drawn(page, "chart-plan-supply") >= 4
    expect(page.get_by_text("read only")).to_be_visible()
    expect(page.get_by_role("button", name="Apply plan…")).to_have_count(0)
    expect(page.get_by_role("button", name="Compute plan")).to_have_count(0)
    expect(page.get_by_role("form", name="Compute a plan")).to_have_count(0)
