"""The planning problem made plain: a fleet, a plan scenario and its demand become :class:`PlanInputs`.

Pure: no I/O, no clock. Month index 0 is the scenario's ``start``. The rules (the shared design's "Semantics"):

- **Online months.** Something online from day ``d`` counts from the first month whose first day is ≥ ``d`` (the
  month of ``d`` itself when ``d`` is its 1st); something online until day ``u`` counts through ``u``'s month when
  ``u`` is that month's last day, else through the month before.
- **Clusters** become one :class:`Supply` each. A cluster under a ``reserved`` contract is kind ``reserved``
  (marginal 0); under a ``commitment``, kind ``commitment`` (marginal: the contract's price, else the cluster's);
  under ``on_demand``/``spot`` or a cloud cluster with none, kind ``on_demand`` (the contract's price, else the
  cluster's); an owned cluster with no contract, kind ``owned`` (marginal: energy TDP W × PUE × USD per MWh ÷ 10^6,
  else the cluster's list price). Capacity: the cluster's GPUs in the months it is online (``online_from`` /
  ``online_until``, else its building's energisation), in a building at most the building's GPUs and what its IT
  power feeds (floor(IT MW × 10^6 ÷ (TDP × PUE))); under a reserved or commitment contract only inside the
  contract's term (after it the capacity is no longer bought under it).
- **Contracts.** A reserved contract pays ``value_usd`` (else GPUs × price × term hours) evenly over the months its
  term touches (:class:`FixedPayment`); one that no cluster names but that has ``gpus`` and ``gpu_model`` is a
  supply of its own. A commitment pays at least committed ÷ term months in each month of its term
  (:class:`Commitment`).
- **Buildings** of the fleet pay their capex evenly over the ``existing_build_months`` months before their
  energisation month (months before the horizon are sunk).
- **Market**: each price-book entry (when asked) and each scenario option is a :class:`MarketChoice`; it may be
  signed in a month when its validity overlaps that month and no other provider's exclusivity overlaps the month
  for its model.
- **Builds**: each scenario build option is a :class:`BuildChoice`; a site with a power envelope has
  :class:`SitePower` headroom = power ÷ PUE − IT MW of its fleet buildings.
- **First refusal**: per clause and GPU model in scope (empty scope: every model with demand), the months that
  overlap the clause's validity, as a quote may be signed in any month its validity overlaps (:class:`RofrRule`).
- **Budget envelope** at the end of month t: initial + (ceiling − initial) × days elapsed ÷ days of the budget period,
  clipped to [initial, ceiling]; None after the period.
"""

import math
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from stargate.domain.catalog import GpuModel
from stargate.domain.contracts import Budget, Contract, ContractKind
from stargate.domain.fleet import Fleet
from stargate.domain.infrastructure import Building, Cluster, ProviderKind, Site
from stargate.domain.planning import MAX_GPUS_DEMANDED, PlanScenario
from stargate.engine.plan_demand import month_days, month_hours, month_index, month_starts
from stargate.engine.plan_types import (
    BuildChoice,
    Commitment,
    DemandLine,
    FixedPayment,
    MarketChoice,
    PlanInputs,
    RofrRule,
    SitePower,
    Supply,
)

HOURS_PAST_HORIZON = 730.0
"""Hours counted for a month past the horizon (a signing's cost over its whole term)."""


def first_month(start: date, day: date) -> int:
    """The first month index something online from ``day`` counts in (conservative: a mid-month day counts from
    the next month)."""
    index = month_index(start, day)
    return index if day.day == 1 else index + 1


def last_month(start: date, day: date) -> int:
    """The last month index something online until ``day`` counts in (the month of ``day`` only if ``day`` is its
    last day)."""
    index = month_index(start, day)
    return index if day.day == month_days(day) else index - 1


def _span(n: int, first: int | None, last: int | None) -> range:
    """Month indices from ``first`` to ``last`` (None: open) clipped to the horizon."""
    lo = 0 if first is None else max(first, 0)
    hi = n - 1 if last is None else min(last, n - 1)
    return range(lo, hi + 1)


def _term_months(start: date, contract: Contract) -> range:
    """Month indices (unclipped) of every month the contract's term touches."""
    return range(month_index(start, contract.start), month_index(start, contract.end) + 1)


def _even(n: int, months: range, total: float) -> tuple[float, ...]:
    """``total`` spread evenly over ``months`` (may reach outside the horizon); only months inside are kept."""
    values = [0.0] * n
    if len(months) == 0 or total == 0:
        return tuple(values)
    share = total / len(months)
    for t in months:
        if 0 <= t < n:
            values[t] = share
    return tuple(values)


def energy_usd_per_gpu_hour(model: GpuModel, site: Site) -> float | None:
    """What energy for one GPU-hour costs at ``site``: TDP W × PUE × USD per MWh ÷ 10^6 (None: not priced)."""
    if site.energy_usd_per_mwh is None:
        return None
    return model.tdp_w * site.pue * float(site.energy_usd_per_mwh) / 1e6


def gpus_for_power(it_mw: float, model: GpuModel, site: Site) -> int:
    """GPUs that ``it_mw`` of IT power feeds: floor(IT MW × 10^6 ÷ (TDP × PUE))."""
    return math.floor(it_mw * 1e6 / (model.tdp_w * site.pue) + 1e-9)


def envelope(budget: Budget | None, months: Sequence[date]) -> tuple[float | None, ...]:
    """The budget envelope at the end of each month, USD (None where no budget applies)."""
    if budget is None:
        return (None,) * len(months)
    initial, ceiling = float(budget.initial_usd), float(budget.ceiling_usd)
    period = (budget.end - budget.start).days + 1
    out: list[float | None] = []
    for m in months:
        last = m + timedelta(days=month_days(m) - 1)
        if m > budget.end:
            out.append(None)
        elif last < budget.start:
            out.append(initial)
        else:
            share = min(1.0, ((last - budget.start).days + 1) / period)
            out.append(min(max(initial + (ceiling - initial) * share, min(initial, ceiling)), max(initial, ceiling)))
    return tuple(out)


class _Context:
    """What every rule reads: the fleet's lookups and the horizon."""

    def __init__(self, fleet: Fleet, scenario: PlanScenario) -> None:
        self.fleet = fleet
        self.start = scenario.start
        self.n = scenario.months
        self.months = month_starts(scenario.start, scenario.months)
        self.hours = month_hours(self.months)
        self.catalogue = fleet.catalogue()
        self.sites = {s.id: s for s in fleet.sites}
        self.providers = {p.id: p for p in fleet.providers}
        self.buildings = {b.id: b for b in fleet.buildings}
        self.contracts = {k.id: k for k in fleet.contracts}

    def capacity(self, gpus: float, first: int | None, last: int | None) -> tuple[float, ...]:
        values = [0.0] * self.n
        for t in _span(self.n, first, last):
            values[t] = float(gpus)
        return tuple(values)

    def site_provider(self, site_id: str) -> str:
        site = self.sites.get(site_id)
        return site.provider if site is not None else ""


def _cluster_supply(ctx: _Context, cluster: Cluster) -> Supply:
    site = ctx.sites[cluster.site]
    model = ctx.catalogue[cluster.gpu_model]
    provider = ctx.providers.get(site.provider)
    contract = ctx.contracts.get(cluster.contract) if cluster.contract is not None else None
    building: Building | None = ctx.buildings.get(cluster.building) if cluster.building is not None else None
    gpus = cluster.gpus
    online_month: int | None = None
    first: int | None = None
    if cluster.online_from is not None:
        first = first_month(ctx.start, cluster.online_from)
    if building is not None:
        gpus = min(gpus, building.gpus, gpus_for_power(building.it_power_mw, model, site))
        building_month = first_month(ctx.start, building.energized_on())
        if first is None:
            first = building_month
        if building.actual_energization is None and 0 <= building_month < ctx.n:
            online_month = building_month
    last = last_month(ctx.start, cluster.online_until) if cluster.online_until is not None else None
    price = float(cluster.price_per_gpu_hour_usd)
    contract_price = float(contract.price_per_gpu_hour_usd) if contract and contract.price_per_gpu_hour_usd else None
    kind = "on_demand"
    marginal = price if contract_price is None else contract_price
    if contract is not None and contract.kind in (ContractKind.RESERVED, ContractKind.COMMITMENT):
        kind = str(contract.kind)
        marginal = 0.0 if contract.kind is ContractKind.RESERVED else marginal
        first = max(first if first is not None else -(10**6), first_month(ctx.start, contract.start))
        last = min(last if last is not None else 10**6, last_month(ctx.start, contract.end))
    elif contract is None and provider is not None and provider.kind is ProviderKind.OWNED:
        kind = "owned"
        energy = energy_usd_per_gpu_hour(model, site)
        marginal = price if energy is None else energy
    return Supply(
        id=cluster.id,
        kind=kind,
        provider=site.provider,
        gpu_model=cluster.gpu_model,
        capacity=ctx.capacity(gpus, first, last),
        marginal_usd_per_gpu_hour=marginal,
        contract=contract.id if contract is not None else None,
        building=building.id if building is not None else None,
        site=site.id,
        online_month=online_month,
    )


def _reserved(ctx: _Context, contract: Contract, named: bool) -> tuple[FixedPayment, Supply | None]:
    term = _term_months(ctx.start, contract)
    if contract.value_usd is not None:
        total = float(contract.value_usd)
    elif contract.gpus is not None and contract.price_per_gpu_hour_usd is not None:
        hours = ((contract.end - contract.start).days + 1) * 24.0
        total = contract.gpus * float(contract.price_per_gpu_hour_usd) * hours
    else:
        total = 0.0
    payment = FixedPayment(ref=contract.id, kind="reserved", provider=contract.provider, usd=_even(ctx.n, term, total))
    supply = None
    if not named and contract.gpus is not None and contract.gpu_model is not None:
        supply = Supply(
            id=contract.id,
            kind="reserved",
            provider=contract.provider,
            gpu_model=contract.gpu_model,
            capacity=ctx.capacity(
                contract.gpus, first_month(ctx.start, contract.start), last_month(ctx.start, contract.end)
            ),
            marginal_usd_per_gpu_hour=0.0,
            contract=contract.id,
        )
    return payment, supply


def _commitment(ctx: _Context, contract: Contract, sources: tuple[str, ...]) -> Commitment:
    total = float(contract.committed_spend_usd) if contract.committed_spend_usd is not None else 0.0
    return Commitment(
        id=contract.id,
        provider=contract.provider,
        floor_usd=_even(ctx.n, _term_months(ctx.start, contract), total),
        sources=sources,
    )


def _capex(ctx: _Context, building: Building, build_months: int) -> FixedPayment:
    energized = month_index(ctx.start, building.energized_on())
    months = range(energized - build_months, energized)
    return FixedPayment(
        ref=building.id,
        kind="capex",
        provider=ctx.site_provider(building.site),
        usd=_even(ctx.n, months, float(building.capex_usd)),
    )


def _exclusive(ctx: _Context, provider: str, gpu_model: str) -> list[bool]:
    """Months blocked for ``provider``'s options of ``gpu_model`` by another provider's exclusivity."""
    blocked = [False] * ctx.n
    for k in ctx.fleet.contracts:
        clause = k.exclusivity
        if clause is None or k.provider == provider:
            continue
        if clause.gpu_models and gpu_model not in clause.gpu_models:
            continue
        for t, m in enumerate(ctx.months):
            if _overlaps(m, k.start, clause.until):
                blocked[t] = True
    return blocked


def _overlaps(month: date, first: date, last: date | None) -> bool:
    """True when some day of ``month`` lies in [first, last] (``last`` None: open-ended)."""
    end = month + timedelta(days=month_days(month) - 1)
    return end >= first and (last is None or month <= last)


def _markets(ctx: _Context, scenario: PlanScenario) -> list[MarketChoice]:
    out: list[MarketChoice] = []
    if scenario.market.from_price_book:
        for n, entry in enumerate(ctx.fleet.procurement.price_book):
            blocked = _exclusive(ctx, entry.provider, entry.gpu_model)
            can = []
            for t, m in enumerate(ctx.months):
                can.append(_overlaps(m, entry.valid_from, entry.valid_until) and not blocked[t])
            out.append(
                MarketChoice(
                    id=f"pricebook-{entry.provider}-{entry.gpu_model}-{n}",
                    provider=entry.provider,
                    gpu_model=entry.gpu_model,
                    price_usd_per_gpu_hour=float(entry.price_per_gpu_hour_usd),
                    lead_months=math.ceil(entry.lead_time_days / 30),
                    term_months=scenario.market.min_term_months,
                    max_gpus_per_month=float(entry.max_gpus) if entry.max_gpus is not None else None,
                    can_sign=tuple(can),
                    site=entry.site,
                )
            )
    for option in scenario.market.options:
        blocked = _exclusive(ctx, option.provider, option.gpu_model)
        can = [
            (option.available_from is None or m >= option.available_from)
            and (option.available_until is None or m <= option.available_until)
            and not blocked[t]
            for t, m in enumerate(ctx.months)
        ]
        out.append(
            MarketChoice(
                id=option.id,
                provider=option.provider,
                gpu_model=option.gpu_model,
                price_usd_per_gpu_hour=float(option.price_per_gpu_hour_usd),
                lead_months=option.lead_time_months,
                term_months=option.min_term_months,
                max_gpus_per_month=float(option.max_gpus) if option.max_gpus is not None else None,
                can_sign=tuple(can),
            )
        )
    return out


def _builds(ctx: _Context, scenario: PlanScenario) -> tuple[list[BuildChoice], list[SitePower]]:
    builds: list[BuildChoice] = []
    power: dict[str, SitePower] = {}
    for option in scenario.build:
        site = ctx.sites[option.site]
        model = ctx.catalogue[option.gpu_model]
        gpus = option.gpus if option.gpus is not None else gpus_for_power(option.it_power_mw, model, site)
        energy = energy_usd_per_gpu_hour(model, site)
        earliest = 0 if option.earliest_start is None else max(0, month_index(ctx.start, option.earliest_start))
        builds.append(
            BuildChoice(
                id=option.id,
                site=site.id,
                provider=site.provider,
                gpu_model=option.gpu_model,
                gpus_per_building=gpus,
                it_mw_per_building=option.it_power_mw,
                capex_usd_per_building=float(option.capex_usd_per_mw) * option.it_power_mw,
                build_months=option.build_months,
                max_buildings=option.max_buildings,
                earliest_month=earliest,
                marginal_usd_per_gpu_hour=0.0 if energy is None else energy,
            )
        )
        if site.power_mw is not None and site.id not in power:
            used = sum(b.it_power_mw for b in ctx.fleet.buildings if b.site == site.id)
            power[site.id] = SitePower(site=site.id, headroom_mw=max(0.0, site.power_mw / site.pue - used))
    return builds, list(power.values())


def _rofr(ctx: _Context, models_with_demand: Iterable[str]) -> list[RofrRule]:
    rules: list[RofrRule] = []
    demanded = tuple(dict.fromkeys(models_with_demand))
    for k in ctx.fleet.contracts:
        clause = k.right_of_first_refusal
        if clause is None:
            continue
        months = tuple(t for t, m in enumerate(ctx.months) if _overlaps(m, clause.valid_from, clause.valid_until))
        if not months:
            continue
        for model in clause.gpu_models or demanded:
            rules.append(RofrRule(contract=k.id, holder=clause.holder, gpu_model=model, months=months))
    return rules


def _check_demand(demand: Sequence[DemandLine], months: Sequence[date]) -> None:
    for line in demand:
        if len(line.gpus) != len(months):
            raise ValueError(
                f"demand series {line.id!r}: found {len(line.gpus)} months, expected {len(months)} (the horizon)"
            )
        for t, value in enumerate(line.gpus):
            if not (math.isfinite(value) and 0 <= value <= MAX_GPUS_DEMANDED):
                raise ValueError(
                    f"demand series {line.id!r}: found {value:,.0f} GPUs in {months[t].strftime('%Y-%m')}, "
                    f"expected 0 to {MAX_GPUS_DEMANDED:,} GPUs"
                )


def build_inputs(fleet: Fleet, scenario: PlanScenario, demand: tuple[DemandLine, ...]) -> PlanInputs:
    """The planning problem of ``scenario`` over ``fleet`` with ``demand`` (GPUs per month, from
    :func:`stargate.engine.plan_demand.demand_lines`). Raises ``ValueError`` for demand of the wrong length or past
    100,000,000 GPUs. The fleet and scenario are expected to be checked (references resolve)."""
    ctx = _Context(fleet, scenario)
    _check_demand(demand, ctx.months)
    supplies = [_cluster_supply(ctx, c) for c in fleet.clusters if c.site in ctx.sites]
    named: dict[str, list[str]] = {}
    for c in fleet.clusters:
        if c.contract is not None:
            named.setdefault(c.contract, []).append(c.id)
    fixed: list[FixedPayment] = []
    commitments: list[Commitment] = []
    for k in fleet.contracts:
        if k.kind is ContractKind.RESERVED:
            payment, supply = _reserved(ctx, k, k.id in named)
            if any(payment.usd):
                fixed.append(payment)
            if supply is not None:
                supplies.append(supply)
        elif k.kind is ContractKind.COMMITMENT:
            commitments.append(_commitment(ctx, k, tuple(named.get(k.id, ()))))
    for b in fleet.buildings:
        payment = _capex(ctx, b, scenario.existing_build_months)
        if any(payment.usd):
            fixed.append(payment)
    builds, power = _builds(ctx, scenario)
    return PlanInputs(
        scenario=scenario.name,
        months=ctx.months,
        hours=ctx.hours,
        demand=demand,
        supplies=tuple(supplies),
        fixed=tuple(fixed),
        commitments=tuple(commitments),
        markets=tuple(_markets(ctx, scenario)),
        builds=tuple(builds),
        rofr=tuple(_rofr(ctx, (d.gpu_model for d in demand))),
        site_power=tuple(power),
        envelope_usd=envelope(fleet.budget, ctx.months),
        unmet_penalty_usd_per_gpu_hour=(
            float(scenario.unmet_penalty_usd_per_gpu_hour)
            if scenario.unmet_penalty_usd_per_gpu_hour is not None
            else None
        ),
        over_budget_penalty=scenario.over_budget_penalty,
    )
