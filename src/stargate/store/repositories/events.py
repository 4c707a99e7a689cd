"""Job events: the append-only log of status changes, read in order with a cursor."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stargate.store.models import JobEventRow, JobRow
from stargate.store.repositories import horizon


def page(
    session: Session, *, job_id: int | None, team: str | None, after_id: int | None, limit: int
) -> tuple[list[JobEventRow], int | None]:
    """Up to ``limit`` events oldest first with id above ``after_id``, never past an event still to commit
    (:mod:`horizon`); and the cursor of the next page.

    ``team`` keeps only events of that team's jobs.
    """
    through = horizon.settled_through(session, "job_events")
    query = select(JobEventRow).order_by(JobEventRow.id).limit(limit + 1)
    if job_id is not None:
        query = query.where(JobEventRow.job_id == job_id)
    if team is not None:
        query = query.join(JobRow, JobRow.id == JobEventRow.job_id).where(JobRow.team_id == team)
    if after_id is not None:
        query = query.where(JobEventRow.id > after_id)
    return horizon.cut(list(session.scalars(query)), limit, through)


def last_id(session: Session) -> int:
    """The id of the newest event (0 when there is none): it changes whenever any job changes."""
    return int(session.scalar(select(func.max(JobEventRow.id))) or 0)
