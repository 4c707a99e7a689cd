"""Monte Carlo risk of a FIXED plan: what its shortfall and spend become when buildings slip, demand drifts,
providers fail and capex overruns. No re-optimisation: the plan's signings and builds stay as they are.

Pure: no I/O, no clock. Scenario k draws from ``numpy.random.default_rng([seed, k])`` so an outcome depends only on
(inputs, plan, risk, seed, k), never on how scenarios are split over workers. Draws, in this order:

1. ε ~ Normal(0, ``demand_growth_sigma``): every demand line × exp(ε × t ÷ 12) in month t.
2. One delay per building not yet energised (each fleet building with a supply whose ``online_month`` is set, in
   first-seen order, then each ``build`` action of the plan): round(triangular) months, half up. Its whole capacity
   profile from its online month moves later by that many months (nothing before it; what passes the horizon is
   lost). Capex is still paid on schedule.
3. One capex multiplier per fleet capex payment and per build action (triangular ``capex_overrun``).
4. Outages: each provider (sorted by id) each month starts one with probability p; it lasts ``months`` months and
   removes ``capacity_lost`` of every source of that provider (market signings included; overlapping outages do not
   compound). Signings are paid used or not.

Dispatch per GPU model per month: cheapest marginal first up to demand. A commitment's use is free up to its
monthly floor (the floor is paid anyway; shared greedily over its sources in order) and costs its price above it.
As in the plan's LP, a source whose marginal cost is above the unmet penalty is left idle (unmet is cheaper).
With a hard budget, paid use is kept from the cheapest to the dearest only as far as cumulative spend stays within
the envelope in every month, given the cash already committed (fixed payments, capex × overrun, signings, commitment
floors): the plan's LP does the same, so a plan whose budget binds is not reported as breaching it by its own
dispatch; a breach then comes from committed cash (overruns) or recourse.
Shortfall = demand − used (≥ 0); with ``recourse_usd_per_gpu_hour`` it is bought at that price (it counts in the
spend and is still reported as shortfall). Spend per month = fixed payments (capex × overrun) + commitments
(max(floor, use × price × hours)) + energy and on-demand use + signings + new-build capex × overrun + recourse.
A scenario breaches the budget when its cumulative spend passes the envelope in some month (in the last month with
what the plan's signings pay after the horizon, ``Plan.committed_after_horizon_usd``, as the plan's LP counts it;
that tail is not in the scenario's spend, as it is not in the plan's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

from stargate.domain.planning import Risk, Triangular
from stargate.engine.plan_types import Percentiles, Plan, PlanInputs, RiskSummary

Array = NDArray[np.float64]

_FREE, _PAID, _ALL = 1, 2, 0
_BREACH_RTOL = 1e-9
_BREACH_ATOL_USD = 1e-3


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one scenario did to the plan."""

    shortfall_gpu_hours: float
    """Unmet GPU-hours over the horizon."""
    spend_usd: float
    """Cash spent over the horizon, USD."""
    breached: bool
    """Whether cumulative spend passed the envelope in some month."""
    first_breach_month: int | None
    """Index of the first month it did."""
    monthly_shortfall_gpus: tuple[float, ...]
    """Unmet GPUs (all models) in each month."""


@dataclass(frozen=True, slots=True)
class _Delay:
    rows: tuple[int, ...]
    """Source rows whose capacity moves."""
    online_month: int


@dataclass(frozen=True, slots=True)
class RiskModel:
    """A plan made ready for many scenarios: arrays built once, read by :func:`evaluate`. Pickles cheaply."""

    hours: Array
    """(T,) hours per month."""
    demand: Array
    """(M, T) GPUs demanded per model."""
    capacity: Array
    """(S, T) GPUs of each source row (fleet supplies, then signings, then builds) before any risk."""
    row_provider: NDArray[np.intp]
    """(S,) provider index of each row."""
    providers: int
    delays: tuple[_Delay, ...]
    fixed_usd: Array
    """(T,) payments no risk changes: reserved contracts and signings."""
    capex_usd: Array
    """(K, T) capex payments an overrun multiplies: fleet buildings, then build actions."""
    unit_row: NDArray[np.intp]
    """(U,) dispatch units in dispatch order (by model, then marginal): the row each draws on."""
    unit_part: NDArray[np.intp]
    """(U,) whole row, or a commitment row's free or paid tranche."""
    unit_cost: Array
    """(U,) USD per GPU-hour paid per use outside commitments."""
    unit_enabled: NDArray[np.bool_]
    """(U,) False where the marginal is above the unmet penalty."""
    unit_price: Array
    """(U,) USD per GPU-hour a unit's use adds to the spend (commitment use above the floor included)."""
    price_order: NDArray[np.intp]
    """Units from the cheapest use to the dearest: the order the budget keeps them in."""
    hard_budget: bool
    """Whether use is held within the envelope (a hard budget with an envelope somewhere)."""
    segment_model: NDArray[np.intp]
    """Model index of each run of consecutive units."""
    segment_start: NDArray[np.intp]
    commit_floor: Array
    """(C, T) monthly floors."""
    commit_rows: tuple[tuple[int, ...], ...]
    commit_price: tuple[tuple[float, ...], ...]
    commit_weight: Array
    """(C, U) price of each unit drawn under a commitment (0 elsewhere)."""
    envelope: Array
    """(T,) envelope, +inf where no budget applies."""
    tail_usd: float
    """What the plan's signings pay after the horizon: not spend of the horizon, but the last month's budget counts it
    (as the plan's LP does)."""
    risk: Risk

    @property
    def months(self) -> int:
        """Months in the horizon."""
        return int(self.hours.shape[0])


def prepare(inputs: PlanInputs, plan: Plan, risk: Risk) -> RiskModel:
    """Turn the inputs and the plan's actions into the arrays every scenario reads."""
    months = len(inputs.months)
    hours = np.asarray(inputs.hours, dtype=np.float64)
    models = inputs.models()
    model_index = {m: i for i, m in enumerate(models)}
    demand = np.array([inputs.demand_gpus(m) for m in models], dtype=np.float64).reshape(len(models), months)

    rows: list[Array] = []
    row_model: list[str] = []
    row_provider_name: list[str] = []
    row_marginal: list[float] = []
    fixed = np.zeros(months)
    capex: list[Array] = []
    delays: list[_Delay] = []
    building_rows: dict[str, list[int]] = {}
    building_month: dict[str, int] = {}

    for supply in inputs.supplies:
        index = len(rows)
        rows.append(_profile(supply.capacity, months))
        row_model.append(supply.gpu_model)
        row_provider_name.append(supply.provider)
        row_marginal.append(supply.marginal_usd_per_gpu_hour)
        if supply.online_month is not None:
            key = supply.building or supply.id
            building_rows.setdefault(key, []).append(index)
            building_month.setdefault(key, supply.online_month)
    delays.extend(_Delay(tuple(r), building_month[k]) for k, r in building_rows.items())
    for payment in inputs.fixed:
        usd = _profile(payment.usd, months)
        if payment.kind == "capex":
            capex.append(usd)
        else:
            fixed += usd
    supply_rows = {s.id: i for i, s in enumerate(inputs.supplies)}

    build_choices = {b.id: b for b in inputs.builds}
    for action in plan.actions:
        capacity = np.zeros(months)
        if action.kind == "sign":
            term = action.term_months or 0
            lo, hi = max(action.online_month, 0), min(action.online_month + term, months)
            if lo < hi:
                capacity[lo:hi] = action.gpus
                fixed[lo:hi] += action.gpus * (action.price_usd_per_gpu_hour or 0.0) * hours[lo:hi]
            marginal = 0.0
        elif action.kind == "build":
            choice = build_choices.get(action.option)
            capacity[max(action.online_month, 0) :] = action.gpus
            span = choice.build_months if choice is not None else max(action.online_month - action.month, 1)
            usd = np.zeros(months)
            lo, hi = max(action.month, 0), min(action.month + span, months)
            if lo < hi:
                usd[lo:hi] = action.cost_usd / span
            capex.append(usd)
            marginal = choice.marginal_usd_per_gpu_hour if choice is not None else 0.0
            if action.online_month < months:
                delays.append(_Delay((len(rows),), max(action.online_month, 0)))
        else:
            raise ValueError(f"found the action kind {action.kind!r}, expected 'sign' or 'build'")
        rows.append(capacity)
        row_model.append(action.gpu_model)
        row_provider_name.append(action.provider)
        row_marginal.append(marginal)

    providers = sorted(set(row_provider_name))
    provider_index = {p: i for i, p in enumerate(providers)}

    committed: dict[int, tuple[int, float]] = {}
    commit_rows: list[tuple[int, ...]] = []
    commit_price: list[tuple[float, ...]] = []
    for c, commitment in enumerate(inputs.commitments):
        members = tuple(
            supply_rows[s] for s in commitment.sources if s in supply_rows and supply_rows[s] not in committed
        )
        for r in members:
            committed[r] = (c, row_marginal[r])
        commit_rows.append(members)
        commit_price.append(tuple(row_marginal[r] for r in members))

    penalty = inputs.unmet_penalty_usd_per_gpu_hour
    units: list[tuple[int, float, int, int, float]] = []  # model, sort marginal, row, part, use cost
    for r, model in enumerate(row_model):
        if model not in model_index:
            continue
        if r in committed:
            units.append((model_index[model], 0.0, r, _FREE, 0.0))
            units.append((model_index[model], row_marginal[r], r, _PAID, 0.0))
        else:
            units.append((model_index[model], row_marginal[r], r, _ALL, row_marginal[r]))
    units.sort(key=lambda u: (u[0], u[1]))  # stable: ties keep source order
    unit_model = np.array([u[0] for u in units], dtype=np.intp)
    starts = np.flatnonzero(np.r_[True, unit_model[1:] != unit_model[:-1]]) if units else np.zeros(0, np.intp)
    weight = np.zeros((len(inputs.commitments), len(units)))
    for u, (_, _, r, _, _) in enumerate(units):
        if r in committed:
            weight[committed[r][0], u] = committed[r][1]

    return RiskModel(
        hours=hours,
        demand=demand,
        capacity=np.array(rows, dtype=np.float64).reshape(len(rows), months),
        row_provider=np.array([provider_index[p] for p in row_provider_name], dtype=np.intp),
        providers=len(providers),
        delays=tuple(delays),
        fixed_usd=fixed,
        capex_usd=np.array(capex, dtype=np.float64).reshape(len(capex), months),
        unit_row=np.array([u[2] for u in units], dtype=np.intp),
        unit_part=np.array([u[3] for u in units], dtype=np.intp),
        unit_cost=np.array([u[4] for u in units], dtype=np.float64),
        unit_enabled=np.array([penalty is None or u[1] <= penalty for u in units], dtype=np.bool_),
        unit_price=np.array([u[1] for u in units], dtype=np.float64),
        price_order=np.argsort(np.array([u[1] for u in units], dtype=np.float64), kind="stable").astype(np.intp),
        hard_budget=inputs.over_budget_penalty is None and any(e is not None for e in inputs.envelope_usd),
        segment_model=unit_model[starts] if units else np.zeros(0, np.intp),
        segment_start=starts.astype(np.intp),
        commit_floor=np.array([_profile(c.floor_usd, months) for c in inputs.commitments]).reshape(
            len(inputs.commitments), months
        ),
        commit_rows=tuple(commit_rows),
        commit_price=tuple(commit_price),
        commit_weight=weight,
        envelope=np.array([np.inf if e is None else e for e in inputs.envelope_usd], dtype=np.float64),
        tail_usd=float(plan.committed_after_horizon_usd),
        risk=risk,
    )


def scenario_outcome(inputs: PlanInputs, plan: Plan, risk: Risk, seed: int, index: int) -> Outcome:
    """Scenario ``index`` of ``seed`` for the plan (prepares the arrays each call: use :func:`prepare` and
    :func:`evaluate_many` for many scenarios)."""
    return evaluate(prepare(inputs, plan, risk), seed, index)


def evaluate(model: RiskModel, seed: int, index: int) -> Outcome:
    """Scenario ``index`` of ``seed``."""
    return evaluate_many(model, seed, (index,))[0]


def evaluate_many(model: RiskModel, seed: int, indices: Iterable[int]) -> list[Outcome]:
    """Outcomes of the scenarios ``indices``, in that order: each draws from its own generator, then batches of
    scenarios are dispatched together (a scenario's outcome does not depend on the batch it is in)."""
    wanted = list(indices)
    cells = max(1, (model.capacity.shape[0] + model.unit_row.shape[0]) * max(model.months, 1))
    size = max(1, min(256, _BATCH_CELLS // cells))
    out: list[Outcome] = []
    for lo in range(0, len(wanted), size):
        out.extend(_batch(model, [_draws(model, seed, i) for i in wanted[lo : lo + size]]))
    return out


_BATCH_CELLS = 2_000_000
"""Most (scenario × row × month) cells dispatched at once: bounds memory on large plans."""


@dataclass(frozen=True, slots=True)
class _Draws:
    epsilon: float
    delays: Array | None
    overrun: Array | None
    outage_starts: NDArray[np.bool_] | None


def _draws(model: RiskModel, seed: int, index: int) -> _Draws:
    """What scenario ``index`` draws, in the order the module text gives."""
    rng = np.random.default_rng([seed, index])
    risk = model.risk
    epsilon = float(risk.demand_growth_sigma * rng.standard_normal())
    delays = _draw(rng, risk.building_delay_months, len(model.delays))
    overrun = _draw(rng, risk.capex_overrun, model.capex_usd.shape[0])
    outages = risk.outages
    starts = None
    if outages.probability_per_month > 0 and model.providers:
        starts = rng.random((model.providers, model.months)) < outages.probability_per_month
    return _Draws(epsilon, delays, overrun, starts)


def _batch(model: RiskModel, draws: list[_Draws]) -> list[Outcome]:
    """Dispatch and total a batch of scenarios: arrays (scenario, row or unit, month). Sums run in a fixed order
    (no BLAS) so a scenario's figures are bit for bit the same whatever batch it is in."""
    risk = model.risk
    batch, months = len(draws), model.months
    t = np.arange(months)
    capacity = np.broadcast_to(model.capacity, (batch, *model.capacity.shape))
    if risk.building_delay_months is not None and model.delays:
        capacity = capacity.copy()
        shifts = np.floor(np.array([d.delays for d in draws]) + 0.5).astype(np.intp)  # (B, G)
        for g, delay in enumerate(model.delays):
            at, rows = delay.online_month, list(delay.rows)
            source = t[None, :] - shifts[:, g : g + 1]  # (B, T): month each month's capacity comes from
            keep = (source >= at) | (t[None, :] < at)
            moved = model.capacity[rows][:, np.clip(source, 0, months - 1)]  # (R, B, T)
            capacity[:, rows, :] = np.where(keep[None], moved, 0.0).transpose(1, 0, 2)
    if draws[0].outage_starts is not None:
        starts = np.array([d.outage_starts for d in draws])  # (B, P, T)
        begun = np.cumsum(starts, axis=2)
        ended = np.zeros_like(begun)
        length = risk.outages.months
        if length < months:
            ended[:, :, length:] = begun[:, :, : months - length]
        factor = 1.0 - risk.outages.capacity_lost * np.asarray(begun > ended, dtype=np.float64)
        capacity = capacity * factor[:, model.row_provider, :]

    epsilon = np.array([d.epsilon for d in draws])
    demand = model.demand[None] * np.exp(epsilon[:, None, None] * t[None, None, :] / 12.0)
    hours = model.hours
    committed = np.broadcast_to(model.fixed_usd, (batch, months)).copy()
    if model.capex_usd.shape[0]:
        overrun = np.ones((batch, model.capex_usd.shape[0]))
        if risk.capex_overrun is not None:
            overrun = np.array([d.overrun for d in draws])
        committed += (overrun[:, :, None] * model.capex_usd[None]).sum(axis=1)
    if model.commit_floor.shape[0]:
        committed += model.commit_floor.sum(axis=0)
    used = _dispatch(model, capacity, demand)
    if model.hard_budget and used.shape[1]:
        bound = committed.copy()
        bound[:, -1] += model.tail_usd
        used = _within_budget(model, used, bound)
    supplied = np.zeros_like(demand)
    if used.shape[1]:
        supplied[:, model.segment_model] = np.add.reduceat(used, model.segment_start, axis=1)
    shortfall = np.maximum(demand - supplied, 0.0).sum(axis=1)  # (B, T)
    spend = committed
    if used.shape[1]:
        spend += (used * model.unit_cost[None, :, None]).sum(axis=1) * hours
    if model.commit_floor.shape[0]:
        use = (model.commit_weight[None, :, :, None] * used[:, None]).sum(axis=2) * hours
        spend += np.maximum(model.commit_floor[None], use).sum(axis=1) - model.commit_floor.sum(axis=0)
    if risk.recourse_usd_per_gpu_hour is not None:
        spend += shortfall * hours * float(risk.recourse_usd_per_gpu_hour)
    cumulative = np.cumsum(spend, axis=1)
    budgeted = cumulative.copy()
    budgeted[:, -1] += model.tail_usd
    over = budgeted > model.envelope * (1.0 + _BREACH_RTOL) + _BREACH_ATOL_USD
    breached: NDArray[np.bool_] = np.asarray(over.any(axis=1), dtype=np.bool_)
    first = over.argmax(axis=1)
    gpu_hours = (shortfall * hours).sum(axis=1)
    total = cumulative[:, -1] if months else np.zeros(batch)
    return [
        Outcome(
            shortfall_gpu_hours=float(gpu_hours[b]),
            spend_usd=float(total[b]),
            breached=bool(breached[b]),
            first_breach_month=int(first[b]) if breached[b] else None,
            monthly_shortfall_gpus=tuple(shortfall[b].tolist()),
        )
        for b in range(batch)
    ]


def summarize(outcomes: Sequence[Outcome], seed: int, months: Sequence[date]) -> RiskSummary:
    """P10/P50/P90 of shortfall and spend, the monthly shortfall band and the chance of a budget breach."""
    if not outcomes:
        raise ValueError("found no scenarios, expected at least 1 to summarise")
    shortfall = np.array([o.shortfall_gpu_hours for o in outcomes])
    spend = np.array([o.spend_usd for o in outcomes])
    monthly = np.array([o.monthly_shortfall_gpus for o in outcomes], dtype=np.float64).reshape(len(outcomes), -1)
    if monthly.shape[1] != len(months):
        raise ValueError(f"found {monthly.shape[1]} months of shortfall, expected {len(months)}")
    band = np.percentile(monthly, [10, 50, 90], axis=0) if len(months) else np.zeros((3, 0))
    breaches = [o.first_breach_month for o in outcomes if o.first_breach_month is not None]
    return RiskSummary(
        scenarios=len(outcomes),
        seed=seed,
        shortfall_gpu_hours=_percentiles(shortfall),
        spend_usd=_percentiles(spend),
        budget_breach_probability=sum(o.breached for o in outcomes) / len(outcomes),
        monthly_shortfall_gpus=tuple(Percentiles(float(a), float(b), float(c)) for a, b, c in band.T),
        first_breach_month=months[min(breaches)] if breaches else None,
    )


def _percentiles(values: Array) -> Percentiles:
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return Percentiles(float(p10), float(p50), float(p90))


def _profile(values: Sequence[float], months: int) -> Array:
    out = np.zeros(months)
    given = np.asarray(values[:months], dtype=np.float64)
    out[: given.shape[0]] = given
    return out


def _draw(rng: np.random.Generator, shape: Triangular | None, n: int) -> Array | None:
    if shape is None:
        return None
    if shape.high <= shape.low:
        return np.full(n, float(shape.low))
    return rng.triangular(shape.low, shape.mode, shape.high, size=n)


def _dispatch(model: RiskModel, capacity: Array, demand: Array) -> Array:
    """GPUs each unit serves (B, U, T), cheapest unit of its model first, up to the model's demand."""
    units = model.unit_row.shape[0]
    if units == 0:
        return np.zeros((demand.shape[0], 0, model.months))
    unit_cap = capacity[:, model.unit_row, :]
    if model.commit_rows:
        free = _free_gpus(model, capacity)
        is_free = np.flatnonzero(np.equal(model.unit_part, _FREE))
        is_paid = np.flatnonzero(np.equal(model.unit_part, _PAID))
        unit_cap[:, is_free] = free[:, model.unit_row[is_free]]
        unit_cap[:, is_paid] -= free[:, model.unit_row[is_paid]]
    unit_cap = np.where(model.unit_enabled[None, :, None], np.maximum(unit_cap, 0.0), 0.0)
    total = np.cumsum(unit_cap, axis=1)
    sizes = np.diff(np.r_[model.segment_start, units])
    segment_of_unit = np.repeat(np.arange(model.segment_start.shape[0]), sizes)
    padded = np.concatenate([np.zeros_like(total[:, :1]), total], axis=1)
    before = total - unit_cap - padded[:, model.segment_start][:, segment_of_unit]  # capacity ahead in its model
    wanted = demand[:, model.segment_model[segment_of_unit]]
    served: Array = np.clip(wanted - before, 0.0, unit_cap)
    return served


def _within_budget(model: RiskModel, used: Array, committed: Array) -> Array:
    """Use cut so that cumulative spend stays within the envelope in every month, given the cash already committed
    (as the plan's hard budget does); what is cut is shortfall. Units are kept from the cheapest use to the dearest,
    each month's use as far as the slack of that month and every later one allows (the LP's choice when every
    unmet GPU-hour costs the same penalty). Where committed cash alone passes the envelope, no paid use is kept."""
    slack = model.envelope[None] - np.cumsum(committed, axis=1)  # (B, T)
    paid = (used * model.unit_price[None, :, None]).sum(axis=1) * model.hours
    binds = np.flatnonzero(~(slack - np.cumsum(paid, axis=1) >= 0).all(axis=1))  # per scenario: batch-independent
    if binds.shape[0] == 0:
        return used
    out = used.copy()
    out[binds] = _hold(model, used[binds], slack[binds])
    return out


def _hold(model: RiskModel, used: Array, slack: Array) -> Array:
    used = used.copy()
    for u in model.price_order:
        price = model.unit_price[u]
        if price <= 0:
            continue
        cost = used[:, u, :] * price * model.hours  # (B, T)
        for t in np.flatnonzero(cost.any(axis=0)):
            wanted = cost[:, t]
            kept = np.minimum(wanted, np.maximum(slack[:, t:].min(axis=1), 0.0))
            used[:, u, t] *= np.where(wanted > 0, kept / np.where(wanted > 0, wanted, 1.0), 1.0)
            slack[:, t:] -= kept[:, None]
    return used


def _free_gpus(model: RiskModel, capacity: Array) -> Array:
    """GPUs of each commitment row its floor already pays for, (B, S, T) (greedy over the commitment's rows)."""
    free = np.zeros_like(capacity)
    hours = model.hours
    for floor, rows, prices in zip(model.commit_floor, model.commit_rows, model.commit_price, strict=True):
        left = np.broadcast_to(floor, capacity[:, 0].shape)
        for row, price in zip(rows, prices, strict=True):
            if price <= 0:
                free[:, row] = capacity[:, row]
                continue
            free[:, row] = np.minimum(capacity[:, row], np.maximum(left, 0.0) / (price * hours))
            left = left - free[:, row] * price * hours
    return free
