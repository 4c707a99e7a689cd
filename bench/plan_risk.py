"""Monte Carlo risk benchmark: scenarios per second of a plan's risk in-process and on Ray, against a naive baseline.

The plan is synthetic: 48 months, 2 GPU models, 20 fleet sources (8 owned, 3 of them in buildings not yet energised;
4 reserved; 2 commitments; 6 on demand), 3 capex schedules, 4 signings and 2 new builds of the plan, a hard budget
tight enough to hold paid use back in about 70 % of the scenarios, and every risk switched on (building delays,
demand drift, outages at 5 % a month, capex overrun, recourse). Measured in one run:

- **in-process** (``workers=0``): the engine's numpy model, 1,000 scenarios by default;
- **Ray, 1 and 2 workers**: a local Ray started for the measurement (its start-up timed on its own), then the same
  scenarios through :func:`run_risk` on it; the summaries must equal the in-process one;
- **naive baseline**: the same model as a per-scenario pure-Python loop (no numpy; Python's ``random`` draws, so
  figures differ, the work does not; with no risk both give the same figures) on a sample, with the ratio of
  scenarios per second.

Goal: 1,000 scenarios ≤ 60 s, Ray start-up included. Peak memory: the driver's peak RSS, and tracemalloc's peak
over the in-process run. CPU time is printed beside wall time because the development machines are shared.

    .venv/bin/python bench/plan_risk.py                      # 1,000 scenarios, baseline on 100, ~25 s
    .venv/bin/python bench/plan_risk.py --scenarios 200 --baseline 50 --no-ray
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import resource
import time
import tracemalloc
from collections.abc import Callable
from datetime import date
from functools import partial

from stargate.domain.planning import OutageRisk, Risk, Triangular
from stargate.engine.plan_risk import RiskModel, prepare
from stargate.engine.plan_types import (
    Action,
    BuildChoice,
    Commitment,
    DemandLine,
    FixedPayment,
    Plan,
    PlanInputs,
    RiskSummary,
    Supply,
)
from stargate.planning.montecarlo import run_risk

GOAL_S = 60.0
MODELS = ("GB200", "H100-SXM")


def synthetic(months: int = 48) -> tuple[PlanInputs, Plan, Risk]:
    """The benchmark's plan: 20 fleet sources, 4 signings, 2 builds over ``months`` months (see the module text)."""
    n = months
    starts = tuple(date(2026 + i // 12, i % 12 + 1, 1) for i in range(n))
    hours = tuple(730.0 for _ in range(n))
    supplies: list[Supply] = []
    for i in range(8):  # owned; 3 in buildings coming online inside the horizon
        online = 6 + 4 * i if i < 3 else None
        capacity = tuple(0.0 if online is not None and t < online else 20_000.0 for t in range(n))
        supplies.append(
            Supply(
                f"own{i}",
                "owned",
                "owned",
                MODELS[i % 2],
                capacity,
                0.08 + 0.01 * i,
                building=f"b{i}",
                online_month=online,
            )
        )
    for i in range(4):
        supplies.append(Supply(f"res{i}", "reserved", f"cloud{i}", MODELS[i % 2], (10_000.0,) * n, 0.0, f"rc{i}"))
    for i in range(2):
        supplies.append(Supply(f"com{i}", "commitment", f"cloud{i}", MODELS[i], (15_000.0,) * n, 2.1, f"cc{i}"))
    for i in range(6):
        supplies.append(Supply(f"od{i}", "on_demand", f"cloud{i % 4}", MODELS[i % 2], (8_000.0,) * n, 3.0 + 0.2 * i))
    fixed = [FixedPayment(f"rc{i}", "reserved", f"cloud{i}", (10_000 * 1.6 * 730.0,) * n) for i in range(4)]
    fixed += [
        FixedPayment(f"b{i}", "capex", "owned", tuple(5e8 if t < 6 + 4 * i else 0.0 for t in range(n)))
        for i in range(3)
    ]
    commitments = [Commitment(f"cc{i}", f"cloud{i}", (10_000 * 2.1 * 730.0,) * n, (f"com{i}",)) for i in range(2)]
    demand = [
        DemandLine(
            f"d-{m}",
            "training",
            m,
            tuple(min(120_000.0 * 1.03**t, 400_000.0) * (1.0 if j == 0 else 0.6) for t in range(n)),
        )
        for j, m in enumerate(MODELS)
    ]
    builds = (BuildChoice("build", "site", "owned", MODELS[0], 25_000, 50.0, 2.5e9, 18, 4, 0, 0.09),)
    actions = [
        Action(
            "sign",
            f"mkt{i}",
            f"cloud{i}",
            MODELS[i % 2],
            2 + 6 * i,
            5 + 6 * i,
            30_000,
            24,
            2.0,
            30_000 * 2.0 * 730 * 24,
        )
        for i in range(4)
    ]
    actions += [
        Action("build", "build", "owned", MODELS[0], 3 + 6 * i, 21 + 6 * i, 25_000, None, None, 2.5e9, 1)
        for i in range(2)
    ]
    envelope = tuple(2.0e9 * (t + 1) for t in range(n))  # tight: the hard budget holds use back in most scenarios
    inputs = PlanInputs(
        "bench",
        starts,
        hours,
        tuple(demand),
        tuple(supplies),
        tuple(fixed),
        tuple(commitments),
        (),
        builds,
        (),
        (),
        envelope,
        20.0,
        None,
    )
    plan = Plan("bench", "optimal", 0.0, (), tuple(actions), 0.0, 0.0, None)
    risk = Risk(
        building_delay_months=Triangular(low=0, mode=2, high=9),
        demand_growth_sigma=0.25,
        capex_overrun=Triangular(low=0.95, mode=1.1, high=1.6),
        outages=OutageRisk(probability_per_month=0.05, capacity_lost=0.5, months=2),
        recourse_usd_per_gpu_hour=6.0,
    )
    return inputs, plan, risk


def naive(model: RiskModel, seed: int, index: int) -> tuple[float, float, bool]:
    """The same scenario model as plain Python loops over months, models and units: no numpy in the loop."""
    rnd = random.Random(seed * 1_000_003 + index)
    risk = model.risk
    n = model.months
    hours = model.hours.tolist()
    base = model.capacity.tolist()
    capacity = [row[:] for row in base]
    epsilon = rnd.gauss(0.0, risk.demand_growth_sigma)
    if risk.building_delay_months is not None:
        shape = risk.building_delay_months
        for delay in model.delays:
            k = math.floor(rnd.triangular(shape.low, shape.high, shape.mode) + 0.5)
            for row in delay.rows:
                for t in range(delay.online_month, n):
                    src = t - k
                    capacity[row][t] = base[row][src] if src >= delay.online_month else 0.0
    overrun = [1.0] * len(model.capex_usd)
    if risk.capex_overrun is not None:
        shape = risk.capex_overrun
        overrun = [rnd.triangular(shape.low, shape.high, shape.mode) for _ in overrun]
    out = risk.outages
    providers = model.providers
    active = [[False] * n for _ in range(providers)]
    for p in range(providers):
        for t in range(n):
            if rnd.random() < out.probability_per_month:
                for u in range(t, min(t + out.months, n)):
                    active[p][u] = True
    row_provider = model.row_provider.tolist()
    for row in range(len(capacity)):
        for t in range(n):
            if active[row_provider[row]][t]:
                capacity[row][t] *= 1.0 - out.capacity_lost
    demand = [[d * math.exp(epsilon * t / 12.0) for t, d in enumerate(line)] for line in model.demand.tolist()]
    unit_row = model.unit_row.tolist()
    unit_part = model.unit_part.tolist()
    unit_cost = model.unit_cost.tolist()
    unit_on = model.unit_enabled.tolist()
    seg_start = [*model.segment_start.tolist(), len(unit_row)]
    seg_model = model.segment_model.tolist()
    weight = model.commit_weight.tolist()
    floors = model.commit_floor.tolist()
    fixed = model.fixed_usd.tolist()
    capex = model.capex_usd.tolist()
    envelope = model.envelope.tolist()
    recourse = float(risk.recourse_usd_per_gpu_hour or 0.0)
    price = model.unit_price.tolist()
    committed = [
        fixed[t] + sum(c[t] * o for c, o in zip(capex, overrun, strict=True)) + sum(f[t] for f in floors)
        for t in range(n)
    ]
    if model.hard_budget:  # paid use kept cheapest first while every later envelope allows it
        wanted = _naive_dispatch(model, capacity, demand, hours)
        slack, total = [], 0.0
        for t in range(n):
            total += committed[t] + (model.tail_usd if t == n - 1 else 0.0)
            slack.append(envelope[t] - total)
        for u in model.price_order.tolist():
            if price[u] <= 0:
                continue
            for t in range(n):
                cost = wanted[u][t] * price[u] * hours[t]
                if cost <= 0:
                    continue
                kept = min(cost, max(min(slack[t:]), 0.0))
                wanted[u][t] *= kept / cost
                for s in range(t, n):
                    slack[s] -= kept
        limit = wanted
    else:
        limit = None
    spent = shortfall_hours = 0.0
    breached = False
    for t in range(n):
        free = {}
        for floor, rows, prices in zip(floors, model.commit_rows, model.commit_price, strict=True):
            left = floor[t]
            for row, price in zip(rows, prices, strict=True):
                free[row] = (
                    capacity[row][t] if price <= 0 else min(capacity[row][t], max(left, 0.0) / (price * hours[t]))
                )
                left -= free[row] * price * hours[t]
        month = fixed[t] + sum(c[t] * o for c, o in zip(capex, overrun, strict=True))
        commit_use = [0.0] * len(floors)
        for s, m in enumerate(seg_model):
            need = demand[m][t]
            for u in range(seg_start[s], seg_start[s + 1]):
                row = unit_row[u]
                part = unit_part[u]
                cap = capacity[row][t] if part == 0 else free[row] if part == 1 else capacity[row][t] - free[row]
                take = min(need, max(cap, 0.0)) if unit_on[u] else 0.0
                if limit is not None:
                    take = min(take, limit[u][t])
                need -= take
                month += take * unit_cost[u] * hours[t]
                for c, w in enumerate(weight):
                    commit_use[c] += take * w[u] * hours[t]
            shortfall_hours += need * hours[t]
            month += need * recourse * hours[t]
        month += sum(max(f[t], use) for f, use in zip(floors, commit_use, strict=True))
        spent += month
        tail = model.tail_usd if t == n - 1 else 0.0
        breached = breached or spent + tail > envelope[t] * (1 + 1e-9) + 1e-3
    return shortfall_hours, spent, breached


def _naive_dispatch(
    model: RiskModel, capacity: list[list[float]], demand: list[list[float]], hours: list[float]
) -> list[list[float]]:
    """Use of each unit per month, cheapest first per model, before the budget."""
    out = [[0.0] * model.months for _ in range(model.unit_row.shape[0])]
    starts = [*model.segment_start.tolist(), model.unit_row.shape[0]]
    for t in range(model.months):
        free: dict[int, float] = {}
        for floor, rows, prices in zip(model.commit_floor.tolist(), model.commit_rows, model.commit_price, strict=True):
            left = floor[t]
            for row, price in zip(rows, prices, strict=True):
                free[row] = (
                    capacity[row][t] if price <= 0 else min(capacity[row][t], max(left, 0.0) / (price * hours[t]))
                )
                left -= free[row] * price * hours[t]
        for s, m in enumerate(model.segment_model.tolist()):
            need = demand[m][t]
            for u in range(starts[s], starts[s + 1]):
                row, part = int(model.unit_row[u]), int(model.unit_part[u])
                cap = capacity[row][t] if part == 0 else free[row] if part == 1 else capacity[row][t] - free[row]
                take = min(need, max(cap, 0.0)) if model.unit_enabled[u] else 0.0
                out[u][t] = take
                need -= take
    return out


def timed(label: str, run: Callable[[], RiskSummary], scenarios: int) -> tuple[RiskSummary, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    summary = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<34} {wall:8.2f} s wall {cpu:7.2f} s driver CPU {scenarios / wall:10.0f} scenarios/s")
    return summary, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=1_000)
    parser.add_argument("--baseline", type=int, default=100, help="scenarios of the naive baseline (a sample)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurements")
    args = parser.parse_args()
    inputs, plan, risk = synthetic()
    model = prepare(inputs, plan, risk)
    print(
        f"plan: {model.months} months, {len(inputs.supplies)} fleet sources, {len(plan.actions)} actions, "
        f"{model.unit_row.shape[0]} dispatch units; {args.scenarios} scenarios; load average "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    reference, in_wall = timed(
        "in-process (workers=0)",
        lambda: run_risk(inputs, plan, risk, args.scenarios, args.seed, workers=0),
        args.scenarios,
    )
    tracemalloc.start()  # apart: tracing slows the run several times
    run_risk(inputs, plan, risk, args.scenarios, args.seed, workers=0)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    start = time.perf_counter()
    for i in range(args.baseline):
        naive(model, args.seed, i)
    base_wall = time.perf_counter() - start
    base_rate = args.baseline / base_wall
    print(
        f"{'naive pure-Python loop (sample)':<34} {base_wall:8.2f} s wall for {args.baseline} "
        f"{base_rate:10.0f} scenarios/s"
    )
    print(f"ratio in-process ÷ naive: {args.scenarios / in_wall / base_rate:.1f}×")
    worst = in_wall
    if not args.no_ray:
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        for workers in (1, 2):
            start = time.perf_counter()
            ray.init(
                address="local",
                num_cpus=workers,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                object_store_memory=256 * 1024 * 1024,
            )
            startup = time.perf_counter() - start
            try:
                summary, wall = timed(
                    f"Ray, {workers} worker(s), after start-up",
                    partial(run_risk, inputs, plan, risk, args.scenarios, args.seed, workers=workers),
                    args.scenarios,
                )
            finally:
                ray.shutdown()
            print(
                f"{'':<34} Ray start-up {startup:.2f} s; total {startup + wall:.2f} s; "
                f"same summary as in-process: {summary == reference}"
            )
            worst = max(worst, startup + wall)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: driver RSS {rss_mb:.0f} MB; tracemalloc peak of the in-process run {traced_peak / 1e6:.1f} MB")
    print(
        f"risk: shortfall P10/P50/P90 {reference.shortfall_gpu_hours.p10:,.0f} / "
        f"{reference.shortfall_gpu_hours.p50:,.0f} / {reference.shortfall_gpu_hours.p90:,.0f} GPU-hours; spend P50 "
        f"{reference.spend_usd.p50 / 1e9:,.2f} B USD; "
        f"budget breach probability {reference.budget_breach_probability:.1%}"
    )
    verdict = "met" if worst <= GOAL_S else "MISSED"
    print(f"goal 1,000 scenarios ≤ {GOAL_S:.0f} s (slowest path, start-up included, {worst:.1f} s): {verdict}")


if __name__ == "__main__":
    main()
