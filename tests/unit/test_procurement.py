"""The right-of-first-refusal state machine, transition by transition: offered → matched / declined / expired /
not_matched → market → awarded / over_budget / unfilled, and the admin override."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from test_procurement_fixtures import T0, book_with, kinds, make_fleet, quote, request, snapshot

from stargate.engine import OfferState, ProcurementBook, RequestState
from stargate.engine.procurement import offer_id_for

CW = quote("cw", "coreweave", "10.50", lead=90)
OCI = quote("oci", "oci", "12.00", lead=10)
HOURS = 365 * 24


def test_raise_under_a_clause_offers_to_the_holder_with_deadline_and_benchmark() -> None:
    book = book_with(make_fleet(window_days=30), CW, OCI)
    events = book.raise_request(request(gpus=1000))
    assert kinds(events) == ["raised", "offered"]
    offer = book.offers[offer_id_for("r1")]
    assert book.states["r1"] is RequestState.OFFERED and offer.state is OfferState.OPEN
    assert offer.holder == "azure" and offer.contract_id == "azure-main" and offer.match_rule == "match_price"
    assert offer.deadline == T0 + timedelta(days=30)
    assert offer.benchmark_price == Decimal("10.50") and offer.benchmark_start == T0.date() + timedelta(days=90)
    assert book.awards == {} and book.next_deadline() == offer.deadline


def test_offered_to_matched_awards_the_holder() -> None:
    book = book_with(make_fleet(), CW)
    book.raise_request(request(gpus=1000))
    now = T0 + timedelta(days=3)
    events = book.respond(offer_id_for("r1"), True, now, "azure-bot")
    assert kinds(events) == ["matched", "awarded"]
    offer = book.offers[offer_id_for("r1")]
    assert offer.state is OfferState.MATCHED and offer.answered_at == now and offer.answered_by == "azure-bot"
    award = book.awards["award-r1"]
    assert book.states["r1"] is RequestState.AWARDED
    assert (award.via, award.provider, award.site, award.price) == ("holder", "azure", "azure-us", Decimal("10.50"))
    assert award.cost_usd == 1000 * Decimal("10.50") * HOURS and award.at == now


def test_offered_to_declined_goes_to_market_and_awards_the_cheapest_quote() -> None:
    book = book_with(make_fleet(), CW, OCI)
    book.raise_request(request())
    now = T0 + timedelta(days=1)
    events = book.respond(offer_id_for("r1"), False, now, "azure-bot")
    assert kinds(events) == ["declined", "market", "awarded"]
    assert book.offers[offer_id_for("r1")].state is OfferState.DECLINED
    award = book.awards["award-r1"]
    assert (award.via, award.provider, award.quote_id, award.at) == ("market", "coreweave", "cw", now)
    assert award.start == now.date() + timedelta(days=90) and award.end == award.start + timedelta(days=364)


def test_tick_at_the_deadline_expires_and_goes_to_market_but_not_a_moment_before() -> None:
    book = book_with(make_fleet(window_days=30), CW)
    book.raise_request(request())
    deadline = T0 + timedelta(days=30)
    assert book.tick(deadline - timedelta(microseconds=1)) == []
    assert book.states["r1"] is RequestState.OFFERED
    events = book.tick(deadline)
    assert kinds(events) == ["expired", "market", "awarded"]
    assert all(e.at == deadline for e in events)
    assert book.offers[offer_id_for("r1")].state is OfferState.EXPIRED
    assert book.awards["award-r1"].via == "market" and book.next_deadline() is None


def test_a_late_tick_expires_at_the_deadline_not_at_the_tick() -> None:
    book = book_with(make_fleet(window_days=30), CW)
    book.raise_request(request())
    events = book.tick(T0 + timedelta(days=45))
    assert events[0].at == T0 + timedelta(days=30) and book.awards["award-r1"].at == T0 + timedelta(days=30)


def test_a_response_at_exactly_the_deadline_is_late_and_changes_nothing() -> None:
    book = book_with(make_fleet(window_days=30), CW)
    book.raise_request(request())
    deadline = T0 + timedelta(days=30)
    before = snapshot(book)
    with pytest.raises(ValueError) as caught:
        book.respond(offer_id_for("r1"), True, deadline, "azure-bot")
    assert getattr(caught.value, "field", None) == "respond.now" and "late" in str(caught.value)
    assert snapshot(book) == before
    events = book.respond(offer_id_for("r1"), True, deadline - timedelta(microseconds=1), "azure-bot")
    assert kinds(events) == ["matched", "awarded"]


def test_a_second_response_is_refused_and_changes_nothing() -> None:
    book = book_with(make_fleet(), CW)
    book.raise_request(request())
    book.respond(offer_id_for("r1"), False, T0 + timedelta(days=1), "azure-bot")
    before = snapshot(book)
    for match in (True, False):
        with pytest.raises(ValueError) as caught:
            book.respond(offer_id_for("r1"), match, T0 + timedelta(days=2), "azure-bot")
        assert getattr(caught.value, "field", None) == "respond.offer_id" and "already declined" in str(caught.value)
    assert snapshot(book) == before


def test_a_response_after_expiry_is_refused_and_changes_nothing() -> None:
    book = book_with(make_fleet(window_days=7), CW)
    book.raise_request(request())
    book.tick(T0 + timedelta(days=8))
    before = snapshot(book)
    with pytest.raises(ValueError) as caught:
        book.respond(offer_id_for("r1"), True, T0 + timedelta(days=8), "azure-bot")
    assert getattr(caught.value, "field", None) == "respond.offer_id" and "already expired" in str(caught.value)
    assert snapshot(book) == before


def test_unknown_offer_and_a_response_before_the_offer_are_refused() -> None:
    book = book_with(make_fleet(), CW)
    book.raise_request(request())
    before = snapshot(book)
    with pytest.raises(ValueError, match=r"respond\.offer_id: found 'nope'"):
        book.respond("nope", True, T0, "azure-bot")
    with pytest.raises(ValueError, match=r"respond\.now: .*before the offer"):
        book.respond(offer_id_for("r1"), True, T0 - timedelta(seconds=1), "azure-bot")
    with pytest.raises(ValueError, match=r"respond\.now: .*timezone-aware"):
        book.respond(offer_id_for("r1"), True, datetime(2025, 3, 2), "azure-bot")
    assert snapshot(book) == before


def test_a_match_above_the_benchmark_price_is_not_matched_and_goes_to_market() -> None:
    book = book_with(make_fleet(rule="match_price"), CW)
    book.raise_request(request())
    now = T0 + timedelta(days=2)
    events = book.respond(offer_id_for("r1"), True, now, "azure-bot", price=Decimal("10.51"))
    assert kinds(events) == ["not_matched", "market", "awarded"]
    offer = book.offers[offer_id_for("r1")]
    assert offer.state is OfferState.NOT_MATCHED and offer.price == Decimal("10.51")
    assert "above the benchmark 10.50" in events[0].reason and book.awards["award-r1"].via == "market"


def test_match_price_and_date_needs_the_benchmark_start_too() -> None:
    fleet = make_fleet(rule="match_price_and_date")
    bench_start = T0.date() + timedelta(days=90)
    late = book_with(fleet, CW)
    late.raise_request(request())
    events = late.respond(offer_id_for("r1"), True, T0, "azure", price=Decimal("9"), start=bench_start + timedelta(1))
    assert kinds(events)[:2] == ["not_matched", "market"] and "later than the benchmark" in events[0].reason
    on_time = book_with(fleet, CW)
    on_time.raise_request(request())
    events = on_time.respond(offer_id_for("r1"), True, T0, "azure", price=Decimal("10.50"), start=bench_start)
    assert kinds(events) == ["matched", "awarded"] and on_time.awards["award-r1"].start == bench_start


def test_any_offer_wins_with_any_terms() -> None:
    book = book_with(make_fleet(rule="any_offer"), CW)
    book.raise_request(request())
    events = book.respond(offer_id_for("r1"), True, T0, "azure", price=Decimal("99"), start=date(2026, 1, 1))
    assert kinds(events) == ["matched", "awarded"] and book.awards["award-r1"].price == Decimal("99")


def test_a_match_without_benchmark_must_name_its_price() -> None:
    book = book_with(make_fleet())
    book.raise_request(request())
    assert book.offers[offer_id_for("r1")].benchmark_price is None
    before = snapshot(book)
    with pytest.raises(ValueError, match=r"respond\.price: found nothing"):
        book.respond(offer_id_for("r1"), True, T0, "azure")
    assert snapshot(book) == before
    events = book.respond(offer_id_for("r1"), True, T0, "azure", price=Decimal("20"))
    assert kinds(events) == ["matched", "awarded"] and book.awards["award-r1"].gpus_per_node == 8


def test_no_clause_goes_straight_to_market() -> None:
    book = book_with(make_fleet(rule=None), CW, OCI)
    events = book.raise_request(request())
    assert kinds(events) == ["raised", "market", "awarded"] and book.offers == {}
    assert "no right of first refusal covers GB200" in events[1].reason


def test_a_clause_out_of_scope_for_the_model_goes_to_market() -> None:
    book = book_with(make_fleet(clause_models=("H100-SXM",)), CW)
    assert kinds(book.raise_request(request(model="GB200"))) == ["raised", "market", "awarded"]


def test_without_rofr_the_clause_is_ignored() -> None:
    book = book_with(make_fleet(), CW, rofr=False)
    events = book.raise_request(request())
    assert kinds(events) == ["raised", "market", "awarded"] and "ignored" in events[1].reason


def test_market_without_quotes_waits_then_a_quote_awards() -> None:
    book = book_with(make_fleet(rule=None))
    assert kinds(book.raise_request(request())) == ["raised", "market"]
    assert book.states["r1"] is RequestState.MARKET and book.tick(T0 + timedelta(days=1)) == []
    now = T0 + timedelta(days=2)
    events = book.add_quote(OCI, now)
    assert kinds(events) == ["awarded"] and book.awards["award-r1"].at == now


def test_market_with_no_feasible_quote_is_unfilled_until_a_feasible_one_arrives() -> None:
    small = quote("small", "oci", "5", max_gpus=100)
    book = book_with(make_fleet(rule=None), small)
    events = book.raise_request(request(gpus=1000))
    assert kinds(events) == ["raised", "market", "unfilled"] and book.states["r1"] is RequestState.UNFILLED
    assert kinds(book.add_quote(quote("tiny", "oci", "4", max_gpus=10), T0)) == []  # still unfilled, no new event
    assert kinds(book.add_quote(CW, T0 + timedelta(days=1))) == ["awarded"]


def test_expired_and_not_yet_valid_quotes_are_not_feasible() -> None:
    old = quote("old", "oci", "1", valid_until=date(2025, 2, 28))
    future = quote("future", "oci", "2", valid_from=date(2025, 3, 2))
    book = book_with(make_fleet(rule=None), old, future, CW)
    book.raise_request(request())
    assert book.awards["award-r1"].quote_id == "cw"


def test_price_ties_go_to_the_earlier_start_then_the_provider_id() -> None:
    slow = quote("a-slow", "azure", "10", lead=30)
    fast = quote("z-fast", "oci", "10", lead=5)
    tie = quote("b-tie", "coreweave", "10", lead=5)
    book = book_with(make_fleet(rule=None), slow, fast, tie)
    book.raise_request(request())
    assert book.awards["award-r1"].quote_id == "b-tie"


def test_over_budget_waits_for_an_override_which_is_recorded() -> None:
    cost = 1000 * Decimal("10.50") * HOURS  # 91,980,000 USD
    book = book_with(make_fleet(rule=None, budget=(50_000_000, 90_000_000)), CW)
    events = book.raise_request(request())
    assert kinds(events) == ["raised", "market", "over_budget"] and book.awards == {}
    assert book.states["r1"] is RequestState.OVER_BUDGET and "over the ceiling 90,000,000 USD" in events[-1].reason
    before = snapshot(book)
    with pytest.raises(ValueError, match=r"override\.reason"):
        book.override("r1", "  ", T0, "admin")
    with pytest.raises(ValueError, match=r"override\.request_id: found 'nope'"):
        book.override("nope", "why", T0, "admin")
    assert snapshot(book) == before
    now = T0 + timedelta(days=1)
    events = book.override("r1", "board approved the overrun", now, "admin")
    assert kinds(events) == ["overridden", "awarded"] and events[0].actor == "admin"
    award = book.awards["award-r1"]
    assert award.cost_usd == cost and award.override_reason == "board approved the overrun"
    assert award.override_by == "admin" and book.states["r1"] is RequestState.AWARDED
    with pytest.raises(ValueError, match=r"override\.request_id: found 'r1' \(awarded\)"):
        book.override("r1", "again", now, "admin")


def test_an_award_at_exactly_the_ceiling_is_within_budget_and_outside_the_period_is_not() -> None:
    cost = 1000 * Decimal("10.50") * HOURS
    book = book_with(make_fleet(rule=None, budget=(0, int(cost))), CW)
    assert kinds(book.raise_request(request())) == ["raised", "market", "awarded"]
    late = book_with(make_fleet(rule=None, budget=(0, 10**12), budget_period=(date(2026, 1, 1), date(2027, 1, 1))), CW)
    events = late.raise_request(request())
    assert kinds(events)[-1] == "over_budget" and "outside the budget period" in events[-1].reason


def test_a_holder_match_over_budget_is_overridden_on_the_holders_terms() -> None:
    book = book_with(make_fleet(budget=(0, 1000)), CW)
    book.raise_request(request())
    events = book.respond(offer_id_for("r1"), True, T0, "azure")
    assert kinds(events) == ["matched", "over_budget"]
    events = book.override("r1", "strategic", T0 + timedelta(days=1), "admin")
    assert kinds(events) == ["overridden", "awarded"] and book.awards["award-r1"].via == "holder"


def test_exclusivity_keeps_other_providers_out_until_it_ends() -> None:
    fleet = make_fleet(rule=None, exclusive=("coreweave", date(2025, 6, 30), ("GB200",)))
    cheap = quote("oci-cheap", "oci", "5")
    during = book_with(fleet, cheap, CW)
    events = during.raise_request(request(at=datetime(2025, 6, 30, 23, tzinfo=UTC)))
    assert kinds(events) == ["raised", "market", "excluded", "awarded"]
    assert "coreweave-exclusive" in events[2].reason and "oci-cheap" in events[2].reason
    assert during.awards["award-r1"].provider == "coreweave"
    after = book_with(fleet, cheap, CW)
    after.raise_request(request(at=datetime(2025, 7, 1, tzinfo=UTC)))
    assert after.awards["award-r1"].provider == "oci"
    other_model = book_with(fleet, quote("oci-h100", "oci", "5", model="H100-SXM"))
    other_model.raise_request(request(model="H100-SXM"))
    assert other_model.awards["award-r1"].provider == "oci"


def test_exclusivity_with_only_excluded_quotes_leaves_the_request_unfilled() -> None:
    fleet = make_fleet(rule=None, exclusive=("coreweave", date(2025, 6, 30), ()))
    book = book_with(fleet, quote("oci-cheap", "oci", "5"))
    assert kinds(book.raise_request(request())) == ["raised", "market", "excluded", "unfilled"]


def test_a_holder_kept_out_by_exclusivity_gets_no_offer() -> None:
    fleet = make_fleet(exclusive=("coreweave", date(2025, 6, 30), ()))
    book = book_with(fleet, CW)
    events = book.raise_request(request())
    assert kinds(events) == ["raised", "excluded", "market", "awarded"] and book.offers == {}


def test_award_cost_is_gpus_times_price_times_term_hours_in_whole_nodes() -> None:
    book = book_with(make_fleet(rule=None), quote("q", "oci", "2.123457", gpn=72))
    book.raise_request(request(gpus=1000, term_days=30))
    award = book.awards["award-r1"]
    assert award.gpus == 1008 and award.gpus_per_node == 72  # 14 racks of 72
    assert award.cost_usd == Decimal(1008) * Decimal("2.123457") * Decimal(30 * 24)
    assert award.cost_usd == Decimal("1541120.15232")  # 1,008 × 2.123457 × 720, every digit


def test_cancel_withdraws_a_request_but_not_one_offered_to_the_holder() -> None:
    book = book_with(make_fleet(rule=None))
    book.raise_request(request())
    assert kinds(book.cancel("r1", "no longer needed", T0, "alice")) == ["cancelled"]
    assert book.states["r1"] is RequestState.CANCELLED and book.add_quote(CW, T0) == []
    offered = book_with(make_fleet(), CW)
    offered.raise_request(request())
    with pytest.raises(ValueError, match=r"cancel\.request_id: found 'r1' \(offered\)"):
        offered.cancel("r1", "", T0, "alice")


def test_open_models_are_those_with_a_request_still_open() -> None:
    book = book_with(make_fleet(rule=None))
    book.raise_request(request("r1", model="GB200"))
    book.raise_request(request("r2", model="H100-SXM"))
    book.add_quote(quote("h", "oci", "3", model="H100-SXM"), T0)
    assert book.open_models() == {"GB200"}


def test_restore_continues_where_the_saved_book_stopped() -> None:
    fleet = make_fleet()
    book = book_with(fleet, CW)
    book.raise_request(request("r1"))
    book.raise_request(request("r2", at=T0 + timedelta(days=1)))
    book.respond(offer_id_for("r1"), False, T0 + timedelta(days=2), "azure")
    copy = ProcurementBook.restore(
        fleet, book.requests, book.states, book.offers, book.quotes, book.awards, events=book.events
    )
    assert snapshot(copy) == snapshot(book)
    later = T0 + timedelta(days=40)
    assert book.tick(later) == copy.tick(later) and snapshot(copy) == snapshot(book)


def test_the_same_calls_give_the_same_events() -> None:
    def run() -> list[object]:
        book = book_with(make_fleet(window_days=10, budget=(0, 10**10)), OCI)
        book.raise_request(request("r1", gpus=5000))
        book.raise_request(request("r2", gpus=20000, at=T0 + timedelta(hours=1)))
        book.add_quote(CW, T0 + timedelta(hours=2))
        book.respond(offer_id_for("r1"), True, T0 + timedelta(days=1), "azure", price=Decimal("11"))
        book.tick(T0 + timedelta(days=20))
        return list(book.events)

    first = run()
    assert first == run() and len(first) >= 8
