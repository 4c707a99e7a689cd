"""Who am I, events, queues, teams and tokens."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from stargate.server.auth import Role
from stargate.server.deps import AdminDep, AnyPrincipalDep, CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.routers.strict import StrictJsonRoute
from stargate.server.schemas import EventPage, Queue, Team, TokenIn, TokenInfo, TokenOut, WhoAmI
from stargate.server.services import events as event_service
from stargate.server.services import queues as queue_service
from stargate.server.services import tokens as token_service

router = APIRouter(route_class=StrictJsonRoute)


@router.get("/whoami", response_model=WhoAmI, tags=["auth"])
def whoami(who: AnyPrincipalDep) -> WhoAmI:
    """The token this request was made with (any role, ``provider`` too)."""
    return WhoAmI(token_id=who.token_id, name=who.name, team=who.team, role=who.role, provider=who.provider)


@router.get("/tokens", response_model=list[TokenInfo], tags=["auth"])
def list_tokens(_admin: AdminDep, session: ReadSessionDep, now: NowDep) -> list[TokenInfo]:
    """Every token, oldest first, with its state (admin only); never a secret or a hash."""
    return [token_service.to_api(row, now) for row in token_service.list_all(session)]


@router.post("/tokens", response_model=TokenOut, status_code=201, tags=["auth"])
def create_token(admin: AdminDep, body: TokenIn, ctx: CtxDep, now: NowDep) -> TokenOut:
    """Create a token (admin only), optionally expiring at ``expires_at``; the secret is in this answer only."""
    by = token_service.actor(admin.token_id, admin.name)
    with ctx.db.write() as session:
        row, secret = token_service.create(
            session,
            body.name,
            body.team,
            Role(body.role),
            now,
            created_by=by,
            expires_at=body.expires_at,
            provider=body.provider,
        )
    ctx.tokens.clear()
    return TokenOut(id=row.id, token=secret, expires_at=row.expires_at)


@router.post("/tokens/{token_id}/revoke", response_model=TokenInfo, tags=["auth"])
def revoke_token(admin: AdminDep, token_id: Annotated[str, Path(max_length=40)], ctx: CtxDep, now: NowDep) -> TokenInfo:
    """Revoke a token (admin only; idempotent). Every server process refuses it within 5 s (this one at once);
    409 for the last live admin token."""
    with ctx.db.write() as session:
        row = token_service.revoke(session, token_id, now, token_service.actor(admin.token_id, admin.name))
        info = token_service.to_api(row, now)
    ctx.tokens.clear()
    return info


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
def list_queues(_who: PrincipalDep, session: ReadSessionDep, ctx: CtxDep) -> list[Queue]:
    """Every queue with its quotas and current load."""
    _, fleet = ctx.fleet.get(session)
    return queue_service.list_queues(session, {c.id: c.gpu_model for c in fleet.clusters})


@router.get("/teams", response_model=list[Team], tags=["fleet"])
def list_teams(_who: PrincipalDep, session: ReadSessionDep) -> list[Team]:
    """Every team with its queues."""
    return queue_service.list_teams(session)
