"""Job events: the append-only log of status changes, read in order with a cursor."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stargate.store.models import JobEventRow, JobRow


def page(
    session: Session, *, job_id: int | None, team: str | None, after_id: int | None, limit: int
) -> tuple[list[JobEventRow], int | None]:
    """Up to ``limit`` events oldest first with id above ``after_id``; and the cursor of the next page.

    ``team`` keeps only events of that team's jobs.
    """
    query = select(JobEventRow).order_by(JobEventRow.id).limit(limit + 1)
    if job_id is not None:
        query = query.where(JobEventRow.job_id == job_id)
    if team is not None:
        query = query.join(JobRow, JobRow.id == JobEventRow.job_id).where(JobRow.team_id == team)
    if after_id is not None:
        query = query.where(JobEventRow.id > after_id)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def last_id(session: Session) -> int:
    """The id of the newest event (0 when there is none): it changes whenever any job changes."""
    return int(session.scalar(select(func.max(JobEventRow.id))) or 0)
