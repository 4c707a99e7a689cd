"""Summary metrics of a simulation run (every job accounted for: finished + rejected + pending = total).

Definitions (times in seconds of trace time):

- JCT and wait figures are None (null in JSON) when no job finished (JCT) or started (wait);
- JCT of a finished job = finish − submit; wait = first start − submit (jobs that never started count their
  wait up to the end of the run in ``p99_wait_s`` of pending jobs only through ``jobs_pending_at_end``);
- ``makespan_s`` = end of the run (the last event handled, or ``until_s`` when it stopped the run) − first
  submission;
- ``gpu_utilization`` = busy GPU-seconds / (GPUs × seconds each cluster was online within the makespan), over
  all clusters; ``owned_gpu_utilization`` the same over clusters of owned providers;
- ``cost_usd`` = Σ GPU-hours run × the price per GPU-hour charged at start (the contract price when one covers
  the cluster, else its list price); ``cloud_gpu_hours`` = GPU-hours run on clusters of cloud providers;
- ``preemptions``: runs stopped (by reason in ``preemptions_by_reason``); ``restart_lost_gpu_hours`` = Σ over
  stopped runs of (work since the run's last checkpoint + the policy's ``restart_cost_s``) × GPUs, in GPU-hours:
  the work a restart does again;
- ``max_wait_s``: the longest wait of a job until its first start;
- ``middle_window`` (with ``trim_jobs`` = k): the same job metrics over the jobs left after dropping the first
  and last k jobs by submission order;
- ``estimate_error``: how far the run-time estimate the engine was given at a job's submission was from its
  actual run time, ``|estimate − actual| / actual``, over the jobs submitted to the engine whose estimate was
  their own (the trace's, or the actual run time under ``--estimates actual``) or learned (``jobs``, median and
  p90; None when there are none), and how many had no estimate but the policy's default (``jobs_default``);
- ``fragmented_gpu_hours`` = ∫ F(t) dt / 3600 over the run, where, after the decisions at each instant, h is the
  first pending job in policy order (the least entry over every queue) of g GPUs, A the GPUs available now on the
  clusters h may use (compatible, up, online, within power caps; pay-per-use ones only once its burst wait is
  over), and F = min(A, g) = g when A ≥ g and h still waits, else 0: GPUs idle in number but unusable for the job
  the policy wants to run next, because they lie on partly used nodes (node shape), on several clusters, or
  behind a reservation or its quota. It is piecewise constant between instants, measured only (no decision reads
  it); ``fragmented_share`` = it / (``gpu_hours`` + it), the share of GPU time lost so;
- ``wait_s_by_reason``: job-seconds pending per wait reason (``quota``, ``capacity``, ``power``, ``clusters_down``,
  ``offline``, ``order``; see :mod:`stargate.engine.waits`) over the run: after the decisions at each instant, each
  pending job counts the time to the next instant under the reason the engine judged for it (a job not judged yet,
  between its arrival and the cycle of that instant, counts nowhere).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from stargate.domain import ProviderKind
from stargate.engine import FleetIndex
from stargate.engine.waits import PUBLIC
from stargate.sim.simulator import SimState


def _pct(values: np.ndarray[Any, Any], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values.size else None


def _mean(values: np.ndarray[Any, Any], scale: float = 1.0, digits: int = 3) -> float | None:
    return round(float(values.mean()) / scale, digits) if values.size else None


def _max(values: np.ndarray[Any, Any]) -> float | None:
    return round(float(values.max()), 3) if values.size else None


def job_metrics(st: SimState, sel: np.ndarray[Any, Any]) -> dict[str, Any]:
    """JCT, wait, cost and cloud metrics over the jobs selected by the boolean mask ``sel``.

    JCT figures are None when no selected job finished, wait figures when none started (not a misleading 0).
    """
    done = sel & ~np.isnan(st.finish)
    jct = (st.finish - st.submit)[done]
    started = sel & ~np.isnan(st.first_start)
    wait = (st.first_start - st.submit)[started]
    return {
        "jobs": int(sel.sum()),
        "jobs_finished": int(done.sum()),
        "avg_jct_s": _mean(jct),
        "avg_jct_h": _mean(jct, 3600.0, 4),
        "p50_jct_s": _pct(jct, 50),
        "p95_jct_s": _pct(jct, 95),
        "p99_jct_s": _pct(jct, 99),
        "avg_wait_s": _mean(wait),
        "p99_wait_s": _pct(wait, 99),
        "max_wait_s": _max(wait),
        "cost_usd": round(float(st.cost[sel].sum()), 2),
        "cloud_gpu_hours": round(float(st.cloud_gpu_s[sel].sum()) / 3600.0, 3),
    }


def estimate_error(st: SimState) -> dict[str, Any]:
    """The ``estimate_error`` block (module docstring)."""
    src = st.estimate_source
    if src.size != st.duration.size:  # a state built by hand, without estimates
        src = np.full(st.duration.size, -1, dtype=np.int8)
    known = ((src == 0) | (src == 1)) & (st.duration > 0)
    err = np.abs(st.estimate[known] - st.duration[known]) / st.duration[known]
    return {
        "jobs": int(known.sum()),
        "jobs_own": int(((src == 0) & (st.duration > 0)).sum()),
        "jobs_learned": int(((src == 1) & (st.duration > 0)).sum()),
        "jobs_default": int((src == 2).sum()),
        "median": _pct(err, 50),
        "p90": _pct(err, 90),
    }


def _capacity_gpu_s(index: FleetIndex, t0: float, t1: float, mask: np.ndarray[Any, Any]) -> float:
    lo = np.maximum(index.on_s, t0)
    hi = np.minimum(index.off_s, t1)
    return float((np.clip(hi - lo, 0.0, None) * index.total)[mask].sum())


def wait_by_reason(st: SimState) -> dict[str, float]:
    """Job-seconds pending per wait reason, every reason named (0.0 when none waited so), s."""
    out = {str(r): 0.0 for r in dict.fromkeys(PUBLIC)}
    for code, seconds in enumerate(st.wait_s):
        out[str(PUBLIC[code])] += seconds
    return {r: round(v, 3) for r, v in out.items()}


def summarize(st: SimState, index: FleetIndex, trim_jobs: int = 0) -> dict[str, Any]:
    """The JSON summary of a run (see docs/reference/cli-simulate.md for every field)."""
    n = st.submit.size
    everyone = np.ones(n, dtype=bool)
    jm = job_metrics(st, everyone)
    finished, rejected = jm["jobs_finished"], len(st.rejected)
    t0 = float(st.submit.min()) if n else 0.0
    t1 = st.end_s
    owned = np.array([index.provider_kind.get(p) is ProviderKind.OWNED for p in index.provider_of], dtype=bool)
    busy = np.zeros(index.n)
    for c, v in st.busy_gpu_s.items():
        busy[c] = v
    cap_all = _capacity_gpu_s(index, t0, t1, np.ones(index.n, dtype=bool))
    cap_owned = _capacity_gpu_s(index, t0, t1, owned)
    cost_by_provider: dict[str, float] = {}
    for c, v in st.cost_by_cluster.items():
        cost_by_provider[index.provider_of[c]] = cost_by_provider.get(index.provider_of[c], 0.0) + v
    out: dict[str, Any] = {
        "jobs_total": n,
        "jobs_finished": finished,
        "jobs_rejected": rejected,
        "rejected_by_reason": dict(sorted(Counter(st.rejected.values()).items())),
        "jobs_pending_at_end": n - finished - rejected,
        "avg_jct_s": jm["avg_jct_s"],
        "p50_jct_s": jm["p50_jct_s"],
        "p95_jct_s": jm["p95_jct_s"],
        "p99_jct_s": jm["p99_jct_s"],
        "avg_wait_s": jm["avg_wait_s"],
        "p99_wait_s": jm["p99_wait_s"],
        "max_wait_s": jm["max_wait_s"],
        "makespan_s": round(max(t1 - t0, 0.0), 3) if n else 0.0,
        "gpu_utilization": round(float(busy.sum()) / cap_all, 4) if cap_all > 0 else 0.0,
        "owned_gpu_utilization": round(float(busy[owned].sum()) / cap_owned, 4) if cap_owned > 0 else 0.0,
        "gpu_hours": round(float(busy.sum()) / 3600.0, 3),
        "cloud_gpu_hours": jm["cloud_gpu_hours"],
        "fragmented_gpu_hours": round(st.fragmented_gpu_s / 3600.0, 3),
        "fragmented_share": round(st.fragmented_gpu_s / (st.fragmented_gpu_s + float(busy.sum())), 4)
        if st.fragmented_gpu_s > 0
        else 0.0,
        "cost_usd": jm["cost_usd"],
        "cost_by_provider": {p: round(v, 2) for p, v in sorted(cost_by_provider.items())},
        "preemptions": int(sum(st.preemptions.values())),
        "preemptions_by_reason": dict(sorted(st.preemptions.items())),
        "restart_lost_gpu_hours": round(st.lost_gpu_s / 3600.0, 3),
        "wait_s_by_reason": wait_by_reason(st),
        "events": st.events,
        "cycles": st.cycles,
    }
    out["estimates"] = st.estimates
    out["estimate_error"] = estimate_error(st)
    if trim_jobs > 0:
        mid = np.zeros(n, dtype=bool)
        if n > 2 * trim_jobs:
            mid[trim_jobs : n - trim_jobs] = True
        out["middle_window"] = {"trim_jobs": trim_jobs, **job_metrics(st, mid)}
    return out
