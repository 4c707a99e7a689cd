"""transition(): every legal edge works and writes its event; every illegal edge raises and writes nothing."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from sqlalchemy import select

from stargate.domain import JobReason
from stargate.store import (
    LEGAL_TRANSITIONS,
    Database,
    IllegalTransitionError,
    JobEventRow,
    JobRow,
    JobStatus,
    record_submission,
    transition,
    upgrade,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LEGAL = [(a, b) for a, targets in LEGAL_TRANSITIONS.items() for b in sorted(targets)]
ILLEGAL = [(a, b) for a, b in product(JobStatus, JobStatus) if b not in LEGAL_TRANSITIONS[a]]


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated, empty database."""
    database = Database.open(db_url)
    upgrade(database.engine)
    yield database
    database.close()


def _job(db: Database, status: JobStatus) -> int:
    with db.write() as s:
        job = JobRow(
            name="j",
            queue_id="q",
            team_id="t",
            kind="batch",
            gpus=2,
            gpu_models=[],
            priority_class="normal",
            priority=500,
            preemptible=True,
            spec={"name": "j", "queue": "q", "gpus": 2, "command": "true"},
            status=status,
            reason="submitted",
            attempt=0,
            progress_s=0.0,
            submitted_by="test",
            submitted_at=T0,
            gpu_ids=[0, 1] if status.holds_gpus() else [],
            cluster="c" if status.holds_gpus() else None,
        )
        s.add(job)
        s.flush()
        record_submission(s, job, "test", T0)
        return job.id


def test_the_table_covers_every_pair() -> None:
    assert len(LEGAL) + len(ILLEGAL) == len(JobStatus) ** 2
    assert all(not LEGAL_TRANSITIONS[s] for s in JobStatus if s.is_final())


@pytest.mark.parametrize(("source", "target"), LEGAL, ids=[f"{a}->{b}" for a, b in LEGAL])
def test_legal_transition_changes_status_and_writes_one_event(
    db: Database, source: JobStatus, target: JobStatus
) -> None:
    job_id = _job(db, source)
    at = T0 + timedelta(seconds=30)
    with db.write() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        transition(s, job, target, JobReason.OTHER, "tester", at, detail="because")
    with db.read() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        events = list(s.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)))
        assert (job.status, job.reason, job.detail) == (target, "other", "because")
        assert [(e.from_status, e.to_status) for e in events] == [(None, source.value), (source.value, target.value)]
        assert (events[1].actor, events[1].reason, events[1].detail, events[1].at) == ("tester", "other", "because", at)
        if target is JobStatus.PENDING:
            assert (job.attempt, job.cluster, job.gpu_ids) == (1, None, [])
        else:
            assert job.attempt == 0
        assert (job.finished_at == at) == target.is_final()
        assert (job.started_at == at) == (target is JobStatus.RUNNING)


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_illegal_transition_raises_and_writes_nothing(db: Database, source: JobStatus, target: JobStatus) -> None:
    job_id = _job(db, source)
    with db.write() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        with pytest.raises(IllegalTransitionError, match=f"cannot move from '{source.value}' to '{target.value}'"):
            transition(s, job, target, JobReason.OTHER, "tester")
    with db.read() as s:
        job = s.get(JobRow, job_id)
        assert job is not None and job.status == source
        assert len(list(s.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id)))) == 1


def test_a_reason_that_is_not_a_code_is_refused_and_nothing_changes(db: Database) -> None:
    job_id = _job(db, JobStatus.PENDING)
    with pytest.raises(ValueError, match="'placed on c' is not a valid JobReason"), db.write() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        transition(s, job, JobStatus.PLACED, "placed on c", "tester")  # type: ignore[arg-type]
    with db.read() as s:
        job = s.get(JobRow, job_id)
        assert job is not None and (job.status, job.reason) == (JobStatus.PENDING, "submitted")
        assert len(list(s.scalars(select(JobEventRow)))) == 1


def test_a_failed_transaction_keeps_neither_status_nor_event(db: Database) -> None:
    job_id = _job(db, JobStatus.PENDING)
    with pytest.raises(RuntimeError), db.write() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        transition(s, job, JobStatus.PLACED, JobReason.PLACED, "tester")
        raise RuntimeError("crash before commit")
    with db.read() as s:
        job = s.get(JobRow, job_id)
        assert job is not None and job.status == JobStatus.PENDING
        assert len(list(s.scalars(select(JobEventRow)))) == 1


def test_times_come_back_as_aware_utc(db: Database) -> None:
    job_id = _job(db, JobStatus.PENDING)
    with db.read() as s:
        job = s.get(JobRow, job_id)
        assert job is not None and job.submitted_at == T0 and job.submitted_at.tzinfo is UTC


def test_naive_times_are_refused(db: Database) -> None:
    job_id = _job(db, JobStatus.PENDING)
    with pytest.raises(Exception, match="naive datetime"), db.write() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        transition(s, job, JobStatus.PLACED, JobReason.PLACED, "tester", at=datetime(2026, 1, 1))
