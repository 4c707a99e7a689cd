"""The bundled stargate-2025 plan solved end to end with the real HiGHS: the scenario file, its fleet, the demand,
the inputs, the program and the plan."""

import time
from pathlib import Path

import pytest

from stargate.engine.plan_demand import demand_lines, month_starts
from stargate.engine.plan_inputs import build_inputs
from stargate.engine.plan_model import build_lp
from stargate.engine.plan_solve import solve_plan
from stargate.planning.highs import highs_solver
from stargate.planning.scenario_file import load_scenario

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stargate-2025" / "plan.yaml"


def test_bundled_plan_solves_optimally_within_five_seconds() -> None:
    began = time.perf_counter()
    loaded = load_scenario(EXAMPLE)
    fleet, scenario = loaded.fleet, loaded.scenario
    months = month_starts(scenario.start, scenario.months)
    demand = demand_lines(scenario, fleet.catalogue(), months, loaded.history)
    inputs = build_inputs(fleet, scenario, demand)
    plan = solve_plan(inputs, highs_solver(time_limit_s=30.0))
    elapsed = time.perf_counter() - began
    assert plan.status == "optimal"
    assert len(plan.rows) == 48
    assert elapsed <= 5.0
    lp = build_lp(inputs)
    assert lp.is_mip()  # the Milam buildings are whole
    for row in plan.rows:
        for model, demand_gpus in row.demand_gpus.items():
            assert row.shortfall_gpus[model] <= demand_gpus + 1e-6
        assert sum(row.used_gpus.values()) + sum(row.shortfall_gpus.values()) == pytest.approx(
            sum(row.demand_gpus.values()), rel=1e-6
        )
    assert any(a.kind == "build" and a.site == "milam" for a in plan.actions)
    assert plan.rows[-1].cumulative_spend_usd == pytest.approx(plan.spend_usd)
