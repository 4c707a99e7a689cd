"""Resampling: a trace of any size drawn from a source trace, keeping its job mix and its arrival pattern.

The method (also in docs/reference/trace-formats.md, "Resampling"), with ``N`` source jobs sorted by submission,
``n`` jobs wanted and a NumPy ``Generator`` seeded with ``seed``:

1. Jobs: draw ``n`` indices uniformly from ``0..N-1`` with replacement; the k-th new job copies every field of the
   source job drawn k-th except ``id`` and ``submit_s``.
2. Arrivals: the source's ``N-1`` inter-arrival gaps ``g_i = s_(i+1) - s_i`` form an empirical distribution; draw
   ``n-1`` gaps from it with replacement, take their running sum from 0, then scale it by ``span / total`` so the
   last arrival is at exactly ``span``. ``span`` is ``span_s`` when given, else the source span × ``n / N`` (the
   same mean arrival rate). When all drawn gaps are 0 (or ``N = 1``), arrivals are evenly spaced over ``span``.
3. Ids: ``r<k>-<source id>``, k = 1..n zero-padded to the width of n, so ids are unique and traceable.

This keeps the distribution of gaps (bursts of jobs in the same second stay bursts) and, by construction, the
distribution of every job field; it does not keep the daily or weekly cycle, nor correlations between consecutive
gaps or between a job and its arrival time. Draw order (indices first, then gaps) is part of the method: the same
source, ``n``, ``seed`` and ``span_s`` give the same trace.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from numpy.typing import NDArray

from stargate.traces._rows import paused_gc
from stargate.traces.model import Trace, TraceJob, build_job


def resample(trace: Trace, n_jobs: int, *, seed: int, span_s: float | None = None) -> Trace:
    """A new trace of ``n_jobs`` jobs drawn from ``trace`` (method in the module docstring); deterministic by seed."""
    source = trace.jobs
    if not source:
        raise ValueError("resample: found a trace with 0 jobs, expected at least 1 job to draw from")
    if n_jobs < 1:
        raise ValueError(f"resample: found n_jobs {n_jobs}, expected at least 1")
    if span_s is not None and not (math.isfinite(span_s) and span_s >= 0):
        raise ValueError(f"resample: found span_s {span_s!r}, expected a finite number of seconds >= 0")
    submits = np.sort(np.fromiter((job.submit_s for job in source), dtype=np.float64, count=len(source)))
    span = span_s if span_s is not None else float(submits[-1] - submits[0]) * n_jobs / len(source)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(source), size=n_jobs)
    arrivals = _arrivals(np.diff(submits), n_jobs, span, rng)
    with paused_gc():
        jobs = _copies(source, picks.tolist(), arrivals.tolist())
    return Trace(jobs=jobs, start=trace.start, skipped=Counter(), bad_rows=[], source=trace.source)


def _arrivals(gaps: NDArray[np.float64], n_jobs: int, span: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """``n_jobs`` non-decreasing arrival times from 0 to ``span``, with gaps drawn from ``gaps``."""
    if n_jobs == 1:
        return np.zeros(1)
    drawn = gaps[rng.integers(0, len(gaps), size=n_jobs - 1)] if len(gaps) else np.zeros(n_jobs - 1)
    times = np.concatenate(([0.0], np.cumsum(drawn)))
    total = float(times[-1])
    if total <= 0:
        return np.linspace(0.0, span, n_jobs)
    times *= span / total
    np.minimum(times, span, out=times)  # rounding may carry a time just past span: clipping keeps the order
    times[-1] = span
    return times


def _copies(source: list[TraceJob], picks: list[int], arrivals: list[float]) -> list[TraceJob]:
    """The new jobs: copies of the picked source jobs with new ids and arrival times."""
    width = len(str(len(picks)))
    jobs = []
    for number, (pick, submit) in enumerate(zip(picks, arrivals, strict=True), start=1):
        job = source[pick]
        jobs.append(
            build_job(
                f"r{number:0{width}d}-{job.id}",
                submit,
                job.duration_s,
                job.gpus,
                job.queue,
                job.gpu_models,
                job.priority_class,
                job.preemptible,
                job.checkpoint_interval_s,
                job.allowed_providers,
                job.allowed_regions,
                job.kind,
                job.estimated_duration_s,
            )
        )
    return jobs
