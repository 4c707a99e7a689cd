"""Resampling: deterministic by seed, the requested size and span, and the source's job mix and gap shape."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trace_helpers import PHILLY_CSV
from trace_strategies import traces

from stargate.traces import Trace, TraceJob, read_trace, resample


@pytest.fixture(scope="module")
def philly() -> Trace:
    """The Philly trace, read once for this module."""
    return read_trace(PHILLY_CSV, "philly")


@pytest.fixture(scope="module")
def big(philly: Trace) -> Trace:
    """Philly resampled to 100,000 jobs at the same arrival rate."""
    return resample(philly, 100_000, seed=7)


def test_same_seed_same_trace_other_seed_other_trace(philly: Trace) -> None:
    """Determinism: equal jobs for equal seeds; a different seed draws differently."""
    first = resample(philly, 5_000, seed=1)
    assert resample(philly, 5_000, seed=1).jobs == first.jobs
    assert resample(philly, 5_000, seed=2).jobs != first.jobs


def test_size_ids_order_and_span(philly: Trace, big: Trace) -> None:
    """n jobs, unique ids naming their source job, sorted, from 0 to the source span × n / N."""
    assert len(big.jobs) == 100_000
    assert len({job.id for job in big.jobs}) == 100_000
    assert big.jobs[0].id.startswith("r000001-philly-")
    submits = np.array([job.submit_s for job in big.jobs])
    assert submits[0] == 0.0
    assert np.all(np.diff(submits) >= 0)
    source_span = philly.jobs[-1].submit_s - philly.jobs[0].submit_s
    assert submits[-1] == pytest.approx(source_span * 100_000 / len(philly.jobs), rel=1e-9)
    assert big.start == philly.start
    assert big.bad_rows == [] and big.skipped == Counter()


def test_job_mix_is_the_sources(philly: Trace, big: Trace) -> None:
    """Each new job is a copy of a source job; mean duration and GPU mix stay close to the source's."""
    by_id = {job.id: job for job in philly.jobs}
    for job in big.jobs[:1000]:
        source = by_id[job.id.split("-", 1)[1]]
        assert (job.duration_s, job.gpus, job.queue, job.kind) == (
            source.duration_s,
            source.gpus,
            source.queue,
            source.kind,
        )
    source_gpu_hours = np.mean([job.duration_s * job.gpus for job in philly.jobs])
    new_gpu_hours = np.mean([job.duration_s * job.gpus for job in big.jobs])
    # GPU-seconds per job are heavy-tailed (a few 128-GPU jobs): allow 15 %; plain durations within 5 %.
    assert new_gpu_hours == pytest.approx(source_gpu_hours, rel=0.15)
    assert np.mean([job.duration_s for job in big.jobs]) == pytest.approx(
        np.mean([job.duration_s for job in philly.jobs]), rel=0.05
    )
    source_mix = Counter(job.gpus for job in philly.jobs)
    new_mix = Counter(job.gpus for job in big.jobs)
    for gpus in (1, 2, 4, 8):
        assert new_mix[gpus] / len(big.jobs) == pytest.approx(source_mix[gpus] / len(philly.jobs), abs=0.005)


def test_gaps_keep_the_sources_shape(philly: Trace, big: Trace) -> None:
    """The gap distribution keeps its shape: same share of same-second arrivals, same scale-free quantile ratios.

    (All gaps are scaled by one factor so the span comes out exact; ratios of quantiles do not depend on it.)
    """
    source_gaps = np.diff([job.submit_s for job in philly.jobs])
    new_gaps = np.diff([job.submit_s for job in big.jobs])
    assert np.mean(new_gaps == 0) == pytest.approx(np.mean(source_gaps == 0), abs=0.01)
    source_median, new_median = np.quantile(source_gaps, 0.5), np.quantile(new_gaps, 0.5)
    for q in (0.25, 0.75, 0.9, 0.99):
        assert np.quantile(new_gaps, q) / new_median == pytest.approx(
            np.quantile(source_gaps, q) / source_median, rel=0.1
        )
    assert new_gaps.mean() == pytest.approx(source_gaps.mean(), rel=0.05)  # same arrival rate


def test_span_can_be_chosen(philly: Trace) -> None:
    """span_s sets the last arrival; 0 puts every job at 0."""
    assert resample(philly, 1000, seed=3, span_s=86_400.0).jobs[-1].submit_s == 86_400.0
    assert {job.submit_s for job in resample(philly, 10, seed=3, span_s=0.0).jobs} == {0.0}


def test_degenerate_sources() -> None:
    """One source job, or all at one instant: arrivals spread evenly over the span."""
    one = Trace(jobs=[TraceJob("a", 5.0, 10.0, 2, "q")], start=None, skipped=Counter(), bad_rows=[], source="x")
    spread = resample(one, 5, seed=0, span_s=40.0)
    assert [job.submit_s for job in spread.jobs] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert [job.id for job in spread.jobs] == ["r1-a", "r2-a", "r3-a", "r4-a", "r5-a"]
    assert [job.submit_s for job in resample(one, 1, seed=0).jobs] == [0.0]


@pytest.mark.parametrize(
    ("n_jobs", "span_s", "message"),
    [(0, None, "found n_jobs 0"), (5, -1.0, "found span_s -1.0"), (5, float("nan"), "found span_s nan")],
)
def test_bad_arguments(philly: Trace, n_jobs: int, span_s: float | None, message: str) -> None:
    """Nonsense sizes and spans are refused with the value found."""
    with pytest.raises(ValueError, match=message):
        resample(philly, n_jobs, seed=0, span_s=span_s)
    empty = Trace(jobs=[], start=None, skipped=Counter(), bad_rows=[], source="x")
    with pytest.raises(ValueError, match="found a trace with 0 jobs"):
        resample(empty, 5, seed=0)


@settings(max_examples=40, deadline=None)
@given(trace=traces(max_jobs=8).filter(lambda trace: trace.jobs), n_jobs=st.integers(1, 50), seed=st.integers(0, 2**32))
def test_invariants_hold_for_any_source(trace: Trace, n_jobs: int, seed: int) -> None:
    """Any source: n jobs, unique ids, sorted non-negative arrivals, every job a copy of a source job."""
    result = resample(trace, n_jobs, seed=seed)
    assert len(result.jobs) == n_jobs
    assert len({job.id for job in result.jobs}) == n_jobs
    submits = [job.submit_s for job in result.jobs]
    assert submits == sorted(submits) and submits[0] == 0.0
    sources = {(job.duration_s, job.gpus, job.queue, job.gpu_models, job.kind) for job in trace.jobs}
    assert all((job.duration_s, job.gpus, job.queue, job.gpu_models, job.kind) in sources for job in result.jobs)
    assert resample(trace, n_jobs, seed=seed).jobs == result.jobs
