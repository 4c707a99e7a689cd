"""What the retention of executor records needs of the database: for a batch of jobs, whether each is final, when
it finished, and when each of its runs ended (see :mod:`stargate.server.scheduling.housekeeping`)."""

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from stargate.store.models import JobRow, RunRow
from stargate.store.status import JobStatus

CHUNK = 500
"""Job ids one query asks for (bound parameters stay well under SQLite's and PostgreSQL's limits)."""


@dataclass
class JobEnd:
    """One job as retention sees it: final or not, when it finished, and when each of its runs ended (by attempt;
    None: not ended yet)."""

    final: bool
    finished_at: datetime | None
    runs: dict[int, datetime | None] = field(default_factory=dict)


def job_ends(session: Session, job_ids: Collection[int]) -> dict[int, JobEnd]:
    """:class:`JobEnd` of each of ``job_ids`` the database has (by row id), in two indexed queries per
    :data:`CHUNK` ids (jobs by primary key, runs by ``ix_runs_job_id``)."""
    found: dict[int, JobEnd] = {}
    ids = sorted(set(job_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        jobs = select(JobRow.id, JobRow.status, JobRow.finished_at).where(JobRow.id.in_(chunk))
        for job_id, status, finished_at in session.execute(jobs):
            found[job_id] = JobEnd(JobStatus(status).is_final(), finished_at)
        runs = select(RunRow.job_id, RunRow.attempt, RunRow.ended, RunRow.ended_at).where(RunRow.job_id.in_(chunk))
        for job_id, attempt, ended, ended_at in session.execute(runs):
            if job_id in found:
                # an ended run without a time (written before runs recorded it) counts as ended with its job
                found[job_id].runs[attempt] = (ended_at or found[job_id].finished_at) if ended else None
    return found
