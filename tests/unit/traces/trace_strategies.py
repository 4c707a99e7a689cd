"""Hypothesis strategies for trace jobs that keep TraceJob's invariants (as every reader's output does)."""

from collections import Counter

from hypothesis import strategies as st

from stargate.traces import JOB_KINDS, MAX_GPUS, Trace, TraceJob

_NAME_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters="|")
names = st.text(_NAME_CHARS, min_size=1, max_size=12).filter(lambda text: text == text.strip())
"""Non-empty names without surrounding space, control characters or '|'."""

seconds = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
positive_seconds = st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def trace_jobs(draw: st.DrawFn, job_id: str) -> TraceJob:
    """One job with every field drawn."""
    return TraceJob(
        id=job_id,
        submit_s=draw(seconds),
        duration_s=draw(positive_seconds),
        gpus=draw(st.integers(1, MAX_GPUS)),
        queue=draw(names),
        gpu_models=tuple(draw(st.lists(names, max_size=3))),
        priority_class=draw(st.none() | names),
        preemptible=draw(st.booleans()),
        checkpoint_interval_s=draw(st.none() | positive_seconds),
        allowed_providers=tuple(draw(st.lists(names, max_size=2))),
        allowed_regions=tuple(draw(st.lists(names, max_size=2))),
        kind=draw(st.sampled_from(JOB_KINDS)),
        estimated_duration_s=draw(st.none() | positive_seconds),
        user=draw(st.none() | names),
        name=draw(st.none() | names),
    )


@st.composite
def traces(draw: st.DrawFn, max_jobs: int = 20) -> Trace:
    """A trace of unique-id jobs, sorted by submission."""
    ids = draw(st.lists(names, max_size=max_jobs, unique=True))
    jobs = sorted((draw(trace_jobs(job_id)) for job_id in ids), key=lambda job: job.submit_s)
    return Trace(jobs=jobs, start=None, skipped=Counter(), bad_rows=[], source="drawn")
