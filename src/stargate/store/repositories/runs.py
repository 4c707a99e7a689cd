"""Runs: each attempt of a job handed to an executor, with the handle that finds it again after a restart."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from stargate.store.models import JobRow, RunRow


def add(session: Session, run: RunRow) -> RunRow:
    """Insert a run row (usually with no handle yet: the executor is called after the commit)."""
    session.add(run)
    session.flush()
    return run


def get(session: Session, job_id: int, attempt: int) -> RunRow | None:
    """The run of ``job_id``'s attempt ``attempt``, or None."""
    return session.scalars(select(RunRow).where(RunRow.job_id == job_id, RunRow.attempt == attempt)).one_or_none()


def latest_for_job(session: Session, job_id: int) -> RunRow | None:
    """The job's most recent run (highest attempt), or None when it never ran."""
    query = select(RunRow).where(RunRow.job_id == job_id).order_by(RunRow.attempt.desc()).limit(1)
    return session.scalars(query).one_or_none()


def active(session: Session) -> list[RunRow]:
    """Every run not yet marked ended, oldest first."""
    return list(session.scalars(select(RunRow).where(RunRow.ended.is_(False)).order_by(RunRow.id)))


def mark_ended(run: RunRow, at: datetime, exit_code: int | None, note: str) -> None:
    """Record that the run is over (its process is gone or was told to stop)."""
    run.ended = True
    run.ended_at = at
    run.exit_code = exit_code
    run.note = note


def current_for(session: Session, jobs: Iterable[JobRow]) -> dict[int, RunRow]:
    """For each job, the run of its current attempt (jobs without one are left out), in one query."""
    attempt = {j.id: j.attempt for j in jobs}
    if not attempt:
        return {}
    rows = session.scalars(select(RunRow).where(RunRow.job_id.in_(list(attempt))))
    return {r.job_id: r for r in rows if attempt.get(r.job_id) == r.attempt}
