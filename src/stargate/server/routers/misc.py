"""Who am I, events, queues, teams and tokens."""

from typing import Annotated

from fastapi import APIRouter, Query

from stargate.server.auth import Role
from stargate.server.deps import AdminDep, CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.schemas import EventPage, Queue, Team, TokenIn, TokenOut, WhoAmI
from stargate.server.services import events as event_service
from stargate.server.services import queues as queue_service
from stargate.server.services import tokens as token_service

router = APIRouter()


@router.get("/whoami", response_model=WhoAmI, tags=["auth"])
def whoami(who: PrincipalDep) -> WhoAmI:
    """The token this request was made with."""
    return WhoAmI(token_id=who.token_id, name=who.name, team=who.team, role=who.role)


@router.post("/tokens", response_model=TokenOut, status_code=201, tags=["auth"])
def create_token(_admin: AdminDep, body: TokenIn, ctx: CtxDep, now: NowDep) -> TokenOut:
    """Create a token (admin only); the secret is in this answer only."""
    with ctx.db.write() as session:
        row, secret = token_service.create(session, body.name, body.team, Role(body.role), now)
    ctx.tokens.clear()
    return TokenOut(id=row.id, token=secret)


@router.get("/events", response_model=EventPage, tags=["events"])
def list_events(
    who: PrincipalDep,
    session: ReadSessionDep,
    job_id: Annotated[str | None, Query(max_length=40)] = None,
    after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    """Job status changes oldest first after the cursor ``after``; non-admins see their own team's."""
    return event_service.list_page(session, who, job_id, after, limit)


@router.get("/queues", response_model=list[Queue], tags=["fleet"])
def list_queues(_who: PrincipalDep, session: ReadSessionDep) -> list[Queue]:
    """Every queue with its quotas and current load."""
    return queue_service.list_queues(session)


@router.get("/teams", response_model=list[Team], tags=["fleet"])
def list_teams(_who: PrincipalDep, session: ReadSessionDep) -> list[Team]:
    """Every team with its queues."""
    return queue_service.list_teams(session)
