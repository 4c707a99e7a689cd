"""Job events as the API lists them: oldest first after a cursor, limited to the caller's team."""

from sqlalchemy.orm import Session

from stargate.domain import read_reason
from stargate.fleetfile.describe import found_text
from stargate.server.auth import Principal
from stargate.server.errors import BadRequestError
from stargate.server.schemas import Event, EventPage
from stargate.server.services.jobs import get_visible
from stargate.store import JobStatus, format_job_id
from stargate.store.repositories import events as event_repo

MAX_PAGE = 1000


def list_page(session: Session, who: Principal, job_id: str | None, after: str | None, limit: int) -> EventPage:
    """A page of events (of one job when ``job_id`` is given) with id above ``after``."""
    row_id = get_visible(session, who, job_id).id if job_id else None
    after_id = _after(after)
    rows, next_id = event_repo.page(
        session,
        job_id=row_id,
        team=None if who.is_admin else (who.team or ""),
        after_id=after_id,
        limit=min(limit, MAX_PAGE),
    )
    items = [
        Event(
            id=e.id,
            job_id=format_job_id(e.job_id),
            at=e.at,
            actor=e.actor,
            from_=JobStatus(e.from_status) if e.from_status else None,
            to=JobStatus(e.to_status),
            reason=reason,
            detail=detail,
        )
        for e in rows
        for reason, detail in (read_reason(e.reason, e.detail),)
    ]
    return EventPage(items=items, next_cursor=str(next_id) if next_id is not None else None)


def _after(after: str | None) -> int | None:
    if after is None or after == "":
        return None
    if not (after.isascii() and after.isdigit()) or len(after) > 18:
        raise BadRequestError(f"after: found {found_text(after)}, expected an event id (a previous page's next_cursor)")
    return int(after)
