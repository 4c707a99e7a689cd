"""transition_many(): the batch form of transition() gives the same rows and events as one transition() per job,
refuses a batch holding any illegal edge without writing any of it, and reads jobs raw and correctly."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import product

import pytest
from sqlalchemy import select

from stargate.domain import JobReason
from stargate.store import (
    LEGAL_TRANSITIONS,
    BatchTransitionError,
    Database,
    JobEventRow,
    JobRow,
    JobStatus,
    Move,
    lock_current,
    record_submission,
    transition,
    transition_many,
    upgrade,
)
from stargate.store.repositories import jobs as job_repo

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
AT = T0 + timedelta(seconds=30)
LEGAL = [(a, b) for a, targets in LEGAL_TRANSITIONS.items() for b in sorted(targets)]
ILLEGAL = [(a, b) for a, b in product(JobStatus, JobStatus) if b not in LEGAL_TRANSITIONS[a]]


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated, empty database."""
    database = Database.open(db_url)
    upgrade(database.engine)
    yield database
    database.close()


def _job(db: Database, status: JobStatus, started: datetime | None = None) -> int:
    with db.write() as s:
        holds = status.holds_gpus()
        job = JobRow(
            name="j",
            queue_id="q",
            team_id="t",
            kind="batch",
            gpus=2,
            gpu_models=["H100-SXM"],
            priority_class="normal",
            priority=500,
            preemptible=True,
            spec={"name": "j", "queue": "q", "gpus": 2, "command": "true"},
            status=status,
            reason="submitted",
            attempt=3,
            progress_s=0.0,
            submitted_by="test",
            submitted_at=T0,
            started_at=started,
            gpu_ids=[4, 5] if holds else [],
            cluster="c" if holds else None,
            price_usd_per_gpu_hour=Decimal("2.5") if holds else None,
        )
        s.add(job)
        s.flush()
        record_submission(s, job, "test", T0)
        return job.id


def _view(db: Database, job_id: int) -> tuple[object, ...]:
    """Everything a transition may change, plus the job's events past the submission."""
    with db.read() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        events = s.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id))
        moves = [(e.from_status, e.to_status, e.actor, e.reason, e.detail, e.at) for e in events][1:]
        return (
            job.status,
            job.reason,
            job.detail,
            job.attempt,
            job.cluster,
            job.gpu_ids,
            job.price_usd_per_gpu_hour,
            job.started_at,
            job.finished_at,
            moves,
        )


def test_a_batch_of_every_legal_edge_equals_one_transition_per_job(db: Database) -> None:
    started = T0 + timedelta(seconds=5)
    pairs = [(_job(db, a, started if a is JobStatus.RUNNING else None), b) for a, b in LEGAL]
    twins = [(_job(db, a, started if a is JobStatus.RUNNING else None), b) for a, b in LEGAL]
    with db.write() as s:
        current = lock_current(s, [job_id for job_id, _ in pairs])
        moves = [Move(current[job_id], to, JobReason.OTHER, f"to {to.value}") for job_id, to in pairs]
        assert transition_many(s, moves, "tester", AT) == len(LEGAL)
    with db.write() as s:
        for job_id, to in twins:
            job = s.get(JobRow, job_id)
            assert job is not None
            transition(s, job, to, JobReason.OTHER, "tester", AT, detail=f"to {to.value}")
    for (batch_id, _), (single_id, _) in zip(pairs, twins, strict=True):
        assert _view(db, batch_id) == _view(db, single_id)
    requeued = _view(db, pairs[LEGAL.index((JobStatus.RUNNING, JobStatus.PENDING))][0])
    assert requeued[3:7] == (4, None, [], None)  # attempt + 1, placement cleared


def test_extra_values_are_written_with_the_move(db: Database) -> None:
    job_id = _job(db, JobStatus.PENDING)
    with db.write() as s:
        cur = lock_current(s, [job_id])[job_id]
        values = {"cluster": "c9", "gpu_ids": [0, 1], "price_usd_per_gpu_hour": Decimal("1.250000")}
        transition_many(s, [Move(cur, JobStatus.PLACED, JobReason.PLACED, "on c9", values)], "scheduler", AT)
    view = _view(db, job_id)
    assert view[:7] == (JobStatus.PLACED, "placed", "on c9", 3, "c9", [0, 1], Decimal("1.250000"))
    assert view[9] == [("pending", "placed", "scheduler", "placed", "on c9", AT)]


@pytest.mark.parametrize(("source", "target"), ILLEGAL[::3], ids=[f"{a}->{b}" for a, b in ILLEGAL[::3]])
def test_one_illegal_edge_refuses_the_whole_batch(db: Database, source: JobStatus, target: JobStatus) -> None:
    fine, bad = _job(db, JobStatus.PENDING), _job(db, source)
    before = _view(db, fine), _view(db, bad)
    refused = f"cannot move from '{source.value}' to '{target.value}'"
    with pytest.raises(BatchTransitionError, match=refused), db.write() as s:
        current = lock_current(s, [fine, bad])
        moves = [Move(current[fine], JobStatus.PLACED, JobReason.PLACED), Move(current[bad], target, JobReason.OTHER)]
        transition_many(s, moves, "tester", AT)
    assert (_view(db, fine), _view(db, bad)) == before


def test_a_job_twice_in_one_batch_is_refused(db: Database) -> None:
    job_id = _job(db, JobStatus.PENDING)
    with pytest.raises(ValueError, match="appears twice"), db.write() as s:
        cur = lock_current(s, [job_id])[job_id]
        twice = [Move(cur, JobStatus.PLACED, JobReason.PLACED), Move(cur, JobStatus.FAILED, JobReason.FAILED)]
        transition_many(s, twice, "tester", AT)
    assert _view(db, job_id)[0] == JobStatus.PENDING


def test_status_columns_cannot_be_smuggled_in_as_values(db: Database) -> None:
    job_id = _job(db, JobStatus.PENDING)
    with pytest.raises(ValueError, match="set by the transition"), db.write() as s:
        cur = lock_current(s, [job_id])[job_id]
        transition_many(s, [Move(cur, JobStatus.PLACED, JobReason.PLACED, values={"attempt": 0})], "tester", AT)


def test_lean_states_read_lists_times_and_status_like_the_orm(db: Database) -> None:
    started = T0 + timedelta(seconds=7, microseconds=250)
    running, pending = _job(db, JobStatus.RUNNING, started), _job(db, JobStatus.PENDING)
    with db.read() as s:
        states = {j.id: j for j in job_repo.states(s, [JobStatus.PENDING, JobStatus.RUNNING])}
    assert states[running].status is JobStatus.RUNNING and states[pending].status is JobStatus.PENDING
    assert (states[running].gpu_ids, states[running].gpu_models, states[running].started_at) == (
        [4, 5],
        ["H100-SXM"],
        started,
    )
    assert (states[pending].gpu_ids, states[pending].started_at, states[pending].submitted_at) == ([], None, T0)
    assert states[pending].submitted_at.tzinfo is UTC


def test_a_reason_that_is_not_a_code_refuses_the_whole_batch(db: Database) -> None:
    fine, bad = _job(db, JobStatus.PENDING), _job(db, JobStatus.PENDING)
    before = _view(db, fine), _view(db, bad)
    with pytest.raises(ValueError, match="'rejected: exceeds_quota' is not a valid JobReason"), db.write() as s:
        current = lock_current(s, [fine, bad])
        free_text = Move(current[bad], JobStatus.FAILED, "rejected: exceeds_quota")  # type: ignore[arg-type]
        transition_many(s, [Move(current[fine], JobStatus.PLACED, JobReason.PLACED), free_text], "tester", AT)
    assert (_view(db, fine), _view(db, bad)) == before
