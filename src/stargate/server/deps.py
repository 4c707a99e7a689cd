"""FastAPI dependencies, named so route signatures read like prose (``session: ReadSessionDep``).

Dependencies without I/O (or with I/O only on a cache miss, run in a worker thread then) are ``async`` so they do
not take a worker thread.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from stargate.server.auth import Principal, authenticate, bearer_secret
from stargate.server.context import ServerContext
from stargate.store.repositories import tokens as token_repo


async def get_ctx(request: Request) -> ServerContext:
    """The server context the app was built with."""
    ctx: ServerContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ServerContext, Depends(get_ctx)]


def read_session(ctx: CtxDep) -> Iterator[Session]:
    """A read-only session for the request (rolled back at the end)."""
    with ctx.db.read() as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(read_session)]
"""Reads only. Writes open ``ctx.db.write()`` inside the route function instead: the transaction then begins and
commits in one worker thread, so a writer holding SQLite's lock never waits for a free thread to commit while the
other threads wait for that lock (a deadlock a dependency-managed write session can cause under load)."""


async def any_principal(
    ctx: CtxDep,
    authorization: Annotated[str | None, Header(description="'Bearer <token>'")] = None,
) -> Principal:
    """The caller behind the bearer token; 401 without a valid one.

    A token verified in the last few seconds is taken from ``ctx.tokens`` without a worker thread or a query;
    otherwise it is looked up in the database (in a worker thread) and remembered, unless the cache was cleared
    while the lookup ran (see :meth:`stargate.server.auth.TokenCache.put`). The direct submission path
    (:class:`stargate.server.routers.jobs.SubmitRoute`) only reads this cache: a token not in it takes this path.
    """
    digest = token_repo.cache_key(bearer_secret(authorization))
    who = ctx.tokens.get(digest)
    if who is None:
        generation = ctx.tokens.generation  # before the lookup: a revocation clearing the cache meanwhile wins
        who = await run_in_threadpool(_lookup, ctx, authorization)
        ctx.tokens.put(digest, who, generation)
    return who


AnyPrincipalDep = Annotated[Principal, Depends(any_principal)]
"""The caller, whatever its role (``provider`` tokens too): only for the routes a provider token may use."""


async def principal(who: AnyPrincipalDep) -> Principal:
    """The caller behind the bearer token, who must not be a ``provider`` token (403: it may only use the contract
    and offer routes); 401 without a valid token."""
    who.require_not_provider()
    return who


def _lookup(ctx: ServerContext, authorization: str | None) -> Principal:
    with ctx.db.read() as session:
        return authenticate(session, authorization, datetime.now(UTC))


PrincipalDep = Annotated[Principal, Depends(principal)]


async def admin(who: PrincipalDep) -> Principal:
    """The caller, who must be an admin (403 otherwise)."""
    who.require_admin()
    return who


AdminDep = Annotated[Principal, Depends(admin)]


async def utc_now() -> datetime:
    """The wall clock, as an aware UTC time (a dependency so tests can pin it)."""
    return datetime.now(UTC)


NowDep = Annotated[datetime, Depends(utc_now)]
