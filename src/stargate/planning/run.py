"""One planning run, end to end: demand from the scenario, the plan's inputs, the plan (HiGHS by default) and, when
asked, its Monte Carlo risk. The CLI (``stargate plan``) and the server (``POST /api/v1/plans``, with
``workers=0``) both call :func:`compute`; :func:`run_to_dict` is the JSON both print or store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from stargate.domain.fleet import Fleet
from stargate.domain.planning import PlanScenario
from stargate.engine.plan_demand import demand_lines, month_starts
from stargate.engine.plan_inputs import build_inputs
from stargate.engine.plan_model import Solver
from stargate.engine.plan_solve import solve_plan
from stargate.engine.plan_types import Plan, PlanInputs, RiskSummary

Progress = Callable[[int, int], None]
"""Called with (scenarios done, scenarios in all) as the Monte Carlo run goes."""


@dataclass(frozen=True, slots=True)
class PlanRun:
    """What one planning run produced: the problem made plain, the plan and its risk (None: no scenarios ran)."""

    inputs: PlanInputs
    plan: Plan
    risk: RiskSummary | None
    description: str = ""
    """The scenario's description (text from the file: escape it before showing it as HTML)."""


def compute(
    scenario: PlanScenario,
    fleet: Fleet,
    history: Mapping[str, Sequence[tuple[date, float]]] | None = None,
    *,
    scenarios: int = 0,
    seed: int = 0,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
    solver: Solver | None = None,
) -> PlanRun:
    """Plan ``scenario`` over ``fleet`` and, with ``scenarios`` > 0, run that many Monte Carlo scenarios of the plan.

    ``history`` maps each ``fit`` series id to its monthly GPU averages. ``workers=0`` runs the scenarios in this
    process (no Ray); otherwise see :func:`stargate.planning.montecarlo.run_risk`.

    Raises :class:`~stargate.engine.plan_solve.PlanInfeasible` when no plan exists (its message says why),
    ``ValueError`` for demand out of range or bad counts, and
    :class:`~stargate.planning.montecarlo.RayUnavailable` when Ray is needed and cannot run.
    """
    if scenarios < 0:
        raise ValueError(f"found {scenarios} scenarios, expected 0 or more")
    months = month_starts(scenario.start, scenario.months)
    demand = demand_lines(scenario, fleet.catalogue(), months, history or {})
    inputs = build_inputs(fleet, scenario, demand)
    if solver is None:
        from stargate.planning.highs import highs_solver

        solver = highs_solver()
    plan = solve_plan(inputs, solver)
    risk = None
    if scenarios > 0:
        from stargate.planning.montecarlo import run_risk

        risk = run_risk(
            inputs,
            plan,
            scenario.risk,
            scenarios,
            seed,
            workers=workers,
            ray_address=ray_address,
            progress=progress,
        )
    return PlanRun(inputs=inputs, plan=plan, risk=risk, description=scenario.description)


def run_to_dict(run: PlanRun) -> dict[str, Any]:
    """The run as JSON-ready data: ``{"scenario": name, "plan": {...}, "risk": {...} or null}``."""
    return {
        "scenario": run.inputs.scenario,
        "plan": run.plan.to_dict(),
        "risk": None if run.risk is None else run.risk.to_dict(),
    }


@dataclass(frozen=True, slots=True)
class YearSpend:
    """Cash of one calendar year of the horizon against the budget envelope."""

    year: int
    months: int
    """Months of the year inside the horizon."""
    spend_usd: float
    cumulative_usd: float
    """Spent from the horizon's start to the end of the year's last month in the horizon, USD."""
    envelope_usd: float | None
    """The envelope at that month, USD; None: no budget applies."""


def spend_by_year(plan: Plan) -> list[YearSpend]:
    """The plan's cash per calendar year, with the cumulative spend and the envelope at each year's last month."""
    years: dict[int, list[Any]] = {}
    for row in plan.rows:
        years.setdefault(row.month.year, []).append(row)
    return [
        YearSpend(
            year=year,
            months=len(rows),
            spend_usd=sum(r.spend_usd for r in rows),
            cumulative_usd=rows[-1].cumulative_spend_usd,
            envelope_usd=rows[-1].envelope_usd,
        )
        for year, rows in years.items()
    ]


def usd_text(usd: float) -> str:
    """Money for people: ``312.5 B USD``, ``4.2 M USD``, ``950 USD``."""
    if abs(usd) >= 1e9:
        return f"{usd / 1e9:,.1f} B USD"
    if abs(usd) >= 1e6:
        return f"{usd / 1e6:,.1f} M USD"
    return f"{usd:,.0f} USD"


def headline(run: PlanRun) -> list[tuple[str, str]]:
    """The run's headline figures as (label, text with its unit), in the order the report and the CLI show them."""
    plan, risk = run.plan, run.risk
    first = plan.first_shortfall_month
    out = [
        ("First month of shortfall", first.strftime("%Y-%m") if first else "none: demand is met in every month"),
        ("Unmet demand (plan)", f"{plan.unmet_gpu_hours:,.0f} GPU-hours"),
        ("Spend over the horizon (plan)", usd_text(plan.spend_usd)),
    ]
    if plan.over_budget_usd > 0:
        out.append(("Most over the budget envelope", usd_text(plan.over_budget_usd)))
    if risk is None:
        out.append(("Risk", "not run (0 Monte Carlo scenarios)"))
        return out
    s, p = risk.shortfall_gpu_hours, risk.spend_usd
    out += [
        ("P90 shortfall", f"{s.p90:,.0f} GPU-hours (P10 {s.p10:,.0f}, P50 {s.p50:,.0f} GPU-hours)"),
        ("Spend P10 / P50 / P90", f"{usd_text(p.p10)} / {usd_text(p.p50)} / {usd_text(p.p90)}"),
        (
            "Probability of a budget breach",
            f"{risk.budget_breach_probability * 100:.1f} % of {risk.scenarios:,} scenarios (seed {risk.seed})"
            + (f", first in {risk.first_breach_month.strftime('%Y-%m')}" if risk.first_breach_month else ""),
        ),
    ]
    return out
