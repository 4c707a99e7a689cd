"""Builders for the procurement tests: a three-cloud fleet with an optional right of first refusal, exclusivity
and budget, quotes and requests that read like the scenario. No tests here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from stargate.domain import (
    Budget,
    Contract,
    ContractKind,
    Exclusivity,
    Fleet,
    MatchRule,
    Provider,
    ProviderKind,
    RightOfFirstRefusal,
    Site,
    fleet_problems,
)
from stargate.engine import CapacityRequest, ProcurementBook, Quote

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
"""When the scenarios' first request is raised."""


def make_fleet(
    *,
    rule: str | None = "match_price",
    window_days: int = 30,
    clause_until: date = date(2025, 12, 31),
    clause_models: tuple[str, ...] = (),
    exclusive: tuple[str, date, tuple[str, ...]] | None = None,
    budget: tuple[int, int] | None = None,
    budget_period: tuple[date, date] = (date(2025, 1, 1), date(2028, 12, 31)),
) -> Fleet:
    """azure (holds the first refusal when ``rule`` is set), coreweave and oci, one site each.

    ``exclusive``: (provider, until, models) of an exclusivity clause; ``budget``: (initial, ceiling) USD.
    """
    providers = [Provider(id=p, name=p, kind=ProviderKind.CLOUD) for p in ("azure", "coreweave", "oci")]
    sites = [Site(id=f"{p.id}-us", provider=p.id, region="us") for p in providers]
    contracts = []
    if rule is not None:
        contracts.append(
            Contract(
                id="azure-main",
                provider="azure",
                kind=ContractKind.COMMITMENT,
                start=date(2025, 1, 1),
                end=date(2030, 12, 31),
                committed_spend_usd=Decimal(0),
                right_of_first_refusal=RightOfFirstRefusal(
                    holder="azure",
                    gpu_models=list(clause_models),
                    response_window_days=window_days,
                    match_rule=MatchRule(rule),
                    valid_from=date(2025, 1, 1),
                    valid_until=clause_until,
                ),
            )
        )
    if exclusive is not None:
        provider, until, models = exclusive
        contracts.append(
            Contract(
                id=f"{provider}-exclusive",
                provider=provider,
                kind=ContractKind.ON_DEMAND,
                start=date(2025, 1, 1),
                end=date(2030, 12, 31),
                price_per_gpu_hour_usd=Decimal(1),
                exclusivity=Exclusivity(gpu_models=list(models), until=until),
            )
        )
    money = None
    if budget is not None:
        money = Budget(
            initial_usd=Decimal(budget[0]),
            ceiling_usd=Decimal(budget[1]),
            start=budget_period[0],
            end=budget_period[1],
        )
    fleet = Fleet(name="procure", providers=providers, sites=sites, contracts=contracts, budget=money)
    assert fleet_problems(fleet) == []
    return fleet


def quote(
    qid: str,
    provider: str,
    price: str | Decimal,
    *,
    model: str = "GB200",
    gpn: int = 4,
    max_gpus: int | None = None,
    lead: int = 0,
    valid_from: date = date(2025, 1, 1),
    valid_until: date | None = None,
    **kw: Any,
) -> Quote:
    """A market quote at the provider's site."""
    return Quote(
        id=qid,
        provider=provider,
        site=f"{provider}-us",
        gpu_model=model,
        gpus_per_node=gpn,
        price=Decimal(price) if isinstance(price, str) else price,
        max_gpus=max_gpus,
        lead_time_days=lead,
        valid_from=valid_from,
        valid_until=valid_until,
        source=kw.get("source", "api"),
    )


def request(
    rid: str = "r1",
    *,
    at: datetime = T0,
    gpus: int = 1000,
    model: str = "GB200",
    start: date | None = None,
    term_days: int = 365,
) -> CapacityRequest:
    """A user's request raised at ``at`` for capacity from ``start`` (default: the raise day)."""
    return CapacityRequest(
        id=rid,
        gpu_model=model,
        gpus=gpus,
        start=start or at.date(),
        term_days=term_days,
        raised_by="user",
        actor="alice",
        at=at,
        reason="test",
    )


def book_with(fleet: Fleet, *quotes: Quote, rofr: bool = True) -> ProcurementBook:
    """A book over ``fleet`` holding ``quotes`` (added before :data:`T0`)."""
    book = ProcurementBook(fleet, rofr=rofr)
    for q in quotes:
        book.add_quote(q, datetime(2025, 1, 1, tzinfo=UTC))
    return book


def snapshot(book: ProcurementBook) -> tuple[object, ...]:
    """Every piece of a book's state, by value."""
    return (
        dict(book.requests),
        dict(book.states),
        dict(book.offers),
        dict(book.quotes),
        dict(book.awards),
        list(book.events),
        book.budget().report(),
    )


def kinds(events: list[Any]) -> list[str]:
    """The kinds of ``events`` in order."""
    return [e.kind for e in events]
