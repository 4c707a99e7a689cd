"""Procurement input refusals (located, nothing changed), the fleet file's procurement section, the clause that
ends in examples/stargate-2025, and awards that become valid fleet contracts and clusters."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from test_procurement_fixtures import T0, book_with, kinds, make_fleet, quote, request, snapshot

from stargate.domain import Fleet, PriceBookEntry, Procurement, fleet_problems
from stargate.engine import ProcurementBook, ProcurementError, award_contract
from stargate.engine.procurement import offer_id_for
from stargate.fleetfile import load_fleet

EXAMPLE = Path("examples/stargate-2025")


@pytest.mark.parametrize(
    "price", [Decimal(-1), Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity"), 10.5, "10"]
)
def test_bad_prices_are_refused_in_quotes_and_responses(price: Any) -> None:
    book = book_with(make_fleet(), quote("cw", "coreweave", "10"))
    book.raise_request(request())
    before = snapshot(book)
    with pytest.raises(ProcurementError) as caught:
        book.add_quote(replace(quote("bad", "oci", "1"), price=price), T0)
    assert caught.value.field == "add_quote.price" and "expected a decimal price" in str(caught.value)
    with pytest.raises(ProcurementError) as caught:
        book.respond(offer_id_for("r1"), True, T0, "azure", price=price)
    assert caught.value.field == "respond.price"
    assert snapshot(book) == before


def test_prices_past_the_bound_or_finer_than_a_micro_dollar_are_refused() -> None:
    book = book_with(make_fleet())
    for bad in (Decimal(100_001), Decimal("1.0000001")):
        with pytest.raises(ProcurementError, match=r"add_quote\.price"):
            book.add_quote(replace(quote("q", "oci", "1"), price=bad), T0)
    book.add_quote(replace(quote("q", "oci", "1"), price=Decimal("1.5000000")), T0)  # trailing zeros are fine


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gpu_model": "A100"}, "add_quote.gpu_model"),
        ({"provider": "nobody"}, "add_quote.provider"),
        ({"site": "azure-us"}, "add_quote.site"),
        ({"gpus_per_node": 0}, "add_quote.gpus_per_node"),
        ({"max_gpus": 0}, "add_quote.max_gpus"),
        ({"lead_time_days": -1}, "add_quote.lead_time_days"),
        ({"valid_until": date(2024, 12, 31)}, "add_quote.valid_until"),
        ({"source": "rumour"}, "add_quote.source"),
        ({"id": "Bad Id"}, "add_quote.id"),
        ({"id": "cw"}, "add_quote.id"),
    ],
)
def test_bad_quotes_are_refused_by_field(change: dict[str, Any], field: str) -> None:
    book = book_with(make_fleet(), quote("cw", "coreweave", "10"))
    before = snapshot(book)
    with pytest.raises(ProcurementError) as caught:
        book.add_quote(replace(quote("q", "oci", "1"), **change), T0)
    assert caught.value.field == field and "expected" in str(caught.value)
    assert snapshot(book) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gpu_model": "A100"}, "raise_request.gpu_model"),
        ({"gpus": 0}, "raise_request.gpus"),
        ({"gpus": True}, "raise_request.gpus"),
        ({"gpus": 10_000_001}, "raise_request.gpus"),
        ({"term_days": 0}, "raise_request.term_days"),
        ({"raised_by": "bot"}, "raise_request.raised_by"),
        ({"actor": ""}, "raise_request.actor"),
        ({"at": datetime(2025, 3, 1)}, "raise_request.at"),
        ({"start": datetime(2025, 3, 1, tzinfo=UTC)}, "raise_request.start"),
        ({"start": date(2200, 12, 1)}, "raise_request.start"),
        ({"id": "r1"}, "raise_request.id"),
        ({"id": "x" * 60}, "raise_request.id"),
    ],
)
def test_bad_requests_are_refused_by_field(change: dict[str, Any], field: str) -> None:
    book = book_with(make_fleet(), quote("cw", "coreweave", "10"))
    book.raise_request(request("r1"))
    before = snapshot(book)
    with pytest.raises(ProcurementError) as caught:
        book.raise_request(replace(request("r2"), **change))
    assert caught.value.field == field
    assert snapshot(book) == before


def test_unknown_gpu_model_names_the_catalogue() -> None:
    with pytest.raises(ProcurementError, match=r"raise_request\.gpu_model: found 'A100'; expected a GPU model of the"):
        book_with(make_fleet()).raise_request(request(model="A100"))


def _example(*price_book: PriceBookEntry, ceiling_usd: Decimal | None = Decimal(10**12)) -> Fleet:
    """The example fleet with ``price_book``. Its own contracts take the draws past its 500 B USD ceiling on
    2027-01-01 (Oracle's commitment), so every award would wait for an override: the tests of the clause and of the
    award lift the ceiling to ``ceiling_usd`` (None: the example's own)."""
    fleet = load_fleet(EXAMPLE)
    update: dict[str, Any] = {"procurement": Procurement(price_book=list(price_book))}
    if ceiling_usd is not None and fleet.budget is not None:
        update["budget"] = fleet.budget.model_copy(update={"ceiling_usd": ceiling_usd})
    return fleet.model_copy(update=update)


def test_the_example_fleets_own_later_draws_put_an_award_over_budget() -> None:
    """The examples' budget already breaks on 2027-01-01: an award dated before that day waits for an override."""
    book = ProcurementBook(_example(_entry(), ceiling_usd=None))
    events = book.raise_request(request("gb200", at=datetime(2025, 11, 3, tzinfo=UTC), gpus=8))
    assert kinds(events) == ["raised", "market", "over_budget"], [e.reason for e in events]
    assert "by 2027-01-01 (the most on any day from 2025-11-03 to 2029-01-20)" in events[-1].reason, events[-1].reason
    assert "over the ceiling 500,000,000,000 USD" in events[-1].reason


def _entry(**kw: Any) -> PriceBookEntry:
    base: dict[str, Any] = {
        "provider": "coreweave",
        "site": "coreweave-us",
        "gpu_model": "GB200",
        "gpus_per_node": 4,
        "price_per_gpu_hour_usd": Decimal("10.50"),
        "lead_time_days": 90,
        "valid_from": date(2025, 1, 1),
        "valid_until": date(2027, 12, 31),
    }
    return PriceBookEntry(**(base | kw))


def test_the_stargate_clause_ends_on_2025_10_28_inclusive() -> None:
    """Raised on 2025-10-28 (the clause's last day): offered to azure; on 2025-10-29: straight to market."""
    fleet = _example(_entry())
    book = ProcurementBook(fleet)
    on_last_day = request("last-day", at=datetime(2025, 10, 28, 23, 59, tzinfo=UTC), gpus=10_000)
    assert kinds(book.raise_request(on_last_day)) == ["raised", "offered"]
    offer = book.offers[offer_id_for("last-day")]
    assert (offer.holder, offer.contract_id, offer.match_rule) == ("azure", "azure-2025-01", "match_price_and_date")
    assert offer.deadline == on_last_day.at + timedelta(days=30) and offer.benchmark_price == Decimal("10.50")
    after = request("day-after", at=datetime(2025, 10, 29, tzinfo=UTC), gpus=10_000)
    events = book.raise_request(after)
    assert kinds(events) == ["raised", "market", "awarded"] and "no right of first refusal" in events[1].reason
    assert book.awards["award-day-after"].provider == "coreweave"
    assert "award-last-day" not in book.awards  # the holder's window is still open


def test_awards_become_a_reserved_contract_and_a_cluster_the_fleet_accepts() -> None:
    fleet = _example(_entry())
    book = ProcurementBook(fleet)
    book.raise_request(request("more-gb200", at=datetime(2025, 11, 3, tzinfo=UTC), gpus=10_001))
    book.raise_request(request("holder-gb200", at=datetime(2025, 6, 2, tzinfo=UTC), gpus=2_000))
    book.respond(offer_id_for("holder-gb200"), True, datetime(2025, 6, 9, tzinfo=UTC), "azure")
    contracts, clusters = [], []
    for award in book.awards.values():
        contract, cluster = award_contract(award)
        contracts.append(contract)
        clusters.append(cluster)
        assert contract.id == f"award-{award.request_id}" and contract.kind == "reserved"
        assert contract.value_usd == award.cost_usd and contract.gpus == cluster.gpus == award.gpus
        assert cluster.id == f"award-{award.request_id}-gb200" and cluster.online_from == award.start
        assert cluster.online_until == award.end == award.start + timedelta(days=364)
    assert {c.site for c in clusters} == {"coreweave-us", "azure-us"}
    grown = fleet.model_copy(
        update={"contracts": [*fleet.contracts, *contracts], "clusters": [*fleet.clusters, *clusters]}
    )
    assert fleet_problems(Fleet.model_validate(grown.model_dump())) == []
    again = ProcurementBook.restore(grown, book.requests, book.states, book.offers, book.quotes, book.awards)
    assert again.budget().report().drawn_usd == book.budget().report().drawn_usd  # awards counted once


def test_price_book_entries_become_quotes_and_are_checked_across_the_fleet() -> None:
    fleet = _example(_entry(), _entry(provider="oci", site="oci-us", price_per_gpu_hour_usd=Decimal(12)))
    book = ProcurementBook(fleet)
    assert [(q.id, q.provider, q.source) for q in book.quotes.values()] == [
        ("price-book-1", "coreweave", "price_book"),
        ("price-book-2", "oci", "price_book"),
    ]
    bad = _example(
        _entry(provider="nobody"),
        _entry(site="azure-us"),
        _entry(gpu_model="A100"),
        _entry(valid_from=date(2026, 1, 1), valid_until=date(2025, 1, 1)),
    )
    problems = {(p.dotted(), p.found) for p in fleet_problems(bad)}
    assert ("procurement.price_book[0].provider", "'nobody'") in problems
    assert ("procurement.price_book[1].site", "'azure-us' (a site of 'azure')") in problems
    assert ("procurement.price_book[2].gpu_model", "'A100'") in problems
    assert ("procurement.price_book[3].valid_until", "valid_until 2025-01-01 before valid_from 2026-01-01") in problems


def test_the_procurement_section_loads_from_yaml_with_located_errors(tmp_path: Path) -> None:
    text = (EXAMPLE / "10-providers.yaml").read_text(encoding="utf-8")
    (tmp_path / "10-providers.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "00.yaml").write_text("name: t\nsites:\n  - {id: cw, provider: coreweave, region: us}\n")
    (tmp_path / "20.yaml").write_text(
        "procurement:\n  price_book:\n    - {provider: coreweave, site: cw, gpu_model: GB200, gpus_per_node: 4,\n"
        "       price_per_gpu_hour_usd: 10.5, valid_from: 2025-01-01}\n"
        "  pressure: {min_waiting_gpus: 10000, block_gpus: 10000, sustain_hours: 72}\n"
        "  holder_response: {match_probability: 0.25, response_days: 3}\n"
    )
    fleet = load_fleet(tmp_path)
    assert fleet.procurement.price_book[0].price_per_gpu_hour_usd == Decimal("10.5")
    assert fleet.procurement.pressure is not None and fleet.procurement.pressure.block_gpus == 10_000
    assert fleet.procurement.holder_response.match_probability == 0.25
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Procurement.model_validate({"holder_response": {"match_probability": 1.5}})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Procurement.model_validate({"price_book": [_entry().model_dump() | {"price_per_gpu_hour_usd": Decimal(-1)}]})


def test_a_match_without_price_or_benchmark_takes_the_holders_own_list_price() -> None:
    """No market quote to benchmark: the holder's terms are its cluster's list price for the model (Azure GB200)."""
    book = ProcurementBook(_example())
    book.raise_request(request("r1", at=datetime(2025, 6, 2, tzinfo=UTC), gpus=1_000))
    assert book.offers[offer_id_for("r1")].benchmark_price is None
    events = book.respond(offer_id_for("r1"), True, datetime(2025, 6, 9, tzinfo=UTC), "azure")
    award = book.awards["award-r1"]
    assert kinds(events) == ["matched", "awarded"]
    assert (award.site, award.price, award.gpus_per_node) == ("azure-us", Decimal("27.04"), 4)


def test_a_first_refusal_holder_must_be_a_known_provider() -> None:
    fleet = make_fleet()
    clause = fleet.contracts[0].right_of_first_refusal
    assert clause is not None
    ghost = clause.model_copy(update={"holder": "ghost"})
    bad = fleet.contracts[0].model_copy(update={"right_of_first_refusal": ghost})
    problems = fleet_problems(fleet.model_copy(update={"contracts": [bad]}))
    assert [(p.dotted(), p.found) for p in problems] == [("contracts[0].right_of_first_refusal.holder", "'ghost'")]
    assert "the id of a provider (azure, coreweave, oci)" in problems[0].expected
