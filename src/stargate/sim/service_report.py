"""Run services (with a training trace or alone) and report them: the JSON summary of ``stargate simulate
--services`` (fields in docs/reference/cli-simulate.md, "Services").

Per service, over its requests: a request *attains* the objective when it was served and every bound given holds
for it (``ttft ≤ ttft_s``, ``tpot ≤ tpot_s`` when it has two tokens or more, ``e2e ≤ e2e_s``); ``attainment_pct``
is the share of all its requests that did (a request not served does not). Percentiles are over the served
requests. GPU time is every placement of a replica from its start to its stop (cold start and draining included);
its cost is that time × the price per GPU-hour the engine charged at the start, as for training jobs.

The training JCT impact compares the training trace run with the services and run alone (same fleet, policy and
seed): the mean and median JCT of the jobs that finished in each run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np

from stargate.domain import Fleet
from stargate.sim.run import peak_rss_mb
from stargate.sim.service_run import ServiceRequests, ServiceRun
from stargate.sim.services_sim import ServiceSimulator
from stargate.sim.simulator import SimConfig, SimState, Simulator, TraceJobLike

_F = np.ndarray[Any, np.dtype[np.float64]]


def simulate_services(
    fleet: Fleet,
    jobs: Sequence[TraceJobLike],
    config: SimConfig,
    epoch: datetime,
    services: list[ServiceRequests],
    *,
    requests_at_s: float = 0.0,
    tick_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], ServiceSimulator]:
    """Simulate ``services`` (each with its requests) and ``jobs`` on ``fleet``; also ``jobs`` alone when there are
    any (the training JCT impact). The summary and the simulator of the run with services."""
    t0 = time.perf_counter()
    sim = ServiceSimulator(
        fleet, jobs, config, epoch, services, requests_at_s=requests_at_s, tick_s=tick_s, progress=progress
    )
    with_state = sim.run_all()
    wall = time.perf_counter() - t0
    served = sum(s.model.done for s in sim.services)
    out: dict[str, Any] = {"services": [service_summary(s) for s in sim.services]}
    alone = None
    if jobs:
        solo = Simulator(fleet, jobs, _no_procurement(config), epoch)
        alone = solo.run_all()
    out["training"] = training_impact(with_state, alone, len(jobs))
    out["tick_s"] = {s.spec.name: s.tick_s for s in sim.services}
    out["requests_at_s"] = requests_at_s
    out["wall_s"] = round(wall, 3)
    out["requests_per_s"] = round(served / wall, 1) if wall > 0 else 0.0
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out, sim


def _no_procurement(config: SimConfig) -> SimConfig:
    """``config`` with procurement off, as in the run with services (the comparison is like for like)."""
    return replace(config, procurement=False)


def service_summary(run: ServiceRun) -> dict[str, Any]:
    """The summary of one service (see the module docstring)."""
    m, spec = run.model, run.spec
    arrival = np.array(m.arr, dtype=np.float64)
    output = np.array(m.output, dtype=np.int64)
    ttft = np.array(m.ttft, dtype=np.float64)
    e2e = np.array(m.finish, dtype=np.float64) - arrival
    served = ~np.isnan(e2e)
    multi = served & (output >= 2)
    tpot = np.full(arrival.shape, np.nan)
    tpot[multi] = (e2e[multi] - ttft[multi]) / (output[multi] - 1)
    goal = spec.objective
    ok = served.copy()
    if goal.ttft_s is not None:
        ok &= ttft <= goal.ttft_s + 1e-12
    if goal.tpot_s is not None:
        ok &= ~multi | (tpot <= goal.tpot_s + 1e-12)
    if goal.e2e_s is not None:
        ok &= e2e <= goal.e2e_s + 1e-12
    total = int(arrival.size)
    attained = 100.0 * float(ok.sum()) / total if total else None
    gpu_s = sum((r.end_s - r.start_s) * r.gpus for r in run.runs)
    replica_s = sum(r.end_s - r.start_s for r in run.runs)
    cost = sum((r.end_s - r.start_s) * r.gpus / 3600.0 * r.price_usd_per_gpu_hour for r in run.runs)
    by_cluster: dict[str, float] = {}
    for r in run.runs:
        by_cluster[r.cluster] = by_cluster.get(r.cluster, 0.0) + (r.end_s - r.start_s) * r.gpus / 3600.0
    return {
        "name": spec.name,
        "policy": spec.autoscaling.policy.value,
        "requests": total,
        "requests_served": int(served.sum()),
        "requests_unserved": total - int(served.sum()),
        "requests_restarted": m.restarts,
        "objective": {k: v for k, v in goal.model_dump().items() if v is not None},
        "attainment_pct": None if attained is None else round(attained, 3),
        "objective_met": attained is not None and attained >= 100.0 * goal.attainment - 1e-9,
        "ttft_s": _percentiles(ttft[served]),
        "tpot_s": _percentiles(tpot[multi]),
        "e2e_s": _percentiles(e2e[served]),
        "replica_hours": round(replica_s / 3600.0, 4),
        "gpu_hours": round(gpu_s / 3600.0, 4),
        "gpu_hours_by_cluster": {k: round(v, 4) for k, v in sorted(by_cluster.items())},
        "cost_usd": round(cost, 2),
        "replicas_max": _max_replicas(run),
        "placements": len(run.runs),
        "scale_events": len(run.events),
        "scale_events_detail": [
            {"at_s": e.at_s, "from": e.replicas_from, "to": e.replicas_to, "wanted": e.wanted, "reason": e.reason}
            for e in run.events
        ],
        "rejected": run.rejected,
        "start_s": run.start_s,
        "end_s": None if math.isnan(run.end_s) else round(run.end_s, 3),
    }


def _percentiles(values: _F) -> dict[str, float | None]:
    if not values.size:
        return {"p50": None, "p99": None, "mean": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": round(float(p50), 4), "p99": round(float(p99), 4), "mean": round(float(values.mean()), 4)}


def _max_replicas(run: ServiceRun) -> int:
    """The most replicas placed at once (GPUs held)."""
    edges = sorted([(r.start_s, 1) for r in run.runs] + [(r.end_s, -1) for r in run.runs], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def training_impact(with_services: SimState, alone: SimState | None, jobs: int) -> dict[str, Any]:
    """Mean and median JCT of the training jobs with the services and without them, and the change."""
    if alone is None:
        return {"measured": False, "why": "no training trace (--trace)", "jobs": jobs}
    a, b = _jct(with_services), _jct(alone)
    return {
        "measured": True,
        "jobs": jobs,
        "with_services": a,
        "without_services": b,
        "mean_jct_change_pct": _change(a["mean_jct_s"], b["mean_jct_s"]),
        "median_jct_change_pct": _change(a["median_jct_s"], b["median_jct_s"]),
        "preemptions_with_services": sum(with_services.preemptions.values()),
        "preemptions_without_services": sum(alone.preemptions.values()),
    }


def _jct(st: SimState) -> dict[str, Any]:
    done = ~np.isnan(st.finish)
    jct = (st.finish - st.submit)[done]
    return {
        "jobs_finished": int(done.sum()),
        "mean_jct_s": round(float(jct.mean()), 3) if jct.size else None,
        "median_jct_s": round(float(np.median(jct)), 3) if jct.size else None,
    }


def _change(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return round(100.0 * (new - old) / old, 3)
