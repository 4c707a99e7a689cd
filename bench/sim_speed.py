"""Simulator speed: the full Philly trace per policy, and 1,000,000 jobs on a fleet of 100,352 GPUs.

Run on demand (not part of the test suite)::

    .venv/bin/python bench/sim_speed.py                 # both parts
    .venv/bin/python bench/sim_speed.py --skip-million  # Philly only
    .venv/bin/python bench/sim_speed.py --jobs 200000   # a smaller resampled run

For each run it prints jobs/s, events/s, wall time, CPU time and peak RSS, and the ratio to a naive baseline run
in the same process on the same jobs and clusters: strict FIFO, first fit by a linear scan of the clusters in plain
Python (no quotas, no node-level GPU ids, no backfill), i.e. the least a simulator must do. Goals (2-core
machine): the full Philly trace ≤ 5 s, 1,000,000 jobs ≤ 60 s, peak RSS ≤ 2 GB. CPU time is printed beside wall
time because the machine is often shared: CPU time is what the run itself cost.
"""

from __future__ import annotations

import argparse
import heapq
import time
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from stargate.domain import Cluster, Fleet, Provider, Queue, Quota, Site, Team
from stargate.fleetfile import load_fleet
from stargate.sim import SimConfig, run_simulation
from stargate.sim.run import peak_rss_mb
from stargate.traces import Trace, TraceJob, read_trace, resample

PHILLY_CSV = Path("../shared/data/traces/philly/philly.csv")
PHILLY_FLEET = Path("examples/philly")
POLICIES = ("fifo", "stargate", "srtf")


def big_fleet(queues: Sequence[str], clusters: int = 196, nodes: int = 64) -> Fleet:
    """``clusters`` × ``nodes`` × 8 GPUs (196 × 64 × 8 = 100,352) over 4 providers; one queue per trace queue."""
    kinds = [("own", "owned", 1.0), ("c1", "cloud", 2.5), ("c2", "cloud", 3.0), ("c3", "cloud", 4.0)]
    providers = [Provider(id=p, name=p, kind=k) for p, k, _ in kinds]
    sites = [Site(id=f"{p}-site", provider=p, region=f"region-{p}") for p, _, _ in kinds]
    models = ("H100-SXM", "H200", "B200", "GB200")
    cs = [
        Cluster(
            id=f"c{i:03d}",
            site=f"{kinds[i % 4][0]}-site",
            gpu_model=models[(i // 4) % 4],
            gpus_per_node=8,
            nodes=nodes,
            price_per_gpu_hour_usd=Decimal(str(kinds[i % 4][2])),
        )
        for i in range(clusters)
    ]
    quota = [Quota(gpu_model="*", gpus=clusters * nodes * 8 // max(len(queues), 1))]
    qs = [Queue(id=q, team="t", cohort="all", quotas=quota) for q in queues]
    return Fleet(
        name="bench-100k", providers=providers, sites=sites, clusters=cs, teams=[Team(id="t", name="t")], queues=qs
    )


def naive_fifo(jobs: Sequence[TraceJob], cluster_sizes: Sequence[int]) -> tuple[float, int]:
    """The baseline: strict FIFO, first fit by linear scan; returns (average JCT s, events handled)."""
    free = list(cluster_sizes)
    biggest = max(free)
    pending: deque[int] = deque()
    heap: list[tuple[float, int, int, int]] = []  # (time, kind 0 finish / 1 arrival, job, cluster)
    for i, j in enumerate(jobs):
        heap.append((j.submit_s, 1, i, -1))
    heapq.heapify(heap)
    finish = [0.0] * len(jobs)
    events = 0
    while heap:
        now, kind, i, c = heapq.heappop(heap)
        events += 1
        if kind == 0:
            free[c] += jobs[i].gpus
            finish[i] = now
        elif jobs[i].gpus <= biggest:
            pending.append(i)
        while pending:
            g = jobs[pending[0]].gpus
            c = next((k for k, f in enumerate(free) if f >= g), -1)
            if c < 0:
                break
            i = pending.popleft()
            free[c] -= g
            heapq.heappush(heap, (now + jobs[i].duration_s, 0, i, c))
    done = [finish[i] - j.submit_s for i, j in enumerate(jobs) if j.gpus <= biggest]
    return sum(done) / len(done), events


def _seconds(value: float | None) -> str:
    """A duration in seconds for the table, or n/a when no job finished (the summary gives null)."""
    return f"{'n/a':>9}  " if value is None else f"{value:>9,.0f} s"


def run_one(label: str, fleet: Fleet, jobs: Sequence[TraceJob], policy: str, baseline_s: float | None) -> None:
    """Run one policy and print its figures (and the ratio to the baseline)."""
    cpu0 = time.process_time()
    out, _ = run_simulation(fleet, jobs, SimConfig(policy=policy))
    cpu = time.process_time() - cpu0
    ratio = f"{baseline_s / out['wall_s']:.2f}x the baseline's speed" if baseline_s else ""
    print(
        f"{label:<10} {policy:<9} {out['jobs_total']:>9,} jobs  {out['wall_s']:7.2f} s wall  {cpu:7.2f} s CPU  "
        f"{out['jobs_per_s']:>10,.0f} jobs/s  {out['events_per_s']:>10,.0f} events/s  "
        f"peak RSS {out['peak_rss_mb']:6,.0f} MB  avg JCT {_seconds(out['avg_jct_s'])}  "
        f"p99 wait {_seconds(out['p99_wait_s'])}  pending {out['jobs_pending_at_end']}  {ratio}",
        flush=True,
    )


def bench(label: str, fleet: Fleet, trace: Trace, policies: Sequence[str]) -> None:
    """Baseline first, then each policy, on the same jobs."""
    sizes = [c.gpus for c in fleet.clusters]
    t0 = time.perf_counter()
    c0 = time.process_time()
    avg, events = naive_fifo(trace.jobs, sizes)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"{label:<10} {'baseline':<9} {len(trace.jobs):>9,} jobs  {wall:7.2f} s wall  {cpu:7.2f} s CPU  "
        f"{len(trace.jobs) / wall:>10,.0f} jobs/s  {events / wall:>10,.0f} events/s  avg JCT {avg:>9,.0f} s",
        flush=True,
    )
    for p in policies:
        run_one(label, fleet, trace.jobs, p, wall)


def main() -> None:
    """Parse options and run the benchmarks."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the resampled run")
    ap.add_argument("--load", type=float, default=0.6, help="offered load of the resampled run on the big fleet")
    ap.add_argument("--skip-philly", action="store_true")
    ap.add_argument("--skip-million", action="store_true")
    ap.add_argument("--policies", default=",".join(POLICIES))
    args = ap.parse_args()
    policies = args.policies.split(",")
    philly = read_trace(PHILLY_CSV, "philly")
    if not args.skip_philly:
        bench("philly", load_fleet(PHILLY_FLEET), philly, policies)
    if not args.skip_million:
        fleet = big_fleet(sorted({j.queue for j in philly.jobs}))
        work = sum(j.gpus * j.duration_s for j in philly.jobs) / len(philly.jobs) * args.jobs
        span = work / (fleet.total_gpus() * args.load)
        trace = resample(philly, args.jobs, seed=1, span_s=span)
        print(
            f"resampled {args.jobs:,} jobs over {span / 86400:.1f} days on {fleet.total_gpus():,} GPUs "
            f"(offered load {args.load:.0%}); peak RSS so far {peak_rss_mb():,.0f} MB",
            flush=True,
        )
        bench("resampled", fleet, trace, policies)


if __name__ == "__main__":
    main()
