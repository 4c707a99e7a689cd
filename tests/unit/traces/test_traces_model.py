"""The trace model: the fast builder gives ordinary TraceJobs; located errors read well."""

import dataclasses
import pickle
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trace_strategies import trace_jobs

from stargate.traces import BadRow, Trace, TraceError, TraceJob
from stargate.traces.model import build_job


@given(job=st.text(min_size=1, max_size=5).flatmap(trace_jobs))
def test_build_job_equals_the_dataclass_constructor(job: TraceJob) -> None:
    """build_job(*fields) is an equal, hashable, frozen TraceJob that dataclasses.replace accepts."""
    values = [getattr(job, item.name) for item in dataclasses.fields(TraceJob)]
    built = build_job(*values)
    assert type(built) is TraceJob
    assert built == job and hash(built) == hash(job) and repr(built) == repr(job)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.gpus = 2  # type: ignore[misc]
    assert dataclasses.replace(built, gpus=job.gpus + 1).gpus == job.gpus + 1
    assert pickle.loads(pickle.dumps(built)) == job  # e.g. shipped to another process


def test_build_job_needs_every_field() -> None:
    """A missing field is a TypeError, not a half-built job."""
    with pytest.raises(TypeError):
        build_job("a", 0.0, 1.0, 1, "q")


def test_bad_row_and_trace_error_read_as_file_line_message() -> None:
    """file:line: message (file: message when no line applies); the error carries the row."""
    bad = BadRow("traces/x.csv", 7, "gpus: found '0', expected a whole number from 1 to 1000000")
    assert str(bad) == "traces/x.csv:7: gpus: found '0', expected a whole number from 1 to 1000000"
    assert str(BadRow("traces/x.csv", 0, "cannot read the file")) == "traces/x.csv: cannot read the file"
    error = TraceError(bad)
    assert error.bad_row is bad and str(error) == str(bad)


def test_trace_notes_default_to_empty() -> None:
    """Readers that change nothing leave notes empty."""
    trace = Trace(jobs=[], start=None, skipped=Counter(), bad_rows=[], source="x")
    assert trace.notes == Counter()
