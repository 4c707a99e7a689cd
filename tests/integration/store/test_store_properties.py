"""Property tests (hypothesis) on SQLite: the job state machine under random walks, and keyset pagination."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from stargate.domain import JobReason
from stargate.store import (
    Database,
    IllegalTransitionError,
    JobEventRow,
    JobRow,
    JobStatus,
    is_legal,
    record_submission,
    transition,
    upgrade,
)
from stargate.store.repositories import jobs as job_repo

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Database]:
    """A migrated SQLite database."""
    database = Database.open(sqlite_url)
    upgrade(database.engine)
    yield database
    database.close()


def _new_job(queue: str = "q", status: JobStatus = JobStatus.PENDING) -> JobRow:
    job = JobRow(
        name="p", queue_id=queue, team_id=f"team-{queue}", kind="batch", gpus=1, gpu_models=[],
        priority_class="normal", priority=500, preemptible=True, spec={}, status=status, reason="submitted",
        attempt=0, progress_s=0.0, submitted_by="test", submitted_at=T0, gpu_ids=[],
    )  # fmt: skip
    return job


@FAST
@given(walk=st.lists(st.sampled_from(list(JobStatus)), max_size=12))
def test_a_random_walk_obeys_the_state_machine(db: Database, walk: list[JobStatus]) -> None:
    with db.write() as s:
        job = _new_job()
        s.add(job)
        s.flush()
        record_submission(s, job, "test", T0)
        moved, requeues, current = 0, 0, JobStatus.PENDING
        for step, target in enumerate(walk):
            if is_legal(current, target):
                transition(s, job, target, JobReason.OTHER, "walker", T0 + timedelta(seconds=step), f"step {step}")
                moved, requeues, current = moved + 1, requeues + (target is JobStatus.PENDING), target
            else:
                with pytest.raises(IllegalTransitionError):
                    transition(s, job, target, JobReason.OTHER, "walker")
        events = list(s.scalars(select(JobEventRow).where(JobEventRow.job_id == job.id).order_by(JobEventRow.id)))
        assert job.status == current and job.attempt == requeues
        assert len(events) == 1 + moved
        assert all(a.to_status == b.from_status for a, b in pairwise(events))
        assert (job.finished_at is not None) == current.is_final()


@FAST
@given(
    queues=st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=30),
    limit=st.integers(min_value=1, max_value=7),
    only=st.sampled_from([None, "a", "b"]),
)
def test_keyset_pages_list_exactly_the_filtered_jobs_newest_first(
    db: Database, queues: list[str], limit: int, only: str | None
) -> None:
    with db.write() as s:
        s.execute(delete(JobEventRow))
        s.execute(delete(JobRow))
        ids = [job_repo.add(s, _new_job(q)).id for q in queues]
    expected = [i for i, q in sorted(zip(ids, queues, strict=True), reverse=True) if only is None or q == only]
    seen: list[int] = []
    cursor = None
    with db.read() as s:
        while True:
            rows, cursor = job_repo.page(s, job_repo.JobFilter(queue=only), limit, cursor)
            assert len(rows) <= limit
            seen += [r.id for r in rows]
            if cursor is None:
                break
    assert seen == expected
