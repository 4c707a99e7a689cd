"""The Contracts page in a real browser against a real server with the demo fleet: the contracts with their
committed spend and what runs under them cost (admins), a commitment's burn-down and the reserved tranches drawn,
first-refusal offers with their outcomes; a provider token sees its own contracts and offers only, a member sees no
spent figure."""

from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from e2e.e2e_support import ServerProcess
from web.conftest import Watch, drawn, job_status, login, shot

ROFR_CONTRACT = "azure-2025-01"


def _usd(amount: str, digits: int = 0) -> str:
    """An amount as the page writes it (usd(): whole USD; spent: cents, micro-dollars below 1 USD), en-GB grouping."""
    if digits == 2 and 0 < Decimal(amount) < 1:
        digits = 6
    quantum = Decimal(1).scaleb(-digits)
    return f"{Decimal(amount).quantize(quantum, rounding=ROUND_HALF_UP):,} USD"


@pytest.fixture(scope="module")
def world(web_server: ServerProcess) -> Iterator[dict[str, Any]]:
    """The demo fleet with Azure's first refusal still valid (its clause ended on 2025-10-28: extended through the
    API), one offer matched by Azure's provider token (over budget, then bought by an admin's override) and one left
    open, and a finished run charged to Azure's commitment."""
    with web_server.client() as http:
        fleet = http.get("/api/v1/fleet").json()["fleet"]
        for contract in fleet["contracts"]:
            if contract["id"] == ROFR_CONTRACT:
                contract["right_of_first_refusal"]["valid_until"] = "2030-12-31"
        plan = http.post("/api/v1/fleet/plan", json={"fleet": fleet})
        assert plan.status_code == 200, plan.text
        assert http.post("/api/v1/fleet/apply", json={"plan_id": plan.json()["plan_id"]}).status_code == 200
        body = {"gpu_model": "H100-SXM", "gpus": 800, "start": "2027-01-01", "term_days": 30, "reason": "web test"}
        matched = http.post("/api/v1/procurement/requests", json=body).json()["request"]
        left_open = http.post("/api/v1/procurement/requests", json={**body, "gpus": 1600}).json()["request"]
        assert matched["state"] == left_open["state"] == "offered"
        made = http.post("/api/v1/tokens", json={"name": "azure-bot", "role": "provider", "provider": "azure"})
        azure = made.json()["token"]
        job = http.post(
            "/api/v1/jobs",
            json={
                "name": "tiny",
                "queue": "product-inference",
                "gpus": 1,
                "gpu_models": ["H100-SXM"],
                "command": "sleep 2",
            },
        )
        assert job.status_code == 201, job.text
    with web_server.client(azure) as http:
        answer = http.post(f"/api/v1/procurement/offers/{matched['offer']['id']}/respond", json={"answer": "match"})
        assert answer.status_code == 200, answer.text
    assert answer.json()["request"]["state"] == "over_budget"  # the fleet's own draws pass its ceiling on 2027-01-01
    with web_server.client() as http:
        bought = http.post(f"/api/v1/procurement/requests/{matched['id']}/override", json={"reason": "web test"})
        assert bought.status_code == 200 and bought.json()["request"]["state"] == "awarded", bought.text
    job_status(web_server, job.json()["id"], "succeeded")
    yield {"azure": azure, "matched": matched, "open": left_open}


def _contract(server: ServerProcess, contract_id: str, token: str | None = None) -> dict[str, Any]:
    with server.client(token) as http:
        return next(c for c in http.get("/api/v1/contracts").json() if c["id"] == contract_id)


def test_an_admin_sees_commitments_spent_burn_down_tranches_and_offers(
    page: Page, web_server: ServerProcess, world: dict[str, Any]
) -> None:
    contract = _contract(web_server, ROFR_CONTRACT)
    assert Decimal(contract["spent_usd"]) > 0  # the run was charged to Azure's commitment
    login(page, web_server, web_server.admin_token, to="contracts")
    row = page.get_by_role("region", name="Contracts", exact=True).locator("tbody tr", has_text=ROFR_CONTRACT)
    expect(row).to_contain_text(_usd(contract["committed_spend_usd"]))  # 10,000,000,000 USD
    expect(row).to_contain_text(_usd(contract["spent_usd"], 2))
    assert drawn(page, "chart-contracts-burn") >= 3  # straight line, actual, projection
    note = page.get_by_role("note")
    expect(note).to_contain_text(f"Spent so far {_usd(contract['spent_usd'], 2)}")
    expect(note).to_contain_text("projected shortfall")
    assert drawn(page, "chart-contracts-tranches") >= 3  # CoreWeave's three tranches and the award
    tranches = page.get_by_role("region", name="Reserved tranches", exact=True)
    expect(tranches).to_contain_text("44,080 GPUs H100-SXM")
    expect(tranches).to_contain_text(f"award-{world['matched']['id']}")

    offers = page.get_by_role("region", name="First-refusal offers and their outcomes")
    matched = offers.locator("tbody tr", has_text=world["matched"]["offer"]["id"])
    expect(matched).to_contain_text("matched")
    expect(matched).to_contain_text("6.16 USD per GPU-hour")  # the benchmark's price, taken by the match
    expect(matched).to_contain_text("awarded")
    expect(offers.locator("tbody tr", has_text=world["open"]["offer"]["id"])).to_contain_text("open")
    page.locator("#burn-pick").select_option("azure-2025-10")
    expect(note).to_contain_text("azure-2025-10: 250,000,000,000 USD committed")
    shot(page, "contracts")


def test_a_provider_token_sees_its_own_contracts_and_offers_only(
    page: Page, web_server: ServerProcess, world: dict[str, Any], watch: Watch
) -> None:
    page.goto(f"{web_server.url}/ui#/contracts")  # straight to this page: the Fleet page is not a provider's
    page.get_by_label("API token").fill(world["azure"])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("main[data-ready='contracts']")).to_be_attached(timeout=15_000)
    listed = page.get_by_role("region", name="Contracts", exact=True)
    expect(listed).to_contain_text(ROFR_CONTRACT)
    expect(listed).not_to_contain_text("coreweave-2025-03")
    offers = page.get_by_role("region", name="First-refusal offers and their outcomes")
    expect(offers).to_contain_text(world["open"]["offer"]["id"])
    expect(page.get_by_role("region", name="Capacity requests")).to_have_count(0)
    assert drawn(page, "chart-contracts-burn") >= 1
    assert not [u for u in watch.requests if "/procurement/requests" in u or "/budget" in u]


def test_a_member_sees_no_spent_figure_but_the_burn_down_line(
    page: Page, web_server: ServerProcess, world: dict[str, Any]
) -> None:
    member = web_server.create_token("research", "member", "research-member")
    login(page, web_server, member, to="contracts")
    row = page.get_by_role("region", name="Contracts", exact=True).locator("tbody tr", has_text=ROFR_CONTRACT)
    expect(row).to_contain_text("admins only")
    expect(page.get_by_role("note")).to_contain_text("shown to admins only")
    assert drawn(page, "chart-contracts-burn") >= 1
    expect(page.get_by_role("region", name="Capacity requests")).to_contain_text(world["matched"]["id"])
