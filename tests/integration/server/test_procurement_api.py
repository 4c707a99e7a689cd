"""Procurement through the API: a request is offered to the right-of-first-refusal holder, whose provider token
answers; a match or a market award becomes a new fleet version with the contract and its cluster; a request over
budget waits for an admin's override; the scheduler loop expires offers. Every step is an event (actor, time,
reason)."""

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from integration.server.money_support import Money, money_harness
from stargate.server.scheduling import run_cycle


@pytest.fixture
def m(db_url: str, tmp_path: Path) -> Iterator[Money]:
    yield from money_harness(db_url, tmp_path / "home")


def _kinds(m: Money, request_id: str) -> list[str]:
    page = m.ok("GET", f"/procurement/events?request_id={request_id}")
    return [e["kind"] for e in page["items"]]


def test_holder_match_awards_and_adds_a_fleet_version_with_the_contract_and_cluster(m: Money) -> None:
    step = m.request()
    req = step["request"]
    rid = req["id"]
    assert req["state"] == "offered"
    offer = req["offer"]
    assert offer["holder"] == "oracle" and offer["state"] == "open"
    assert Decimal(offer["benchmark_price_per_gpu_hour_usd"]) == Decimal("10")  # CoreWeave's price-book quote
    assert [e["kind"] for e in step["events"]] == ["raised", "offered"]
    assert step["events"][0]["actor"] == "token:admin"
    oracle = m.provider("oracle")
    assert [o["id"] for o in m.ok("GET", "/procurement/offers", oracle)] == [offer["id"]]
    assert m.ok("GET", "/procurement/offers", m.provider("coreweave")) == []
    before = m.ok("GET", "/fleet")["version"]

    answered = m.ok("POST", f"/procurement/offers/{offer['id']}/respond", oracle, json={"answer": "match"})

    award = answered["request"]["award"]
    assert answered["request"]["state"] == "awarded"
    assert award["via"] == "holder" and award["provider"] == "oracle" and award["site"] == "oracle-us"
    assert Decimal(award["cost_usd"]) == Decimal(8 * 10 * 30 * 24)
    fleet = m.ok("GET", "/fleet")
    assert fleet["version"] != before and award["fleet_version"] == fleet["version"]
    contract = next(c for c in fleet["fleet"]["contracts"] if c["id"] == f"award-{rid}")
    assert contract["kind"] == "reserved" and contract["provider"] == "oracle"
    cluster = next(c for c in fleet["fleet"]["clusters"] if c["id"] == f"award-{rid}-gb200")
    assert cluster["site"] == "oracle-us" and cluster["nodes"] * cluster["gpus_per_node"] == 8
    assert _kinds(m, rid) == ["raised", "offered", "matched", "awarded"]
    matched = m.ok("GET", f"/procurement/events?request_id={rid}")["items"][2]
    assert matched["actor"] == "token:oracle-bot" and matched["at"].startswith("2026-12-01T12:00")
    listed = {c["id"]: c for c in m.ok("GET", "/contracts")}
    assert listed[f"award-{rid}"]["awarded_for"] == rid
    assert [c["id"] for c in m.ok("GET", "/contracts", oracle)] == ["oracle-frame", f"award-{rid}"]
    report = run_cycle(m.h.ctx, m.now)  # the loop decides with the new fleet version
    assert report.decided


def test_decline_goes_to_the_market_and_the_cheapest_quote_is_awarded(m: Money) -> None:
    offer = m.request()["request"]["offer"]
    m.tick(days=2)
    answered = m.ok(
        "POST", f"/procurement/offers/{offer['id']}/respond", m.provider("oracle"), json={"answer": "decline"}
    )
    award = answered["request"]["award"]
    assert award["via"] == "market" and award["provider"] == "coreweave" and award["site"] == "coreweave-us"
    assert award["start"] == "2027-01-02"  # day + 30 days' lead time, after the request's start
    assert _kinds(m, offer["request_id"]) == ["raised", "offered", "declined", "market", "awarded"]
    assert any(c["id"].startswith("award-") for c in m.ok("GET", "/fleet")["fleet"]["clusters"])


@pytest.mark.parametrize("who", ["admin", "member", "viewer", "other-provider"])
def test_only_the_holders_provider_token_may_answer(m: Money, who: str) -> None:
    offer = m.request()["request"]["offer"]
    headers = {
        "admin": m.h.headers(),
        "member": m.h.headers("member", "alpha"),
        "viewer": m.h.headers("viewer", "alpha"),
        "other-provider": m.provider("coreweave"),
    }[who]
    rows = m.rows()
    response = m.call("POST", f"/procurement/offers/{offer['id']}/respond", headers, json={"answer": "match"})
    assert response.status_code == 403, response.text
    assert "only a 'provider' token of provider 'oracle'" in response.json()["detail"]
    assert m.rows() == rows


def test_a_provider_token_may_only_read_contracts_and_offers(m: Money) -> None:
    oracle = m.provider("oracle")
    assert m.ok("GET", "/whoami", oracle)["provider"] == "oracle"
    for path in ("/jobs", "/fleet", "/queues", "/events", "/budget", "/costs", "/procurement/requests"):
        assert m.call("GET", path, oracle).status_code == 403, path
    refused = m.call("POST", "/procurement/requests", oracle, json={"gpu_model": "GB200", "gpus": 8})
    assert refused.status_code in (403, 422)
    body = {"name": "x", "queue": "alpha-q", "gpus": 1, "command": "true"}
    assert m.call("POST", "/jobs", oracle, json=body).status_code == 403


def test_over_budget_waits_for_an_admin_override_with_a_reason(m: Money) -> None:
    req = m.request(gpu_model="H100-SXM", gpus=800)["request"]  # 800 × 3 USD × 720 h = 1.7 M USD > 200 k
    rid = req["id"]
    assert req["state"] == "over_budget" and req["award"] is None
    rows = m.rows()
    assert (
        m.call(
            "POST", f"/procurement/requests/{rid}/override", m.h.headers("member", "alpha"), json={"reason": "x"}
        ).status_code
        == 403
    )
    blank = m.call("POST", f"/procurement/requests/{rid}/override", json={"reason": "  "})
    assert blank.status_code == 422 and "body.reason" in blank.json()["detail"]
    assert m.call("POST", f"/procurement/requests/{rid}/override", json={}).status_code == 422
    assert m.rows() == rows

    done = m.ok("POST", f"/procurement/requests/{rid}/override", json={"reason": "board approved the overrun"})

    award = done["request"]["award"]
    assert done["request"]["state"] == "awarded" and award["override_reason"] == "board approved the overrun"
    assert award["override_by"] == "token:admin"
    events = m.ok("GET", f"/procurement/events?request_id={rid}")["items"]
    overridden = next(e for e in events if e["kind"] == "overridden")
    assert overridden["actor"] == "token:admin" and "board approved the overrun" in overridden["reason"]
    budget = m.ok("GET", "/budget")
    assert Decimal(budget["drawn_usd"]) == Decimal(800 * 3 * 30 * 24)
    assert budget["conflicts"] and budget["conflicts"][0]["kind"] == "over_ceiling"
    again = m.call("POST", f"/procurement/requests/{rid}/override", json={"reason": "twice"})
    assert again.status_code == 409


def test_the_loop_expires_an_unanswered_offer_and_the_market_awards(m: Money) -> None:
    offer = m.request()["request"]["offer"]
    run_cycle(m.h.ctx, m.now)
    assert m.ok("GET", f"/procurement/requests/{offer['request_id']}")["state"] == "offered"
    m.tick(days=7)
    run_cycle(m.h.ctx, m.now)
    req = m.ok("GET", f"/procurement/requests/{offer['request_id']}")
    assert req["state"] == "awarded" and req["offer"]["state"] == "expired" and req["award"]["via"] == "market"
    events = m.ok("GET", f"/procurement/events?request_id={offer['request_id']}")["items"]
    expired = next(e for e in events if e["kind"] == "expired")
    assert expired["actor"] == "procurement" and expired["at"].startswith("2026-12-08T12:00")
    assert req["award"]["fleet_version"] == m.ok("GET", "/fleet")["version"]


def test_an_api_quote_awards_a_request_waiting_in_the_market(m: Money) -> None:
    req = m.request(gpu_model="B200", gpus=8)["request"]  # no clause, no quote for B200: it waits
    assert req["state"] == "market"
    quote = {
        "provider": "coreweave",
        "site": "coreweave-us",
        "gpu_model": "B200",
        "gpus_per_node": 8,
        "price_per_gpu_hour_usd": "4.5",
        "valid_from": "2026-01-01",
    }
    step = m.ok("POST", "/procurement/quotes", json=quote)
    assert step["quote"]["source"] == "api"
    assert "awarded" in [e["kind"] for e in step["events"]]
    assert m.ok("GET", f"/procurement/requests/{req['id']}")["award"]["quote_id"] == step["quote"]["id"]
    assert any(q["id"] == step["quote"]["id"] for q in m.ok("GET", "/procurement/quotes"))
