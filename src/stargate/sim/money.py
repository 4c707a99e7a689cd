"""What a simulated run spent: every run as a :class:`~stargate.engine.ledger.RunCharge` in a
:class:`~stargate.engine.ledger.Ledger`, spend by provider and by contract, each commitment's shortfall at the end
of its term and the budget's headroom (the money figures of the ``procurement`` block, docs/reference/cli-simulate.md).

Runs are recorded during the run as plain tuples (cheap) and priced at the end, exactly, by the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from stargate.domain import ContractKind, Fleet
from stargate.engine import FleetIndex
from stargate.engine.budget import BudgetBook
from stargate.engine.ledger import Ledger, RunCharge, charge

if TYPE_CHECKING:
    from stargate.sim.simulator import TraceJobLike


class Run(NamedTuple):
    """One run as the simulator saw it: job, run number, cluster (index), price charged (USD per GPU-hour),
    contract burnt, GPUs and engine times, s."""

    job: int
    number: int
    cluster: int
    price: float
    contract: str | None
    gpus: int
    start_s: float
    end_s: float


def ledger_of(runs: Sequence[Run], jobs: Sequence[TraceJobLike], fleet: Fleet, index: FleetIndex) -> Ledger:
    """The ledger of ``runs`` of ``jobs`` (instants from ``index.epoch``); zero-length runs are left out."""
    team_of = {q.id: q.team for q in fleet.queues}
    epoch = index.epoch
    prices: dict[float, Decimal] = {}
    where = [
        (index.provider_of[c], index.cluster_ids[c], index.region_of[c], index.model_of[c], index.list_price_usd[c])
        for c in range(index.n)
    ]
    charges: list[RunCharge] = []
    add = charges.append
    for r in runs:
        if r.end_s <= r.start_s:
            continue
        price = prices.get(r.price)
        if price is None:
            price = prices[r.price] = Decimal(repr(r.price))
        provider, cluster, region, model, list_price = where[r.cluster]
        job = jobs[r.job]
        add(
            RunCharge(
                f"{job.id}#{r.number}",
                job.id,
                job.queue,
                team_of.get(job.queue, ""),
                provider,
                r.contract,
                cluster,
                region,
                model,
                r.gpus,
                epoch + timedelta(seconds=r.start_s),
                epoch + timedelta(seconds=r.end_s),
                price,
                list_price,
            )
        )
    return Ledger(charges)


def spent_by_contract(runs: Sequence[Run]) -> dict[str, Decimal]:
    """USD spent per contract by ``runs`` (ended runs, for a rebuilt driver), charged as the ledger charges."""
    out: dict[str, Decimal] = {}
    for r in runs:
        if r.contract is not None and r.end_s > r.start_s:
            cost = charge(Decimal(repr(r.price)), r.gpus, r.end_s - r.start_s)
            out[r.contract] = out.get(r.contract, Decimal(0)) + cost
    return out


def money_block(
    ledger: Ledger, fleet: Fleet, index: FleetIndex, first_s: float, end_s: float, budget: BudgetBook | None
) -> dict[str, Any]:
    """Spend by provider and contract, commitment shortfalls at term end, and the budget's figures."""
    by_contract = ledger.by("contract")
    out: dict[str, Any] = {
        "spend_usd": _usd(ledger.total()),
        "spend_by_provider": {k: _usd(v) for k, v in sorted(ledger.by("provider").items())},
        "spend_by_contract": {k: _usd(v) for k, v in sorted(by_contract.items()) if k},
        "commitment_shortfall": _shortfalls(by_contract, fleet, index.epoch, first_s, end_s),
    }
    report = (budget if budget is not None else BudgetBook(fleet)).report()
    out["budget_drawn_usd"] = _usd(report.drawn_usd)
    out["budget_headroom_usd"] = None if report.headroom_usd is None else _usd(report.headroom_usd)
    out["budget_conflicts"] = [
        {"day": c.day.isoformat(), "kind": c.kind, "drawn_usd": _usd(c.drawn_usd), "over_usd": _usd(c.over_usd)}
        for c in report.conflicts
    ]
    return out


def _shortfalls(
    spent: dict[str, Decimal], fleet: Fleet, epoch: datetime, first_s: float, end_s: float
) -> dict[str, dict[str, Any]]:
    """Per commitment: committed − spent at the end of its term. A term that ends after the run is projected at the
    burn rate the run observed (spend ÷ time since the later of the term's start and the first submission)."""
    out: dict[str, dict[str, Any]] = {}
    run_end = epoch + timedelta(seconds=end_s)
    observed_from = epoch + timedelta(seconds=first_s)
    for c in sorted(fleet.contracts, key=lambda c: c.id):
        if c.kind is not ContractKind.COMMITMENT or c.committed_spend_usd is None:
            continue
        tz = epoch.tzinfo
        start = datetime.combine(c.start, time(), tz)
        term_end = datetime.combine(c.end + timedelta(days=1), time(), tz)
        used = spent.get(c.id, Decimal(0))
        projected = term_end > run_end
        at_end = used
        if projected:
            since = max(start, observed_from)
            elapsed = (run_end - since).total_seconds()
            if elapsed > 0:
                rate = used / Decimal(repr(elapsed))
                at_end = used + rate * Decimal(repr((term_end - run_end).total_seconds()))
        out[c.id] = {
            "committed_usd": _usd(c.committed_spend_usd),
            "spent_usd": _usd(used),
            "spent_at_term_end_usd": _usd(at_end),
            "shortfall_usd": _usd(max(Decimal(0), c.committed_spend_usd - at_end)),
            "term_end": c.end.isoformat(),
            "projected": projected,
        }
    return out


def _usd(value: Decimal) -> float:
    """A USD amount for the JSON summary, to the cent."""
    return round(float(value), 2)
