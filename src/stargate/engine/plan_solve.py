"""Solve the capacity plan and read the answer: the monthly table, the actions, the totals; or say in words why
there is no plan.

Pure: the solver is passed in (:func:`stargate.planning.highs.highs_solver` in practice). When the program is
infeasible, it is solved again with one family relaxed at a time (demand, budget, first refusal, site power) and
:class:`PlanInfeasible` names the families whose relaxation makes it feasible, with the figures that show why.
"""

import math
from collections.abc import Sequence
from datetime import date

import numpy as np

from stargate.engine.plan_inputs import HOURS_PAST_HORIZON
from stargate.engine.plan_model import RELAXABLE, LinearProgram, LpSolution, Solver, build_lp
from stargate.engine.plan_types import SOURCE_KINDS, Action, MonthRow, Plan, PlanInputs

MIN_ACTION_GPUS = 0.5
"""Shortfall below this many GPUs is solver noise, not a shortfall month."""
WHOLE_GPU_TOLERANCE = 1e-6
"""Signed GPUs within this of a whole number count as that number (the solver's tolerance)."""

FAMILY_WORDS = {
    "demand": "demand (allowing unmet GPUs)",
    "budget": "the budget",
    "rofr": "first refusal",
    "power": "site power",
}


class PlanInfeasible(Exception):
    """No plan comes out: the program is infeasible (``families`` names what binds), unbounded, or the solver
    failed or ran out of time without a plan. ``message`` says which in words."""

    def __init__(self, message: str, families: tuple[str, ...] = (), status: str = "infeasible") -> None:
        super().__init__(message)
        self.message = message
        self.families = families
        self.status = status


def usd_words(usd: float) -> str:
    """Money for people: ``312.5 B USD``, ``4.2 M USD`` or ``950 USD``."""
    if abs(usd) >= 1e9:
        return f"{usd / 1e9:,.1f} B USD"
    if abs(usd) >= 1e6:
        return f"{usd / 1e6:,.1f} M USD"
    return f"{usd:,.0f} USD"


def _ym(day: date) -> str:
    return day.strftime("%Y-%m")


def signing_cost(price: float, lead: int, term: int, month: int, hours: Sequence[float]) -> float:
    """What one GPU signed in ``month`` costs over its whole term, USD (730 h for months past the horizon)."""
    total = 0.0
    for t in range(month + lead, month + lead + term):
        total += price * (hours[t] if t < len(hours) else HOURS_PAST_HORIZON)
    return total


def solve_plan(inputs: PlanInputs, solver: Solver) -> Plan:
    """The cheapest plan for ``inputs``. Raises :class:`PlanInfeasible` when there is none (with the reason)."""
    lp = build_lp(inputs)
    solution = solver(lp)
    if solution.x is not None and solution.status in ("optimal", "time_limit"):
        return decode(inputs, lp, solution)
    if solution.status == "infeasible":
        families, message = diagnose(inputs, solver)
        raise PlanInfeasible(message, families, "infeasible")
    if solution.status == "unbounded":
        negative = [name for name, cost in zip(lp.col_names, lp.c, strict=True) if cost < 0][:5]
        detail = (
            f"these variables have a negative cost: {', '.join(negative)}"
            if negative
            else "no cost is negative, so some variable has no bound the solver could find"
        )
        raise PlanInfeasible(
            f"The planning problem is unbounded (spend could fall without end): {detail}.", (), "unbounded"
        )
    if solution.status == "time_limit":
        raise PlanInfeasible(
            f"The solver reached its time limit after {solution.seconds:.1f} s without finding a plan; allow it more "
            "time or shorten the horizon.",
            (),
            "time_limit",
        )
    raise PlanInfeasible(f"The solver failed: {solution.message or 'no reason given'}.", (), "error")


def decode(inputs: PlanInputs, lp: LinearProgram, solution: LpSolution) -> Plan:
    """The plan a solution of ``lp`` describes."""
    x = solution.x
    assert x is not None
    n = len(inputs.months)
    index = lp.index

    def value(kind: str, ref: str, t: int) -> float:
        j = index.get((kind, ref, t))
        return 0.0 if j is None else max(0.0, float(x[j]))

    models = inputs.models()
    signed = {(o.id, m): value("sign", o.id, m) for o in inputs.markets for m in range(n)}
    started = {  # the program counts the buildings started by each month where one may start
        (b.id, m): round(value("started", b.id, m)) - round(value("started", b.id, m - 1))
        if ("started", b.id, m) in index
        else 0
        for b in inputs.builds
        for m in range(n)
    }
    rows: list[MonthRow] = []
    cumulative = 0.0
    for t in range(n):
        supply = dict.fromkeys(SOURCE_KINDS, 0.0)
        used = dict.fromkeys(SOURCE_KINDS, 0.0)
        for s in inputs.supplies:
            supply[s.kind] += s.capacity[t]
            used[s.kind] += value("use", s.id, t)
        for o in inputs.markets:
            for m in range(max(0, t - o.lead_months - o.term_months + 1), t - o.lead_months + 1):
                supply["market"] += signed.get((o.id, m), 0.0)
        for b in inputs.builds:
            supply["build"] += b.gpus_per_building * sum(started[(b.id, m)] for m in range(0, t - b.build_months + 1))
            used["build"] += value("bld", b.id, t)
        for g in models:
            used["market"] += value("mkt", g, t)
        by_kind: dict[str, float] = {}
        for d in inputs.demand:
            by_kind[d.kind] = by_kind.get(d.kind, 0.0) + d.gpus[t]
        spend = lp.const_usd[t] + value("spend", "", t) * lp.scale
        cumulative += spend
        rows.append(
            MonthRow(
                month=inputs.months[t],
                demand_gpus={g: inputs.demand_gpus(g)[t] for g in models},
                demand_by_kind=by_kind,
                supply_gpus=supply,
                used_gpus=used,
                shortfall_gpus={g: value("unmet", g, t) for g in models},
                spend_usd=spend,
                cumulative_spend_usd=cumulative,
                envelope_usd=inputs.envelope_usd[t],
            )
        )
    actions = _actions(inputs, signed, started)
    unmet_hours = sum(sum(r.shortfall_gpus.values()) * h for r, h in zip(rows, inputs.hours, strict=True))
    first_short = next((r.month for r in rows if sum(r.shortfall_gpus.values()) >= MIN_ACTION_GPUS), None)
    over = max((value("slack", "", t) * lp.scale for t in range(n)), default=0.0)
    notes: list[str] = []
    if solution.status == "time_limit":
        notes.append("The solver stopped at its time limit: the plan is feasible but not proven optimal.")
    after = value("tail", "", -1) * lp.scale
    if after >= 0.01:
        notes.append(
            f"Signings commit {usd_words(after)} more after the horizon; the budget counts it in the last month."
        )
    objective = (float(np.dot(lp.c, x)) + lp.offset) * lp.scale
    return Plan(
        scenario=inputs.scenario,
        status=solution.status,
        objective_usd=objective,
        rows=tuple(rows),
        actions=actions,
        unmet_gpu_hours=unmet_hours,
        spend_usd=cumulative,
        first_shortfall_month=first_short,
        over_budget_usd=over,
        committed_after_horizon_usd=after,
        solve_seconds=solution.seconds,
        notes=tuple(notes),
    )


def _actions(
    inputs: PlanInputs, signed: dict[tuple[str, int], float], started: dict[tuple[str, int], int]
) -> tuple[Action, ...]:
    out: list[Action] = []
    for o in inputs.markets:
        for m in range(len(inputs.months)):
            # Whole GPUs, rounded down (a hair of solver tolerance aside): an action never costs more than the
            # plan, so it never takes a hard budget past its envelope.
            whole = math.floor(signed.get((o.id, m), 0.0) + WHOLE_GPU_TOLERANCE)
            if whole < 1:
                continue
            price = o.price_usd_per_gpu_hour
            out.append(
                Action(
                    kind="sign",
                    option=o.id,
                    provider=o.provider,
                    gpu_model=o.gpu_model,
                    month=m,
                    online_month=m + o.lead_months,
                    gpus=whole,
                    term_months=o.term_months,
                    price_usd_per_gpu_hour=price,
                    cost_usd=whole * signing_cost(price, o.lead_months, o.term_months, m, inputs.hours),
                    site=o.site,
                )
            )
    for b in inputs.builds:
        for m in range(len(inputs.months)):
            count = started.get((b.id, m), 0)
            if count < 1:
                continue
            out.append(
                Action(
                    kind="build",
                    option=b.id,
                    provider=b.provider,
                    gpu_model=b.gpu_model,
                    month=m,
                    online_month=m + b.build_months,
                    gpus=count * b.gpus_per_building,
                    term_months=None,
                    price_usd_per_gpu_hour=None,
                    cost_usd=count * b.capex_usd_per_building,
                    buildings=count,
                    site=b.site,
                )
            )
    out.sort(key=lambda a: (a.month, a.kind, a.option))
    return tuple(out)


def _relevant(inputs: PlanInputs, family: str) -> bool:
    if family == "demand":
        return inputs.unmet_penalty_usd_per_gpu_hour is None
    if family == "budget":
        return inputs.over_budget_penalty is None and any(e is not None for e in inputs.envelope_usd)
    if family == "rofr":
        return bool(inputs.rofr)
    return bool(inputs.site_power) and bool(inputs.builds)


def bound_spend(inputs: PlanInputs) -> list[float]:
    """Cash each month the fleet is bound to whatever the plan does: fixed payments and commitment floors, USD."""
    n = len(inputs.months)
    out = [0.0] * n
    for f in inputs.fixed:
        for t in range(n):
            out[t] += f.usd[t]
    for c in inputs.commitments:
        for t in range(n):
            out[t] += c.floor_usd[t]
    return out


def diagnose(inputs: PlanInputs, solver: Solver) -> tuple[tuple[str, ...], str]:
    """Which families bind (relaxing each alone makes the plan feasible) and the reason in words."""
    tried = [f for f in RELAXABLE if _relevant(inputs, f)]
    feasible: dict[str, tuple[LinearProgram, LpSolution]] = {}
    for family in tried:
        lp = build_lp(inputs, relax=(family,))
        solution = solver(lp)
        if solution.x is not None and solution.status in ("optimal", "time_limit"):
            feasible[family] = (lp, solution)
    binding = tuple(f for f in tried if f in feasible)
    details = [_detail(inputs, f, *feasible[f], solver=solver) for f in binding]
    if "budget" in binding:
        headline = "The plan cannot meet demand within the budget"
    elif "demand" in binding:
        headline = "The fleet and the options cannot meet demand"
    elif "rofr" in binding:
        headline = "First refusal keeps the plan from meeting demand"
    elif "power" in binding:
        headline = "Site power keeps the plan from meeting demand"
    else:
        headline = "The plan cannot meet demand"
    if not binding:
        bound = _bound_over_envelope(inputs)
        body = f": {bound}. " if bound else ". "
        names = ", ".join(FAMILY_WORDS[f] for f in tried) or "none applies"
        return tuple(tried), (
            f"{headline}{body}Relaxing one family alone ({names}) does not make it feasible: they bind together."
        )
    words = [FAMILY_WORDS[f] for f in binding]
    relax = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    each = "makes" if len(words) == 1 else "each makes"
    first, *rest = details
    more = "".join(f" {d[0].upper()}{d[1:]}." for d in rest)
    return binding, f"{headline}: {first}.{more} Relaxing {relax} {each} it feasible."


def _bound_over_envelope(inputs: PlanInputs) -> str | None:
    bound = 0.0
    for t, spend in enumerate(bound_spend(inputs)):
        bound += spend
        limit = inputs.envelope_usd[t]
        if limit is not None and bound > limit * (1 + 1e-9):
            return (
                f"from {_ym(inputs.months[t])} the envelope ({usd_words(limit)}) is below the spend the fleet is "
                f"already bound to ({usd_words(bound)})"
            )
    return None


def _detail(inputs: PlanInputs, family: str, lp: LinearProgram, solution: LpSolution, *, solver: Solver) -> str:
    if family == "demand" and _relevant(inputs, "budget"):
        # With the budget still in force, where demand is left unmet is the budget's choice, not a lack of
        # capacity: name what cannot be had at any price when there is such a month.
        free = build_lp(inputs, relax=("demand", "budget"))
        unbound = solver(free)
        if unbound.x is not None and unbound.status in ("optimal", "time_limit"):
            found = _first_unmet(inputs, free, unbound)
            if found is not None:
                return f"{found} at any price"
    x = solution.x
    assert x is not None
    n = len(inputs.months)

    def value(kind: str, ref: str, t: int) -> float:
        j = lp.index.get((kind, ref, t))
        return 0.0 if j is None else float(x[j])

    if family == "budget":
        bound = _bound_over_envelope(inputs)
        if bound is not None:
            return bound
        spent = 0.0
        for t in range(n):
            spent += lp.const_usd[t] + value("spend", "", t) * lp.scale
            limit = inputs.envelope_usd[t]
            if limit is not None and spent > limit * (1 + 1e-7) + 1.0:
                return (
                    f"by the end of {_ym(inputs.months[t])} the cheapest plan that meets demand has spent "
                    f"{usd_words(spent)} against an envelope of {usd_words(limit)}"
                )
        return "the cheapest plan that meets demand passes the envelope"
    if family == "demand":
        found = _first_unmet(inputs, lp, solution)
        return "some demand cannot be met" if found is None else f"{found} within the budget"
    if family == "rofr":
        rules = sorted({f"{r.contract} (holder {r.holder}, {r.gpu_model})" for r in inputs.rofr})
        return (
            f"other providers may sign only once the holder's options are full, under {', '.join(rules)}, and the "
            "holder cannot supply enough in time"
        )
    sites = ", ".join(f"{p.site} ({p.headroom_mw:,.1f} MW of IT power left)" for p in inputs.site_power)
    return f"the buildings demand needs do not fit the power left at {sites}"


def _first_unmet(inputs: PlanInputs, lp: LinearProgram, solution: LpSolution) -> str | None:
    """The first month a solution leaves demand unmet, the model with the most, in words; None when none is."""
    x = solution.x
    assert x is not None
    for t in range(len(inputs.months)):
        short = [
            (float(x[lp.index[("unmet", g, t)]]) if ("unmet", g, t) in lp.index else 0.0, g) for g in inputs.models()
        ]
        worst = max(short, default=(0.0, ""))
        if worst[0] >= MIN_ACTION_GPUS:
            return (
                f"from {_ym(inputs.months[t])} {worst[0]:,.0f} GPUs of {worst[1]} cannot be had (demand "
                f"{inputs.demand_gpus(worst[1])[t]:,.0f} GPUs)"
            )
    return None
