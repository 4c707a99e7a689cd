"""The values capacity planning passes around: the planning problem made plain (inputs), the plan (result) and
its risk. Pure data: no solver, no I/O, no clock. Money here is float USD (a plan is an estimate; the ledger keeps
exact money).

Month indices count from the horizon's first month (0). A month's hours are its days × 24.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

SUPPLY_KINDS = ("owned", "reserved", "commitment", "on_demand")
"""What an existing source of the fleet is: an owned cluster (marginal cost its energy), a reserved contract (paid
used or not), a commitment (a monthly floor, use above it at its price) or on-demand capacity (pay as used)."""

SOURCE_KINDS = (*SUPPLY_KINDS, "market", "build")
"""Every kind of supply a plan row reports: the fleet's, plus what the plan signs (market) and builds (build)."""


@dataclass(frozen=True, slots=True)
class Supply:
    """One source of capacity the fleet already has: GPUs of a model per month and what using them costs."""

    id: str
    """The cluster id (or the contract id of a reserved contract that lists no cluster)."""
    kind: str
    """One of :data:`SUPPLY_KINDS`."""
    provider: str
    gpu_model: str
    capacity: tuple[float, ...]
    """GPUs available in each month of the horizon (0 before it comes online or after it leaves)."""
    marginal_usd_per_gpu_hour: float
    """What one used GPU-hour costs on top of fixed payments (0 for reserved; price for commitment and on demand;
    energy for owned)."""
    contract: str | None = None
    building: str | None = None
    site: str | None = None
    online_month: int | None = None
    """Month its building comes online when that lies inside the horizon and is not yet a fact (delay risk applies);
    None otherwise."""


@dataclass(frozen=True, slots=True)
class FixedPayment:
    """Cash the fleet pays whatever the plan does: a reserved contract's instalments or a building's capex."""

    ref: str
    """The contract or building id."""
    kind: str
    """'reserved' or 'capex'."""
    provider: str
    usd: tuple[float, ...]
    """Cash paid in each month of the horizon, USD."""


@dataclass(frozen=True, slots=True)
class Commitment:
    """A spend commitment: each month of its term pays at least ``floor_usd``; use above it at the sources' prices."""

    id: str
    provider: str
    floor_usd: tuple[float, ...]
    """The monthly floor in each month of the horizon (committed spend ÷ term months inside the term, else 0)."""
    sources: tuple[str, ...]
    """Ids of the supplies drawn under it."""


@dataclass(frozen=True, slots=True)
class MarketChoice:
    """Capacity the plan may sign: GPUs of a model at a price, starting after a lead time, for a fixed term."""

    id: str
    provider: str
    gpu_model: str
    price_usd_per_gpu_hour: float
    lead_months: int
    term_months: int
    max_gpus_per_month: float | None
    """Most GPUs signed in one month; None: no limit."""
    can_sign: tuple[bool, ...]
    """Whether it may be signed in each month (availability and exclusivity applied)."""
    site: str | None = None
    """Where awarded capacity lands (from the price book), when known."""


@dataclass(frozen=True, slots=True)
class BuildChoice:
    """Buildings the plan may start at an owned site: whole buildings only."""

    id: str
    site: str
    provider: str
    gpu_model: str
    gpus_per_building: int
    it_mw_per_building: float
    capex_usd_per_building: float
    build_months: int
    max_buildings: int
    earliest_month: int
    marginal_usd_per_gpu_hour: float
    """Energy (or list price) of a used GPU-hour once built."""


@dataclass(frozen=True, slots=True)
class RofrRule:
    """First refusal in a month: a non-holder's option may be signed only once every holder option for the model
    is signed to its limit, or when the holder has no option that month."""

    contract: str
    holder: str
    gpu_model: str
    months: tuple[int, ...]
    """Months the clause covers."""


@dataclass(frozen=True, slots=True)
class SitePower:
    """What more may be built at a site: IT MW left under its envelope after every building of the fleet."""

    site: str
    headroom_mw: float


@dataclass(frozen=True, slots=True)
class DemandLine:
    """One demand series in GPUs of its model per month (curves and PFLOP-days already turned into GPUs)."""

    id: str
    kind: str
    """'training' or 'inference'."""
    gpu_model: str
    gpus: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """The planning problem made plain: everything the LP and the risk model read."""

    scenario: str
    months: tuple[date, ...]
    """First day of each month of the horizon."""
    hours: tuple[float, ...]
    """Hours in each month."""
    demand: tuple[DemandLine, ...]
    supplies: tuple[Supply, ...]
    fixed: tuple[FixedPayment, ...]
    commitments: tuple[Commitment, ...]
    markets: tuple[MarketChoice, ...]
    builds: tuple[BuildChoice, ...]
    rofr: tuple[RofrRule, ...]
    site_power: tuple[SitePower, ...]
    envelope_usd: tuple[float | None, ...]
    """Budget envelope in each month: what may have been spent by its end, USD; None where no budget applies."""
    unmet_penalty_usd_per_gpu_hour: float | None
    """None: demand must be met."""
    over_budget_penalty: float | None
    """USD of cost per USD past the envelope; None: the envelope is a hard limit."""

    def models(self) -> tuple[str, ...]:
        """GPU models with demand, in first-seen order."""
        return tuple(dict.fromkeys(d.gpu_model for d in self.demand))

    def demand_gpus(self, gpu_model: str) -> tuple[float, ...]:
        """Total demand for a model per month, GPUs."""
        lines = [d.gpus for d in self.demand if d.gpu_model == gpu_model]
        return tuple(sum(values) for values in zip(*lines, strict=True)) if lines else (0.0,) * len(self.months)


@dataclass(frozen=True, slots=True)
class Action:
    """What the plan says to do: sign GPUs with a provider from a month, or start a building."""

    kind: str
    """'sign' or 'build'."""
    option: str
    """The market or build option id."""
    provider: str
    gpu_model: str
    month: int
    """Month of signing or of starting the building."""
    online_month: int
    """Month the capacity starts."""
    gpus: int
    """GPUs signed, or GPUs the buildings hold."""
    term_months: int | None
    """Months a signing runs; None for a building."""
    price_usd_per_gpu_hour: float | None
    cost_usd: float
    """What the action costs over its term (signing) or in capex (building), USD."""
    buildings: int = 0
    site: str | None = None


@dataclass(frozen=True, slots=True)
class MonthRow:
    """One month of a plan."""

    month: date
    demand_gpus: dict[str, float]
    """By GPU model."""
    demand_by_kind: dict[str, float]
    """By 'training' / 'inference', GPUs."""
    supply_gpus: dict[str, float]
    """Capacity available by source kind (:data:`SOURCE_KINDS`), GPUs."""
    used_gpus: dict[str, float]
    """Capacity used by source kind, GPUs."""
    shortfall_gpus: dict[str, float]
    """Unmet demand by GPU model, GPUs."""
    spend_usd: float
    """Cash paid in the month: fixed payments, commitment floors and use above them, signed contracts, capex,
    energy, USD."""
    cumulative_spend_usd: float
    envelope_usd: float | None


@dataclass(frozen=True, slots=True)
class Plan:
    """A solved plan: the monthly table, the actions and the totals."""

    scenario: str
    status: str
    """'optimal' (or the solver's word for a feasible, not proven optimal, plan)."""
    objective_usd: float
    rows: tuple[MonthRow, ...]
    actions: tuple[Action, ...]
    unmet_gpu_hours: float
    spend_usd: float
    first_shortfall_month: date | None
    over_budget_usd: float = 0.0
    """Most the cumulative spend exceeds the envelope in any month (only with a soft budget), USD."""
    committed_after_horizon_usd: float = 0.0
    """What the plan's signings pay after the horizon (not in ``spend_usd``; the budget counts it), USD."""
    solve_seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (dates in ISO 8601, money in USD)."""
        return {
            "scenario": self.scenario,
            "status": self.status,
            "objective_usd": round(self.objective_usd, 2),
            "unmet_gpu_hours": round(self.unmet_gpu_hours, 1),
            "spend_usd": round(self.spend_usd, 2),
            "over_budget_usd": round(self.over_budget_usd, 2),
            "committed_after_horizon_usd": round(self.committed_after_horizon_usd, 2),
            "first_shortfall_month": _month(self.first_shortfall_month),
            "solve_seconds": round(self.solve_seconds, 4),
            "notes": list(self.notes),
            "months": [_row(r) for r in self.rows],
            "actions": [_action(a, self.rows) for a in self.actions],
        }


@dataclass(frozen=True, slots=True)
class Percentiles:
    """P10, P50 and P90 of one figure over the scenarios."""

    p10: float
    p50: float
    p90: float

    def to_dict(self) -> dict[str, float]:
        """As JSON-ready data."""
        return {"p10": round(self.p10, 2), "p50": round(self.p50, 2), "p90": round(self.p90, 2)}


@dataclass(frozen=True, slots=True)
class RiskSummary:
    """What the Monte Carlo scenarios say about a plan."""

    scenarios: int
    seed: int
    shortfall_gpu_hours: Percentiles
    """Unmet GPU-hours over the horizon."""
    spend_usd: Percentiles
    """Cash spent over the horizon, USD."""
    budget_breach_probability: float
    """Share of scenarios whose cumulative spend passes the envelope in some month."""
    monthly_shortfall_gpus: tuple[Percentiles, ...]
    """Shortfall per month (all models), GPUs: the P10–P90 band."""
    first_breach_month: date | None = None
    """The earliest month a scenario breached the budget, if any."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {
            "scenarios": self.scenarios,
            "seed": self.seed,
            "shortfall_gpu_hours": self.shortfall_gpu_hours.to_dict(),
            "spend_usd": self.spend_usd.to_dict(),
            "budget_breach_probability": round(self.budget_breach_probability, 4),
            "first_breach_month": _month(self.first_breach_month),
            "monthly_shortfall_gpus": [p.to_dict() for p in self.monthly_shortfall_gpus],
            **self.extra,
        }


def _month(day: date | None) -> str | None:
    return None if day is None else day.strftime("%Y-%m")


def _row(row: MonthRow) -> dict[str, Any]:
    return {
        "month": _month(row.month),
        "demand_gpus": {k: round(v, 1) for k, v in row.demand_gpus.items()},
        "demand_by_kind": {k: round(v, 1) for k, v in row.demand_by_kind.items()},
        "supply_gpus": {k: round(v, 1) for k, v in row.supply_gpus.items()},
        "used_gpus": {k: round(v, 1) for k, v in row.used_gpus.items()},
        "shortfall_gpus": {k: round(v, 1) for k, v in row.shortfall_gpus.items()},
        "spend_usd": round(row.spend_usd, 2),
        "cumulative_spend_usd": round(row.cumulative_spend_usd, 2),
        "envelope_usd": None if row.envelope_usd is None else round(row.envelope_usd, 2),
    }


def _action(action: Action, rows: tuple[MonthRow, ...]) -> dict[str, Any]:
    def month(index: int) -> str | None:
        return _month(rows[index].month) if 0 <= index < len(rows) else None

    return {
        "kind": action.kind,
        "option": action.option,
        "provider": action.provider,
        "site": action.site,
        "gpu_model": action.gpu_model,
        "month": month(action.month),
        "online_month": month(action.online_month),
        "gpus": action.gpus,
        "buildings": action.buildings,
        "term_months": action.term_months,
        "price_usd_per_gpu_hour": action.price_usd_per_gpu_hour,
        "cost_usd": round(action.cost_usd, 2),
    }
