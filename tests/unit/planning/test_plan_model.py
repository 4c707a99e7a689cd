"""The plan's program solved by the real HiGHS: hand-computed optima, brute force over the whole buildings, first
refusal, the budget, site power, the infeasible diagnosis and the invariants of any plan.

Months here have 100 hours so that the figures can be checked by hand."""

import itertools
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stargate.engine.plan_model import LinearProgram, LpSolution, build_lp
from stargate.engine.plan_solve import PlanInfeasible, solve_plan
from stargate.engine.plan_types import (
    BuildChoice,
    DemandLine,
    FixedPayment,
    MarketChoice,
    PlanInputs,
    RofrRule,
    SitePower,
    Supply,
)
from stargate.planning.highs import highs_solver

H = 100.0
SOLVER = highs_solver(time_limit_s=30.0)


def _inputs(n: int, demand: tuple[float, ...], **extra: Any) -> PlanInputs:
    base: dict[str, Any] = {
        "scenario": "t",
        "months": tuple(date(2030, 1 + t, 1) for t in range(n)),
        "hours": (H,) * n,
        "demand": (DemandLine("d", "training", "GB200", demand),),
        "supplies": (),
        "fixed": (),
        "commitments": (),
        "markets": (),
        "builds": (),
        "rofr": (),
        "site_power": (),
        "envelope_usd": (None,) * n,
        "unmet_penalty_usd_per_gpu_hour": None,
        "over_budget_penalty": None,
    }
    base.update(extra)
    return PlanInputs(**base)


def _supply(sid: str, kind: str, capacity: tuple[float, ...], marginal: float, provider: str = "p") -> Supply:
    return Supply(sid, kind, provider, "GB200", capacity, marginal)


def _market(
    oid: str, provider: str, price: float, lead: int, term: int, can: tuple[bool, ...], limit: float | None = None
) -> MarketChoice:
    return MarketChoice(oid, provider, "GB200", price, lead, term, limit, can)


def _build(
    bid: str = "b",
    *,
    gpus: int = 100,
    mw: float = 10.0,
    capex: float = 10_000.0,
    months: int = 1,
    most: int = 1,
    earliest: int = 0,
    marginal: float = 0.0,
    site: str = "s",
) -> BuildChoice:
    return BuildChoice(bid, site, "own", "GB200", gpus, mw, capex, months, most, earliest, marginal)


def worked_example() -> PlanInputs:
    """The worked example of docs/reference/planning.md."""
    return _inputs(
        3,
        (100.0, 150.0, 200.0),
        supplies=(
            _supply("own", "owned", (100.0,) * 3, 0.5),
            _supply("cloud", "on_demand", (100.0,) * 3, 4.0),
        ),
        markets=(_market("deal", "m", 2.0, 1, 2, (True,) * 3),),
    )


def test_worked_example_matches_the_hand_optimum() -> None:
    plan = solve_plan(worked_example(), SOLVER)
    # Month 1 needs 50 GPUs more than the owned 100, month 2 100 more. Signing in month 0 gives GPUs in months 1
    # and 2 for 2 × 100 × 2 = 400 USD each; signing in month 1 commits a month past the horizon too (730 h):
    # 2 × (100 + 730) = 1,660 USD per GPU; on demand costs 400 USD per GPU-month. Best: sign 100 in month 0
    # (40,000 USD) and, since they are paid anyway, run month 1 on them and only 50 owned GPUs (energy 2,500 USD);
    # owned 100 in months 0 and 2 (10,000 USD). Total 52,500 USD.
    assert plan.status == "optimal"
    assert plan.objective_usd == pytest.approx(52_500.0)
    assert [r.spend_usd for r in plan.rows] == pytest.approx([5_000.0, 22_500.0, 25_000.0])
    assert [(a.kind, a.month, a.online_month, a.gpus) for a in plan.actions] == [("sign", 0, 1, 100)]
    assert [a.cost_usd for a in plan.actions] == pytest.approx([40_000.0])
    assert plan.committed_after_horizon_usd == pytest.approx(0.0)
    assert plan.rows[1].used_gpus["owned"] == pytest.approx(50.0)
    assert plan.rows[2].used_gpus["market"] == pytest.approx(100.0)
    assert plan.rows[2].used_gpus["on_demand"] == pytest.approx(0.0)
    assert plan.first_shortfall_month is None and plan.unmet_gpu_hours == 0


def test_a_signing_that_runs_past_the_horizon_pays_its_tail_in_the_objective_and_the_budget() -> None:
    # Demand only in month 2: a signing in month 1 (term 2) runs one month past the horizon. Counting only the
    # months inside the horizon it would cost 200 USD per GPU against on demand's 400; with its tail (730 h at
    # 2 USD) it costs 1,660 USD per GPU, so on demand wins.
    inputs = replace(
        worked_example(),
        demand=(DemandLine("d", "training", "GB200", (0.0, 0.0, 100.0)),),
        supplies=(_supply("cloud", "on_demand", (100.0,) * 3, 4.0),),
        markets=(_market("deal", "m", 2.0, 1, 2, (False, True, False)),),
    )
    plan = solve_plan(inputs, SOLVER)
    assert plan.actions == ()
    assert plan.rows[2].used_gpus["on_demand"] == pytest.approx(100.0)
    assert plan.objective_usd == pytest.approx(40_000.0)


def test_unmet_penalty_below_the_price_leaves_demand_unmet() -> None:
    inputs = replace(worked_example(), unmet_penalty_usd_per_gpu_hour=1.0, markets=())
    plan = solve_plan(inputs, SOLVER)
    # On demand costs 4 USD per GPU-hour, leaving it unmet 1: 50 + 100 GPUs short over 100 h each.
    assert plan.unmet_gpu_hours == pytest.approx(150 * H)
    assert plan.first_shortfall_month == date(2030, 2, 1)
    assert plan.objective_usd == pytest.approx(15_000.0 + 150 * H * 1.0)


def _dispatch_cost(inputs: PlanInputs, starts: tuple[int, ...]) -> float:
    """Cost of a plan with these buildings started, the rest dispatched cheapest first (brute force)."""
    (b,) = inputs.builds
    n = len(inputs.months)
    total = b.capex_usd_per_building * sum(starts)
    penalty = inputs.unmet_penalty_usd_per_gpu_hour
    assert penalty is not None
    for t in range(n):
        need = inputs.demand[0].gpus[t]
        built = b.gpus_per_building * sum(starts[m] for m in range(n) if m + b.build_months <= t)
        offers = sorted(
            [(b.marginal_usd_per_gpu_hour, built)]
            + [(s.marginal_usd_per_gpu_hour, s.capacity[t]) for s in inputs.supplies]
        )
        for price, amount in offers:
            take = min(need, amount)
            total += take * price * inputs.hours[t]
            need -= take
        total += need * penalty * inputs.hours[t]
    return total


@pytest.mark.parametrize("demand", [(0, 50, 150, 250), (300, 300, 300, 300), (0, 0, 0, 120)])
def test_whole_buildings_match_brute_force(demand: tuple[int, ...]) -> None:
    build = _build(gpus=100, capex=25_000.0, months=1, most=2, marginal=0.1)
    inputs = _inputs(
        4,
        tuple(float(d) for d in demand),
        supplies=(_supply("cloud", "on_demand", (100.0,) * 4, 3.0),),
        builds=(build,),
        unmet_penalty_usd_per_gpu_hour=6.0,
    )
    best = min(
        _dispatch_cost(inputs, starts)
        for starts in itertools.product(range(3), repeat=4)
        if sum(starts) <= 2 and all(s == 0 for m, s in enumerate(starts) if m + 1 >= 4)
    )
    plan = solve_plan(inputs, SOLVER)
    assert plan.objective_usd == pytest.approx(best)
    assert all(a.kind == "build" and a.gpus == 100 * a.buildings for a in plan.actions)


def test_budget_makes_the_plan_that_pays_later_win() -> None:
    # Demand 100 GPUs in months 1-3. A building started in month 0 (capex 10,000 USD then) is cheapest; a signing
    # in month 0 (online months 1-3) pays 100 × 1 × 100 = 10,000 USD a month, 30,000 USD in all.
    inputs = _inputs(
        4,
        (0.0, 100.0, 100.0, 100.0),
        builds=(_build(capex=10_000.0, months=1),),
        markets=(_market("deal", "m", 1.0, 1, 3, (True, False, False, False)),),
    )
    free = solve_plan(inputs, SOLVER)
    assert [a.kind for a in free.actions] == ["build"] and free.objective_usd == pytest.approx(10_000.0)
    tight = replace(inputs, envelope_usd=(5_000.0, 20_000.0, 30_000.0, 40_000.0))
    plan = solve_plan(tight, SOLVER)
    assert [(a.kind, a.gpus) for a in plan.actions] == [("sign", 100)]
    assert plan.objective_usd == pytest.approx(30_000.0)
    assert all(r.envelope_usd is not None and r.cumulative_spend_usd <= r.envelope_usd + 1e-6 for r in plan.rows)


def test_soft_budget_pays_the_penalty() -> None:
    inputs = _inputs(
        2,
        (0.0, 100.0),
        builds=(_build(capex=10_000.0, months=1),),
        envelope_usd=(4_000.0, 4_000.0),
        over_budget_penalty=0.5,
    )
    plan = solve_plan(inputs, SOLVER)
    # 6,000 USD past the envelope in both months: 10,000 + 0.5 × 2 × 6,000.
    assert plan.over_budget_usd == pytest.approx(6_000.0)
    assert plan.objective_usd == pytest.approx(16_000.0)


def test_site_power_caps_the_buildings() -> None:
    inputs = _inputs(
        3,
        (0.0, 300.0, 300.0),
        supplies=(_supply("cloud", "on_demand", (300.0,) * 3, 5.0),),
        builds=(_build(gpus=100, mw=10.0, capex=1_000.0, most=3),),
        site_power=(SitePower("s", 25.0),),
    )
    plan = solve_plan(inputs, SOLVER)
    assert sum(a.buildings for a in plan.actions) == 2  # 25 MW fit two 10 MW buildings
    assert plan.rows[1].used_gpus["build"] == pytest.approx(200.0)
    assert plan.rows[1].used_gpus["on_demand"] == pytest.approx(100.0)
    unlimited = solve_plan(replace(inputs, site_power=()), SOLVER)
    assert sum(a.buildings for a in unlimited.actions) == 3


def _rofr_inputs(holder_months: tuple[bool, ...] = (True, True)) -> PlanInputs:
    return _inputs(
        3,
        (0.0, 100.0, 100.0),
        supplies=(_supply("cloud", "on_demand", (100.0,) * 3, 100.0),),
        markets=(
            _market("holder", "hold", 3.0, 1, 2, (*holder_months, False), limit=50.0),
            _market("rival", "other", 1.0, 1, 2, (True, True, False)),
        ),
        rofr=(RofrRule("k", "hold", "GB200", (0, 1)),),
    )


def test_first_refusal_fills_the_holder_before_a_cheaper_rival() -> None:
    plan = solve_plan(_rofr_inputs(), SOLVER)
    signed = {(a.option, a.month): a.gpus for a in plan.actions}
    # The rival may sign in month 0 only once the holder is signed to its 50 GPUs.
    assert signed == {("holder", 0): 50, ("rival", 0): 50}
    free = solve_plan(replace(_rofr_inputs(), rofr=()), SOLVER)
    assert {(a.option, a.month): a.gpus for a in free.actions} == {("rival", 0): 100}


def test_first_refusal_frees_the_rival_when_the_holder_offers_nothing() -> None:
    plan = solve_plan(_rofr_inputs(holder_months=(False, False)), SOLVER)
    assert {(a.option, a.month): a.gpus for a in plan.actions} == {("rival", 0): 100}


def test_first_refusal_with_an_unlimited_holder_shuts_the_rival_out() -> None:
    inputs = _rofr_inputs()
    holder = replace(inputs.markets[0], max_gpus_per_month=None)
    plan = solve_plan(replace(inputs, markets=(holder, inputs.markets[1])), SOLVER)
    assert {a.option for a in plan.actions} == {"holder"}


def test_infeasible_demand_is_named() -> None:
    inputs = _inputs(2, (50.0, 500.0), supplies=(_supply("cloud", "on_demand", (100.0,) * 2, 2.0),))
    with pytest.raises(PlanInfeasible) as caught:
        solve_plan(inputs, SOLVER)
    assert caught.value.families == ("demand",)
    assert "from 2030-02 400 GPUs of GB200 cannot be had" in caught.value.message
    assert caught.value.status == "infeasible"


def test_demand_short_under_a_budget_names_what_no_price_buys() -> None:
    # Month 1 wants 500 GPUs; 100 exist at any price. The budget also binds (it pays for 50 GPU-months only): the
    # message must name the 400 GPUs no money can buy, not whatever the budget-bound plan happens to leave unmet.
    inputs = _inputs(
        2,
        (100.0, 500.0),
        supplies=(_supply("cloud", "on_demand", (100.0,) * 2, 2.0),),
        envelope_usd=(50 * 2.0 * H, 50 * 2.0 * H),
    )
    with pytest.raises(PlanInfeasible) as caught:
        solve_plan(inputs, SOLVER)
    assert "from 2030-02 400 GPUs of GB200 cannot be had (demand 500 GPUs) at any price" in caught.value.message


def test_demand_short_only_for_want_of_money_says_within_the_budget() -> None:
    # Capacity suffices (100 GPUs each month) but the budget pays for 50 GPU-months in all: nothing is short at any
    # price, so the demand family's detail says the shortfall is the budget's.
    inputs = _inputs(
        2,
        (100.0, 100.0),
        supplies=(_supply("cloud", "on_demand", (100.0,) * 2, 2.0),),
        envelope_usd=(50 * 2.0 * H, 50 * 2.0 * H),
    )
    with pytest.raises(PlanInfeasible) as caught:
        solve_plan(inputs, SOLVER)
    assert "budget" in caught.value.families
    assert "at any price" not in caught.value.message
    assert "within the budget" in caught.value.message


def test_infeasible_budget_bound_spend_is_named() -> None:
    inputs = _inputs(
        2,
        (50.0, 50.0),
        supplies=(_supply("cloud", "on_demand", (100.0,) * 2, 2.0),),
        fixed=(FixedPayment("k", "reserved", "p", (2e9, 2e9)),),
        envelope_usd=(3e9, 3.5e9),
    )
    with pytest.raises(PlanInfeasible) as caught:
        solve_plan(inputs, SOLVER)
    assert caught.value.families == ("budget",)
    assert caught.value.message == (
        "The plan cannot meet demand within the budget: from 2030-02 the envelope (3.5 B USD) is below the spend "
        "the fleet is already bound to (4.0 B USD). Relaxing the budget makes it feasible."
    )


def test_infeasible_first_refusal_is_named() -> None:
    # The holder's option starts past the horizon, so the rival is shut out and nothing else can supply.
    inputs = _inputs(
        2,
        (0.0, 100.0),
        markets=(_market("holder", "hold", 3.0, 5, 2, (True, True)), _market("rival", "x", 1.0, 1, 2, (True, True))),
        rofr=(RofrRule("k", "hold", "GB200", (0,)),),
    )
    with pytest.raises(PlanInfeasible) as caught:
        solve_plan(inputs, SOLVER)
    assert "rofr" in caught.value.families
    assert "first refusal" in caught.value.message


def test_infeasible_site_power_is_named() -> None:
    inputs = _inputs(
        2,
        (0.0, 200.0),
        builds=(_build(gpus=100, mw=10.0, most=2),),
        site_power=(SitePower("s", 15.0),),
    )
    with pytest.raises(PlanInfeasible) as caught:
        solve_plan(inputs, SOLVER)
    assert set(caught.value.families) == {"demand", "power"}
    assert "site power" in caught.value.message and "15.0 MW of IT power left" in caught.value.message


def test_unbounded_is_said_in_words() -> None:
    inputs = _inputs(
        1,
        (10.0,),
        supplies=(_supply("cloud", "on_demand", (100.0,), 2.0),),
        envelope_usd=(0.0,),
        over_budget_penalty=-1.0,
    )
    with pytest.raises(PlanInfeasible) as caught:
        solve_plan(inputs, SOLVER)
    assert caught.value.status == "unbounded"
    assert "negative cost: slack[0]" in caught.value.message


def test_solver_failure_is_said_in_words() -> None:
    def broken(lp: LinearProgram) -> LpSolution:
        return LpSolution("error", None, float("nan"), 0.0, "out of memory")

    with pytest.raises(PlanInfeasible, match="The solver failed: out of memory"):
        solve_plan(worked_example(), broken)


def test_program_stays_small() -> None:
    lp = build_lp(_rofr_inputs())
    kinds = [k for k, _, _ in lp.cols]
    # Only signable months whose capacity starts inside the horizon get a signing variable.
    assert kinds.count("sign") == 4
    assert lp.is_mip() and kinds.count("z") == 2
    assert set(lp.row_family) == {"demand", "market", "rofr", "spend"}


@st.composite
def _random_inputs(draw: st.DrawFn) -> PlanInputs:
    n = draw(st.integers(1, 6))
    cap = st.floats(0, 500, allow_nan=False)
    supplies = tuple(
        _supply(
            f"s{i}",
            draw(st.sampled_from(["owned", "on_demand", "reserved"])),
            tuple(draw(cap) for _ in range(n)),
            draw(st.floats(0, 10)),
        )
        for i in range(draw(st.integers(0, 3)))
    )
    markets = tuple(
        _market(
            f"o{i}",
            f"p{i}",
            draw(st.floats(0.1, 10)),
            draw(st.integers(0, 2)),
            draw(st.integers(1, 4)),
            tuple(draw(st.booleans()) for _ in range(n)),
            draw(st.one_of(st.none(), st.floats(1, 300))),
        )
        for i in range(draw(st.integers(0, 2)))
    )
    builds = (
        (_build(gpus=draw(st.integers(1, 300)), most=draw(st.integers(1, 2)), capex=draw(st.floats(0, 1e5))),)
        if draw(st.booleans())
        else ()
    )
    return _inputs(
        n,
        tuple(draw(st.floats(0, 1000, allow_nan=False)) for _ in range(n)),
        supplies=supplies,
        markets=markets,
        builds=builds,
        unmet_penalty_usd_per_gpu_hour=draw(st.floats(0.5, 50)),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_random_inputs())
def test_any_plan_respects_capacity_and_balances_demand(inputs: PlanInputs) -> None:
    plan = solve_plan(inputs, SOLVER)
    lp = build_lp(inputs)
    for t, row in enumerate(plan.rows):
        demand = row.demand_gpus["GB200"]
        used = sum(row.used_gpus.values())
        assert used + row.shortfall_gpus["GB200"] == pytest.approx(demand, abs=1e-4 * max(1.0, demand))
        for kind in row.used_gpus:
            assert row.used_gpus[kind] <= row.supply_gpus[kind] + 1e-4 * max(1.0, row.supply_gpus[kind])
        for s in inputs.supplies:
            j = lp.index.get(("use", s.id, t))
            assert j is None or lp.col_upper[j] == s.capacity[t]
    assert plan.spend_usd == pytest.approx(sum(r.spend_usd for r in plan.rows))
    assert plan.objective_usd >= plan.spend_usd - 1e-6 * max(1.0, plan.spend_usd)
