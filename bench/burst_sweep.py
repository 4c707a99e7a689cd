"""Bursting sweep: the Philly trace on examples/philly-burst (512 owned GPUs + an on-demand cloud) under waiting
settings, compared with Starburst's published points on the same CSV and setting.

Metrics are over the middle 72,247 jobs (5,000 dropped at each end by submission order), as Starburst reports them:
cloud GPU-hours and average JCT in hours. Reference points (Starburst's open simulator, USENIX ATC 2024):

- burst at once (no wait): 179,521 cloud GPU-hours at avg JCT 3.354 h;
- Starburst's policy:       105,143 cloud GPU-hours at avg JCT 3.648 h.

A setting *dominates* Starburst's point when it uses fewer cloud GPU-hours at no worse avg JCT. Waiting settings:
``burst_after_s`` (constant wait), ``burst_wait_per_gpu_hour_s`` (compute-proportional wait: seconds per GPU-hour
of the job's estimated work, estimates = actual run times, as Starburst assumes) and ``burst_wait_max_s`` (the
longest any job waits before it may burst; ``inf``: no cap). Jobs are placed by node shape (one node, or whole nodes
plus one, as in Starburst's simulator); ``frag GPU-h`` is the run's ``fragmented_gpu_hours`` (GPUs free in number but
unusable for the first waiting job). Run on demand::

    .venv/bin/python bench/burst_sweep.py            # the default grid (~40 runs, 10-20 s each)
    .venv/bin/python bench/burst_sweep.py --quick    # 8 runs
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

from stargate.fleetfile import load_fleet
from stargate.sim import SimConfig, run_simulation
from stargate.traces import read_trace

PHILLY_CSV = Path("../shared/data/traces/philly/philly.csv")
FLEET = Path("examples/philly-burst")
TRIM = 5000
STARBURST = (105_143.0, 3.648)
NO_WAIT = (179_521.0, 3.354)


def main() -> None:
    """Run the grid and print one line per setting, marking those that dominate Starburst's point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 6-run grid")
    args = ap.parse_args()
    fleet = load_fleet(FLEET)
    jobs = read_trace(PHILLY_CSV, "philly").jobs
    policies = ("srtf", "stargate")
    afters = (0.0,) if args.quick else (0.0, 900.0)
    per_gpu_hour = (0.0, 300.0, 600.0) if args.quick else (0.0, 150.0, 250.0, 300.0, 400.0, 600.0)
    wait_max = (math.inf, 2 * 86_400.0) if args.quick else (math.inf, 86_400.0, 2 * 86_400.0)
    print(
        f"reference: burst at once {NO_WAIT[0]:,.0f} cloud GPU-hours at {NO_WAIT[1]:.3f} h; "
        f"Starburst {STARBURST[0]:,.0f} cloud GPU-hours at {STARBURST[1]:.3f} h"
    )
    print(
        f"{'policy':<9} {'after s':>8} {'s/GPU-h':>8} {'max wait s':>10} {'cloud GPU-h':>12} {'avg JCT h':>10} "
        f"{'p99 wait s':>11} {'frag GPU-h':>10} {'owned util':>10}  verdict"
    )
    best: tuple[float, str] | None = None
    for policy, after, per, cap in itertools.product(policies, afters, per_gpu_hour, wait_max):
        if per == 0.0 and cap < math.inf:
            continue  # nothing to cap: the wait is burst_after_s alone
        settings = {"burst_after_s": after, "burst_wait_per_gpu_hour_s": per, "burst_wait_max_s": cap}
        config = SimConfig(policy=policy, settings=settings, estimates="actual")  # the oracle, as Starburst
        out, _ = run_simulation(fleet, jobs, config, trim_jobs=TRIM)
        mw = out["middle_window"]
        cloud, jct = mw["cloud_gpu_hours"], mw["avg_jct_h"]
        dominates = cloud < STARBURST[0] and jct <= STARBURST[1]
        verdict = "dominates Starburst" if dominates else ""
        print(
            f"{policy:<9} {after:>8,.0f} {per:>8,.0f} {cap:>10,.0f} {cloud:>12,.0f} {jct:>10.3f} "
            f"{mw['p99_wait_s']:>11,.0f} {out['fragmented_gpu_hours']:>10,.0f} {out['owned_gpu_utilization']:>10.1%}"
            f"  {verdict}",
            flush=True,
        )
        if dominates and (best is None or cloud < best[0]):
            flags = f"--policy {policy} --burst-after {after:.0f} --burst-wait-per-gpu-hour {per:.0f}"
            best = (cloud, flags + (f" --burst-wait-max {cap:.0f}" if cap < math.inf else ""))
    if best is not None:
        print(f"least cloud use that dominates Starburst: {best[0]:,.0f} cloud GPU-hours with {best[1]}")
    else:
        print("no setting of this grid dominates Starburst's point")


if __name__ == "__main__":
    main()
