"""Monte Carlo risk of a fixed plan: dispatch, delays, outages, overruns, breaches and the summary."""

import sys
from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.domain.planning import OutageRisk, Risk, Triangular
from stargate.engine.plan_risk import Outcome, evaluate, evaluate_many, prepare, scenario_outcome, summarize
from stargate.engine.plan_types import (
    Action,
    BuildChoice,
    Commitment,
    DemandLine,
    FixedPayment,
    Plan,
    PlanInputs,
    Supply,
)
from stargate.planning.montecarlo import RayUnavailable, chunks, run_risk

H = 720.0  # hours of every test month: figures by hand stay simple


def months(n: int) -> tuple[date, ...]:
    return tuple(date(2026 + i // 12, i % 12 + 1, 1) for i in range(n))


def supply(sid: str, gpus: float | list[float], marginal: float, n: int, **extra: object) -> Supply:
    capacity = tuple(gpus) if isinstance(gpus, list) else (float(gpus),) * n
    fields = {"kind": "owned", "provider": "p-" + sid, "gpu_model": "gb200", **extra}
    return Supply(id=sid, capacity=capacity, marginal_usd_per_gpu_hour=marginal, **fields)  # type: ignore[arg-type]


def inputs(
    n: int,
    demand: float | list[float],
    supplies: list[Supply] | tuple[Supply, ...],
    *,
    fixed: tuple[FixedPayment, ...] = (),
    commitments: tuple[Commitment, ...] = (),
    builds: tuple[BuildChoice, ...] = (),
    envelope: list[float | None] | None = None,
    penalty: float | None = None,
) -> PlanInputs:
    gpus = tuple(demand) if isinstance(demand, list) else (float(demand),) * n
    return PlanInputs(
        scenario="t",
        months=months(n),
        hours=(H,) * n,
        demand=(DemandLine("d", "training", "gb200", gpus),),
        supplies=tuple(supplies),
        fixed=fixed,
        commitments=commitments,
        markets=(),
        builds=builds,
        rofr=(),
        site_power=(),
        envelope_usd=tuple(envelope) if envelope is not None else (None,) * n,
        unmet_penalty_usd_per_gpu_hour=penalty,
        over_budget_penalty=None,
    )


def plan(actions: tuple[Action, ...] = (), unmet: float = 0.0, spend: float = 0.0) -> Plan:
    return Plan("t", "optimal", spend, (), actions, unmet, spend, None)


def sign(gpus: int, online: int, term: int, price: float, provider: str = "cw") -> Action:
    return Action("sign", "opt", provider, "gb200", max(online - 1, 0), online, gpus, term, price, 0.0)


def build(gpus: int, start: int, online: int, capex: float) -> Action:
    return Action("build", "b1", "own", "gb200", start, online, gpus, None, None, capex, buildings=1, site="s")


BUILD = BuildChoice("b1", "s", "own", "gb200", 100, 10.0, 6e6, 3, 2, 0, 0.5)
NO_RISK = Risk()


def test_with_no_risk_the_outcome_is_the_plans_own_shortfall_and_spend() -> None:
    # owned 100 at 1 USD, on demand 50 at 3 USD, a signing of 30 GPUs in months 3-4 at 2 USD, 1,000 USD reserved
    n = 6
    data = inputs(
        n,
        120,
        [supply("own", 100, 1.0, n), supply("od", 50, 3.0, n, kind="on_demand")],
        fixed=(FixedPayment("r", "reserved", "p-own", (1000.0,) * n),),
    )
    expected = 4 * (100 * 1 * H + 20 * 3 * H) + 2 * (90 * 1 * H + 30 * 2 * H) + 6 * 1000
    the_plan = plan((sign(30, 3, 2, 2.0),), unmet=0.0, spend=expected)
    outcome = scenario_outcome(data, the_plan, NO_RISK, seed=7, index=3)
    assert outcome.spend_usd == pytest.approx(the_plan.spend_usd)
    assert outcome.shortfall_gpu_hours == pytest.approx(the_plan.unmet_gpu_hours)
    assert outcome.monthly_shortfall_gpus == (0.0,) * n
    assert not outcome.breached and outcome.first_breach_month is None


def test_shortfall_is_what_supply_cannot_cover_and_recourse_pays_for_it() -> None:
    n = 4
    data = inputs(n, 200, [supply("own", 150, 1.0, n)])
    outcome = scenario_outcome(data, plan(), NO_RISK, 0, 0)
    assert outcome.monthly_shortfall_gpus == (50.0,) * n
    assert outcome.shortfall_gpu_hours == pytest.approx(50 * H * n)
    assert outcome.spend_usd == pytest.approx(150 * H * n)
    bought = scenario_outcome(data, plan(), Risk(recourse_usd_per_gpu_hour=4.0), 0, 0)
    assert bought.shortfall_gpu_hours == pytest.approx(50 * H * n)
    assert bought.spend_usd == pytest.approx(150 * H * n + 50 * 4.0 * H * n)


def test_a_source_dearer_than_the_unmet_penalty_stays_idle_as_in_the_plan() -> None:
    n = 2
    data = inputs(n, 120, [supply("own", 100, 1.0, n), supply("od", 50, 3.0, n)], penalty=2.0)
    outcome = scenario_outcome(data, plan(), NO_RISK, 0, 0)
    assert outcome.monthly_shortfall_gpus == (20.0, 20.0)
    assert outcome.spend_usd == pytest.approx(100 * H * n)


def test_a_commitment_is_used_free_up_to_its_floor_before_dearer_capacity() -> None:
    # floor pays 30 GPUs at 2 USD; owned at 1 USD is dearer than the free part, cheaper than the paid part
    n = 3
    floor = 30 * 2.0 * H
    data = inputs(
        n,
        120,
        [supply("own", 100, 1.0, n), supply("c", 40, 2.0, n, kind="commitment")],
        commitments=(Commitment("k", "p-c", (floor,) * n, ("c",)),),
    )
    outcome = scenario_outcome(data, plan(), NO_RISK, 0, 0)
    assert outcome.spend_usd == pytest.approx(n * (floor + 90 * 1.0 * H))
    busy = scenario_outcome(inputs(n, 150, data.supplies, commitments=data.commitments), plan(), NO_RISK, 0, 0)
    assert busy.spend_usd == pytest.approx(n * (40 * 2.0 * H + 100 * 1.0 * H))  # use above the floor
    idle = scenario_outcome(inputs(n, 0, data.supplies, commitments=data.commitments), plan(), NO_RISK, 0, 0)
    assert idle.spend_usd == pytest.approx(n * floor)  # the floor is paid unused


@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_a_delay_of_k_months_moves_a_fleet_buildings_capacity_by_exactly_k(k: int) -> None:
    n = 10
    capacity = [0.0, 0.0, 100.0, 100.0, 100.0, 100.0, 80.0, 80.0, 80.0, 80.0]
    fleet = supply("new", capacity, 1.0, n, building="b", online_month=2)
    other = supply("other", capacity, 1.0, n, building="b", online_month=2)  # same building: same delay
    risk = Risk(building_delay_months=Triangular(low=k, mode=k, high=k))
    outcome = scenario_outcome(inputs(n, 200, [fleet, other]), plan(), risk, 1, 1)
    moved = [0.0] * 2 + [0.0] * k + capacity[2 : n - k]
    assert outcome.monthly_shortfall_gpus == pytest.approx([200 - 2 * c for c in moved])


def test_a_planned_build_slips_by_its_drawn_delay_and_its_capex_overruns() -> None:
    n = 8
    action = build(100, start=0, online=3, capex=6e6)
    data = inputs(n, 100, [], builds=(BUILD,))
    on_time = scenario_outcome(data, plan((action,)), NO_RISK, 0, 0)
    assert on_time.monthly_shortfall_gpus == (100.0,) * 3 + (0.0,) * 5
    assert on_time.spend_usd == pytest.approx(6e6 + 5 * 100 * 0.5 * H)
    risk = Risk(
        building_delay_months=Triangular(low=1.6, mode=2, high=2.4),
        capex_overrun=Triangular(low=1.5, mode=1.5, high=1.5),
    )
    late = scenario_outcome(data, plan((action,)), risk, 0, 0)
    assert late.monthly_shortfall_gpus == (100.0,) * 5 + (0.0,) * 3
    assert late.spend_usd == pytest.approx(1.5 * 6e6 + 3 * 100 * 0.5 * H)


def test_fleet_capex_is_multiplied_by_the_overrun_and_reserved_cash_is_not() -> None:
    n = 2
    fixed = (FixedPayment("b", "capex", "own", (10.0, 20.0)), FixedPayment("r", "reserved", "x", (5.0, 5.0)))
    risk = Risk(capex_overrun=Triangular(low=2, mode=2, high=2))
    outcome = scenario_outcome(inputs(n, 0, [], fixed=fixed), plan(), risk, 0, 0)
    assert outcome.spend_usd == pytest.approx(2 * 30 + 10)


def test_a_certain_outage_removes_its_share_of_every_source_of_the_provider_signings_included() -> None:
    n = 3
    data = inputs(n, 200, [supply("own", 100, 0.0, n, provider="cw"), supply("x", 50, 0.0, n)])
    risk = Risk(outages=OutageRisk(probability_per_month=1.0, capacity_lost=0.5, months=2))
    outcome = scenario_outcome(data, plan((sign(40, 0, 3, 1.0),)), risk, 0, 0)
    assert outcome.monthly_shortfall_gpus == pytest.approx([200 - 50 - 25 - 20] * n)
    assert outcome.spend_usd == pytest.approx(n * 40 * 1.0 * H)  # a signing is paid whatever it delivers


def test_an_outage_lasts_its_months_then_capacity_returns() -> None:
    n = 24
    data = inputs(n, 100, [supply("own", 100, 0.0, n)])
    risk = Risk(outages=OutageRisk(probability_per_month=0.05, capacity_lost=1.0, months=3))
    for index in range(40):
        short = np.array(scenario_outcome(data, plan(), risk, 5, index).monthly_shortfall_gpus)
        out = short > 0
        assert set(short.tolist()) <= {0.0, 100.0}
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, out.astype(int), 0])))[::2]
        assert all(r >= 3 or (r < 3 and out[-1]) for r in runs)  # shorter only when cut by the horizon's end


def test_the_budget_is_breached_in_the_first_month_cumulative_spend_passes_the_envelope() -> None:
    # committed cash (a reserved contract: 100 a month, 300 in month 2) passes an envelope of 350 by month 2
    n = 5
    reserved = (FixedPayment("r", "reserved", "x", (100.0, 100.0, 300.0, 100.0, 100.0)),)
    envelope: list[float | None] = [1e9, 200.0, 350.0, None, 1e9]
    outcome = scenario_outcome(inputs(n, 0, [], fixed=reserved, envelope=envelope), plan(), NO_RISK, 0, 0)
    assert outcome.breached and outcome.first_breach_month == 2
    exact = inputs(n, 0, [], fixed=reserved, envelope=[100.0, 200.0, 500.0, 600.0, 700.0])
    assert not scenario_outcome(exact, plan(), NO_RISK, 0, 0).breached  # spending the envelope exactly is allowed
    loose = inputs(n, 0, [], fixed=reserved, envelope=[None] * n)
    assert not scenario_outcome(loose, plan(), NO_RISK, 0, 0).breached
    # what signings pay after the horizon counts in the last month's budget (as in the plan), not in the spend
    tail = replace(plan(), committed_after_horizon_usd=1.0)
    late = scenario_outcome(exact, tail, NO_RISK, 0, 0)
    assert late.breached and late.first_breach_month == n - 1 and late.spend_usd == pytest.approx(700.0)


def test_a_hard_budget_holds_use_within_the_envelope_dearest_first_and_recourse_breaches_it() -> None:
    # owned 100 GPUs at 1 USD and on demand 50 at 3 USD; demand 150; the envelope allows 100 owned + 10 on demand
    # a month on average up to month 3, so use is cut (dearest first) instead of the budget being passed
    n = 4
    month = 100 * 1 * H + 10 * 3 * H
    fleet = [supply("own", 100, 1.0, n), supply("od", 50, 3.0, n)]
    envelope: list[float | None] = [month * (t + 1) for t in range(n)]
    held = scenario_outcome(inputs(n, 150, fleet, envelope=envelope), plan(), NO_RISK, 0, 0)
    assert not held.breached
    assert held.spend_usd == pytest.approx(n * month)
    assert held.monthly_shortfall_gpus == pytest.approx([40.0] * n)  # the dear GPUs are cut, never the cheap ones
    # later room counts: a tight last month holds earlier use back too
    tight = scenario_outcome(inputs(n, 150, fleet, envelope=[*envelope[:3], 3 * month]), plan(), NO_RISK, 0, 0)
    assert tight.spend_usd == pytest.approx(3 * month) and not tight.breached
    soft = replace(inputs(n, 150, fleet, envelope=envelope), over_budget_penalty=1.0)
    spent = scenario_outcome(soft, plan(), NO_RISK, 0, 0)  # a soft budget does not hold use back
    assert spent.breached and spent.first_breach_month == 0 and spent.monthly_shortfall_gpus == (0.0,) * n
    bought = scenario_outcome(inputs(n, 150, fleet, envelope=envelope), plan(), Risk(recourse_usd_per_gpu_hour=5), 0, 0)
    assert bought.breached and bought.first_breach_month == 0  # recourse is bought whatever the budget


def drifting() -> tuple[PlanInputs, Plan, Risk]:
    n = 24
    data = inputs(n, 100, [supply("own", 90, 1.0, n), supply("late", [0.0] * 4 + [30.0] * 20, 1.0, n, online_month=4)])
    risk = Risk(
        building_delay_months=Triangular(low=0, mode=2, high=6),
        demand_growth_sigma=0.3,
        outages=OutageRisk(probability_per_month=0.1, capacity_lost=0.5),
    )
    return data, plan(), risk


def test_a_scenario_depends_only_on_seed_and_index() -> None:
    data, the_plan, risk = drifting()
    model = prepare(data, the_plan, risk)
    first = [evaluate(model, 11, i) for i in range(5)]
    assert [evaluate(model, 11, i) for i in reversed(range(5))][::-1] == first
    assert scenario_outcome(data, the_plan, risk, 11, 3) == first[3]
    # batches are bit for bit the same as single scenarios: how scenarios are split never shows
    assert evaluate_many(model, 11, range(5)) == first
    assert evaluate_many(model, 11, [3, 0]) == [first[3], first[0]]
    assert len({o.spend_usd for o in first}) == 5  # each index draws differently
    other = [evaluate(model, 12, i) for i in range(5)]
    assert all(a != b for a, b in zip(first, other, strict=True))


def test_summary_percentiles_match_numpy_percentile_by_hand() -> None:
    shortfall = [5.0, 0.0, 100.0, 7.0, 3.0]
    spend = [10.0, 40.0, 20.0, 30.0, 50.0]
    monthly = [(1.0, 2.0), (0.0, 4.0), (9.0, 0.0), (3.0, 3.0), (5.0, 1.0)]
    breach = [None, 1, None, 0, None]
    outcomes = [
        Outcome(a, b, c is not None, c, m) for a, b, c, m in zip(shortfall, spend, breach, monthly, strict=True)
    ]
    summary = summarize(outcomes, 9, months(2))
    assert summary.scenarios == 5 and summary.seed == 9
    assert (summary.shortfall_gpu_hours.p10, summary.shortfall_gpu_hours.p50) == pytest.approx((1.2, 5.0))
    assert summary.shortfall_gpu_hours.p90 == pytest.approx(np.percentile(shortfall, 90)) == pytest.approx(62.8)
    assert (summary.spend_usd.p10, summary.spend_usd.p50, summary.spend_usd.p90) == pytest.approx((14.0, 30.0, 46.0))
    assert summary.monthly_shortfall_gpus[0].p50 == 3.0 and summary.monthly_shortfall_gpus[1].p90 == pytest.approx(3.6)
    assert summary.budget_breach_probability == pytest.approx(0.4)
    assert summary.first_breach_month == date(2026, 1, 1)
    with pytest.raises(ValueError, match="at least 1"):
        summarize([], 0, months(2))


@settings(max_examples=60, deadline=None)
@given(
    demand=st.lists(st.floats(0, 1e5), min_size=6, max_size=6),
    capacity=st.lists(st.floats(0, 1e5), min_size=6, max_size=6),
    sigma=st.floats(0, 2),
    delay=st.integers(0, 8),
    outage=st.floats(0, 1),
    seed=st.integers(0, 2**32),
    index=st.integers(0, 10_000),
)
def test_shortfall_is_never_negative_nor_more_than_demand(
    demand: list[float], capacity: list[float], sigma: float, delay: int, outage: float, seed: int, index: int
) -> None:
    n = 6
    fleet = [supply("own", capacity, 1.0, n), supply("new", capacity, 2.0, n, online_month=1, building="b")]
    risk = Risk(
        building_delay_months=Triangular(low=0, mode=delay / 2, high=delay),
        demand_growth_sigma=sigma,
        outages=OutageRisk(probability_per_month=outage, capacity_lost=0.7, months=2),
    )
    outcome = scenario_outcome(inputs(n, demand, fleet), plan((sign(10, 2, 3, 1.0),)), risk, seed, index)
    epsilon = sigma * np.random.default_rng([seed, index]).standard_normal()  # the first draw, by the module's rule
    drifted = np.array(demand) * np.exp(epsilon * np.arange(n) / 12)
    short = np.array(outcome.monthly_shortfall_gpus)
    assert (short >= 0).all()
    assert (short <= drifted * (1 + 1e-9) + 1e-9).all()
    assert outcome.shortfall_gpu_hours == pytest.approx(float(short.sum() * H))


@pytest.mark.parametrize(("scenarios", "count"), [(1, 8), (7, 3), (1000, 8), (5, 5)])
def test_chunks_cover_every_index_once_in_order(scenarios: int, count: int) -> None:
    parts = chunks(scenarios, count)
    assert [i for part in parts for i in part] == list(range(scenarios))
    assert len(parts) == min(scenarios, count)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_in_process_run_reports_progress_and_summarises_every_scenario() -> None:
    data, the_plan, risk = drifting()
    seen: list[tuple[int, int]] = []
    summary = run_risk(data, the_plan, risk, 45, 3, workers=0, progress=lambda d, t: seen.append((d, t)))
    model = prepare(data, the_plan, risk)
    assert summary == summarize(evaluate_many(model, 3, range(45)), 3, data.months)
    assert seen[-1] == (45, 45) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(ValueError, match="at least 1"):
        run_risk(data, the_plan, risk, 0, 3, workers=0)


def test_without_ray_installed_the_run_says_so_and_how_to_run_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    data, the_plan, risk = drifting()
    with pytest.raises(RayUnavailable, match=r"Ray is not installed: install it or run with --workers 0"):
        run_risk(data, the_plan, risk, 10, 0, workers=2)
