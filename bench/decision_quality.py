"""Decision quality: the Philly trace on the 512 owned GPUs of examples/philly-burst with bursting off, every policy
told what a real server knows (the honest mode) and, beside it, told each job's actual run time (the oracle).

One table: avg, p50 and p99 JCT, p99 and max wait, preemptions, GPU-hours lost to restarts, the estimate error and
the run's wall and CPU time. Then the goals for the default policy in the honest mode, each checked against the
figures of this same run:

- avg JCT at most 0.35 times FIFO's;
- p99 wait at most 0.5 times FIFO's;
- max wait at most FIFO's (nobody starves);
- avg JCT within 1.5 times the oracle SRTF's;
- the whole trace simulated in under 15 s (wall).

FIFO never reads an estimate, so its two modes decide alike. Oracle rows are labelled as such: no production
scheduler knows run times in advance. Run on demand::

    .venv/bin/python bench/decision_quality.py                     # every policy, both modes (~5 min)
    .venv/bin/python bench/decision_quality.py --policies fifo,las --workers 2
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from stargate.engine import Override, policy_for
from stargate.engine.policies import POLICIES
from stargate.fleetfile import load_fleet
from stargate.sim import SimConfig, run_simulation
from stargate.traces import read_trace

PHILLY_CSV = Path("../shared/data/traces/philly/philly.csv")
FLEET = Path("examples/philly-burst")
NO_BURST = {"burst_after_s": 100_000 * 86_400.0}
"""Bursting off (as ``--burst-after 100000d``): no job waits that long, so only the 512 owned GPUs run work."""
ORACLE = "actual"


def honest_mode() -> str:
    """The simulator's default estimates mode (what a real server knows)."""
    return str(SimConfig().estimates)


def run_one(policy: str, mode: str) -> dict[str, Any]:
    """One simulation; its summary plus the CPU time it took, s."""
    fleet = load_fleet(FLEET)
    jobs = read_trace(PHILLY_CSV, "philly").jobs
    settings = dict(NO_BURST) if "burst_after_s" in POLICIES[policy].__dataclass_fields__ else {}
    cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    t0 = time.perf_counter()
    out, _ = run_simulation(fleet, jobs, SimConfig(policy=policy, settings=settings, estimates=mode))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    out["bench_wall_s"], out["bench_cpu_s"], out["bench_mode"] = wall, cpu1 - cpu0, mode
    return out


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _error(out: dict[str, Any]) -> str:
    err = out.get("estimate_error")
    if not isinstance(err, dict) or err.get("median") is None:
        return "n/a"
    return f"{err['median']:.2f}/{err['p90']:.2f}"


def main() -> None:
    """Run the grid, print the table and the goal checks."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default=",".join(POLICIES), help="comma-separated policy names")
    ap.add_argument("--workers", type=int, default=1, help="simulations run at once (processes)")
    args = ap.parse_args()
    policies = [p for p in args.policies.split(",") if p]
    for p in policies:
        if p not in POLICIES:
            ap.error(f"--policies: unknown policy '{p}'; expected some of {', '.join(POLICIES)}")
    honest = honest_mode()
    grid = list(dict.fromkeys((p, m) for p in policies for m in (honest, ORACLE)))
    load = os.getloadavg()[0]
    print(f"machine load average: {load:.1f}; honest mode: --estimates {honest}; oracle: --estimates actual")
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = dict(zip(grid, pool.map(run_one, *zip(*grid, strict=True)), strict=True))
    head = (
        f"{'policy':<9} {'told':<12} {'avg JCT s':>10} {'p50 JCT s':>10} {'p99 JCT s':>11} {'p99 wait s':>11} "
        f"{'max wait s':>11} {'preempt':>8} {'lost GPU-h':>10} {'est err p50/p90':>15} {'wall s':>7} {'CPU s':>6}"
    )
    print(head)
    for (policy, mode), out in results.items():
        told = "oracle" if mode == ORACLE else mode
        print(
            f"{policy:<9} {told:<12} {_num(out['avg_jct_s']):>10} {_num(out['p50_jct_s']):>10} "
            f"{_num(out['p99_jct_s']):>11} {_num(out['p99_wait_s']):>11} {_num(out['max_wait_s']):>11} "
            f"{out['preemptions']:>8,} {_num(out.get('restart_lost_gpu_hours'), 1):>10} {_error(out):>15} "
            f"{out['bench_wall_s']:>7.1f} {out['bench_cpu_s']:>6.1f}"
        )
    _goals(results, honest)


def _goals(results: dict[tuple[str, str], dict[str, Any]], honest: str) -> None:
    """Check the default policy's honest run against FIFO's and the oracle SRTF's, when they were run."""
    default = policy_for(load_fleet(FLEET).scheduling, Override(None, {})).name
    mine, fifo, srtf = results.get((default, honest)), results.get(("fifo", honest)), results.get(("srtf", ORACLE))
    if mine is None or fifo is None:
        print(f"goals: need the runs of fifo and {default} (the default policy) to check")
        return
    checks = [
        ("avg JCT <= 0.35 x FIFO", mine["avg_jct_s"], 0.35 * fifo["avg_jct_s"]),
        ("p99 wait <= 0.5 x FIFO", mine["p99_wait_s"], 0.5 * fifo["p99_wait_s"]),
        ("max wait <= FIFO", mine["max_wait_s"], fifo["max_wait_s"]),
        ("simulation wall s < 15", mine["bench_wall_s"], 15.0),
    ]
    if srtf is not None:
        checks.append(("avg JCT <= 1.5 x oracle SRTF", mine["avg_jct_s"], 1.5 * srtf["avg_jct_s"]))
    print(f"goals for the default policy ({default}, told: {honest}):")
    for name, value, bound in checks:
        verdict = "met" if value <= bound else f"missed by {value / bound:.2f}x"
        print(f"  {name:<30} {value:>12,.1f} against {bound:>12,.1f}  {verdict}")


if __name__ == "__main__":
    main()
