"""FastAPI dependencies, named so route signatures read like prose (``session: ReadSessionDep``)."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from stargate.server.auth import Principal, authenticate
from stargate.server.context import ServerContext


def get_ctx(request: Request) -> ServerContext:
    """The server context the app was built with."""
    ctx: ServerContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ServerContext, Depends(get_ctx)]


def read_session(ctx: CtxDep) -> Iterator[Session]:
    """A read-only session for the request (rolled back at the end)."""
    with ctx.db.read() as session:
        yield session


def write_session(ctx: CtxDep) -> Iterator[Session]:
    """A session in one write transaction, committed when the route function returns (before the response)."""
    with ctx.db.write() as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(read_session)]
WriteSessionDep = Annotated[Session, Depends(write_session, scope="function")]


def principal(
    ctx: CtxDep,
    authorization: Annotated[str | None, Header(description="'Bearer <token>'")] = None,
) -> Principal:
    """The caller behind the bearer token; 401 without a valid one."""
    with ctx.db.read() as session:
        return authenticate(session, authorization)


PrincipalDep = Annotated[Principal, Depends(principal)]


def admin(who: PrincipalDep) -> Principal:
    """The caller, who must be an admin (403 otherwise)."""
    who.require_admin()
    return who


AdminDep = Annotated[Principal, Depends(admin)]


def utc_now() -> datetime:
    """The wall clock, as an aware UTC time (a dependency so tests can pin it)."""
    return datetime.now(UTC)


NowDep = Annotated[datetime, Depends(utc_now)]
