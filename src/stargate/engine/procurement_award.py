"""What an award becomes (a reserved contract and its cluster) and whether a holder's terms win under its clause's
match rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from stargate.domain import Cluster, Contract, ContractKind
from stargate.engine.budget import award_contract_id
from stargate.engine.procurement_market import Choice, term_cost, valid_on
from stargate.engine.procurement_types import Award, CapacityRequest, Offer, Quote

DEFAULT_GPUS_PER_NODE = 8
"""Node size of a holder award when neither a quote nor a cluster of the holder tells it."""


class Terms(NamedTuple):
    """What an award would buy: from whom, where, how many GPUs in which nodes, at what price, from when."""

    provider: str
    site: str
    gpus_per_node: int
    gpus: int
    price: Decimal
    start: date
    via: str
    """'holder' or 'market'."""
    quote_id: str | None = None

    @classmethod
    def of(cls, choice: Choice) -> Terms:
        """The terms of a market step's winning quote."""
        q = choice.quote
        return cls(q.provider, q.site, q.gpus_per_node, choice.gpus, q.price, choice.start, "market", q.id)

    def cost(self, term_days: int) -> Decimal:
        """gpus × price × term hours, USD."""
        return term_cost(self.gpus, self.price, term_days)


def make_award(req: CapacityRequest, t: Terms, at: datetime, override: tuple[str, str] | None) -> Award:
    """The award of ``t`` for ``req`` at ``at``; ``override``: (reason, by) when an admin overrode the budget."""
    return Award(
        id=award_contract_id(req.id),
        request_id=req.id,
        provider=t.provider,
        site=t.site,
        gpu_model=req.gpu_model,
        gpus=t.gpus,
        gpus_per_node=t.gpus_per_node,
        price=t.price,
        start=t.start,
        end=t.start + timedelta(days=req.term_days - 1),
        cost_usd=t.cost(req.term_days),
        via=t.via,
        quote_id=t.quote_id,
        at=at,
        override_reason=override[0] if override else None,
        override_by=override[1] if override else None,
    )


def award_words(a: Award) -> str:
    """An award for an event's reason."""
    return (
        f"{a.gpus:,} {a.gpu_model} GPUs from '{a.provider}' at site '{a.site}' ({a.via}), {a.price} USD per GPU-hour, "
        f"{a.start.isoformat()} → {a.end.isoformat()}, cost {a.cost_usd:,} USD"
    )


class Place(NamedTuple):
    """Where a holder award lands, its node size, and the holder's own price there (None: not known)."""

    site: str
    gpus_per_node: int
    price: Decimal | None


def holder_place(
    holder: str,
    gpu_model: str,
    day: date,
    quotes: Iterable[Quote],
    site_provider: Mapping[str, str],
    clusters: Iterable[Cluster],
) -> Place | None:
    """Where a holder award lands: the holder's cheapest quote for the model valid on ``day`` (with its price), else
    a cluster of the holder with that model (with its list price), else the holder's first site with 8 GPUs per
    node and no price; None: the holder has no site."""
    for q in sorted(quotes, key=lambda q: (q.price, q.id)):
        if q.provider == holder and q.gpu_model == gpu_model and valid_on(q, day):
            return Place(q.site, q.gpus_per_node, q.price)
    holder_sites = [s for s, p in site_provider.items() if p == holder]
    for c in clusters:
        if c.site in holder_sites and c.gpu_model == gpu_model:
            return Place(c.site, c.gpus_per_node, c.price_per_gpu_hour_usd)
    return Place(holder_sites[0], DEFAULT_GPUS_PER_NODE, None) if holder_sites else None


def rule_fails(offer: Offer, price: Decimal, start: date) -> str | None:
    """Why the holder's terms fail the clause's match rule, or None when they win."""
    if offer.match_rule == "any_offer":
        return None
    if offer.benchmark_price is not None and price > offer.benchmark_price:
        return f"price {price} USD per GPU-hour above the benchmark {offer.benchmark_price} USD per GPU-hour"
    bench_start = offer.benchmark_start
    if offer.match_rule == "match_price_and_date" and bench_start is not None and start > bench_start:
        return f"start {start.isoformat()} later than the benchmark {bench_start.isoformat()}"
    return None


def award_contract(award: Award) -> tuple[Contract, Cluster]:
    """The reserved contract an award becomes and its one cluster, online over the term."""
    contract = Contract(
        id=award_contract_id(award.request_id),
        provider=award.provider,
        kind=ContractKind.RESERVED,
        start=award.start,
        end=award.end,
        gpu_model=award.gpu_model,
        gpus=award.gpus,
        price_per_gpu_hour_usd=award.price,
        value_usd=award.cost_usd,
        source=f"procurement award for request '{award.request_id}' ({award.via}) on {award.at.isoformat()}",
    )
    cluster = Cluster(
        id=f"{contract.id}-{award.gpu_model.lower()}",
        site=award.site,
        gpu_model=award.gpu_model,
        gpus_per_node=award.gpus_per_node,
        nodes=award.gpus // award.gpus_per_node,
        price_per_gpu_hour_usd=award.price,
        contract=contract.id,
        online_from=award.start,
        online_until=award.end,
    )
    return contract, cluster
