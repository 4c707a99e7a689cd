"""Job endpoints: submit, list, get, cancel, logs."""

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from stargate.domain import JobSpec
from stargate.server.auth import Principal, bearer_secret
from stargate.server.context import ServerContext
from stargate.server.deps import CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.errors import InvalidError, ServiceError
from stargate.server.routers.strict import StrictJsonRequest, StrictJsonRoute
from stargate.server.schemas import ErrorBody, Job, JobPage, Logs
from stargate.server.services import jobs as service
from stargate.server.services import logs as log_service
from stargate.server.writer import Submission
from stargate.store import JobStatus
from stargate.store.repositories import tokens as token_repo
from stargate.store.repositories.jobs import JobFilter

router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=StrictJsonRoute)


IDEMPOTENCY_KEY_MAX = 255
"""Longest ``Idempotency-Key`` header value accepted, characters (printable ASCII)."""
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(  # the parameter's name is the header's: FastAPI reads ``idempotency_key`` as ``Idempotency-Key``
        description=(
            "1 to 255 printable ASCII characters, e.g. a UUID (the IETF draft's quoted form is accepted too). A retry "
            "with the same key from the same token gets the job stored first (201, the same body, header "
            "'Idempotent-Replayed: true'); the same key with a different body is 409."
        ),
    ),
]


class SubmitRoute(StrictJsonRoute):
    """The submission route: a direct path for the common request, FastAPI's for everything else.

    A submission whose token was verified in the last few seconds (``ctx.tokens``), with a JSON body
    (``Content-Type: application/json``) that is a valid job spec, at most one ``Idempotency-Key`` and no dependency
    overrides, is read here without FastAPI's dependency resolution (most of the request's CPU time). Any other
    request (a token to look up, a body to refuse, a test's overrides) takes FastAPI's handler over the same request
    object, so every answer and message is FastAPI's; the direct path reaches only the success path's code (and the
    errors :func:`submit` raises, shared by both). The OpenAPI document comes from :func:`submit_job`'s signature.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The direct handler, falling back to FastAPI's (given the request whose body was read already)."""
        slow = APIRoute.get_route_handler(self)

        async def handle(request: Request) -> Response:
            strict = StrictJsonRequest(request.scope, request.receive, request._send)
            direct = await _direct(strict)
            if direct is None:
                return await slow(strict)
            return await submit(*direct, strict, strict.headers.get("idempotency-key"))

        return handle


async def _direct(request: StrictJsonRequest) -> tuple[Principal, JobSpec, ServerContext, datetime] | None:
    """(caller, spec, context, now) of a submission the direct path takes (see :class:`SubmitRoute`), else None.

    Nothing here has an effect: on None, FastAPI's handler reads the same request from the start (the body read
    here is kept by the request; a body over its limit is refused here as there, by the 413 the read raises)."""
    if request.app.dependency_overrides or request.headers.get("content-type") != "application/json":
        return None
    ctx: ServerContext = request.app.state.ctx
    try:
        who = ctx.tokens.get(token_repo.cache_key(bearer_secret(request.headers.get("authorization"))))
    except ServiceError:
        return None
    if who is None or len(request.headers.getlist("idempotency-key")) > 1:
        return None
    try:
        body = await request.body()
    except HTTPException:
        raise
    except Exception:  # e.g. the client went away: FastAPI's handler gives its answer
        return None
    try:
        data = await request.json() if body else None
        spec = JobSpec.model_validate(data) if isinstance(data, dict) else None
    except Exception:  # not JSON, a repeated key, not a spec, nested too deep: FastAPI's handler gives the answer
        return None
    return None if spec is None else (who, spec, ctx, datetime.now(UTC))


async def submit_job(
    who: PrincipalDep,
    spec: JobSpec,
    ctx: CtxDep,
    now: NowDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Submit a job to a queue (members: their own team's queues only); idempotent with an ``Idempotency-Key``."""
    return await submit(who, spec, ctx, now, request, idempotency_key)


router.add_api_route(
    "",
    submit_job,
    methods=["POST"],
    response_model=Job,
    status_code=201,
    responses={409: {"model": ErrorBody, "description": "The Idempotency-Key was used with a different body."}},
    route_class_override=SubmitRoute,
)


async def submit(
    who: Principal, spec: JobSpec, ctx: ServerContext, now: datetime, request: Request, idempotency_key: str | None
) -> Response:
    """Hand a checked spec to the submission writer and answer 201 with the stored job (or the replayed one)."""
    if idempotency_key is not None and (found := len(request.headers.getlist("idempotency-key"))) > 1:
        raise InvalidError(f"header.Idempotency-Key: found {found} values, expected one")
    key = parse_idempotency_key(idempotency_key)
    item = Submission(who, spec, now, idempotency_key=f"{who.token_id}:{key}" if key is not None else None)
    known = ctx.fleet.peek()
    if known is not None:  # check here when the fleet is known (the writer re-checks if it changed meanwhile)
        with contextlib.suppress(ServiceError):  # an error is left to the writer, against the fleet in force
            item.values, item.version = service.check(who, spec, known[1], now), known[0]
    row_id, values = await asyncio.wrap_future(ctx.submissions.put(item))
    body = service.new_job(values, row_id, spec).model_dump_json()
    headers = {"Idempotent-Replayed": "true"} if item.replayed else None
    return Response(body, status_code=201, media_type="application/json", headers=headers)


def parse_idempotency_key(value: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header (None without one); 422 unless it is 1 to 255 printable ASCII
    characters. The IETF draft's structured-field form (a quoted string) is accepted and unquoted."""
    if value is None:
        return None
    key = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    expected = f"expected 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters, e.g. a UUID"
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise InvalidError(f"header.Idempotency-Key: found {len(key)} characters, {expected}")
    for position, char in enumerate(key):
        if not " " <= char <= "~":
            raise InvalidError(f"header.Idempotency-Key: found {char!r} at position {position}, {expected}")
    return key


@router.get("", response_model=JobPage)
def list_jobs(
    who: PrincipalDep,
    session: ReadSessionDep,
    status: JobStatus | None = None,
    queue: Annotated[str | None, Query(max_length=63)] = None,
    team: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    order: Literal["newest", "oldest"] = "newest",
) -> JobPage:
    """Jobs newest first (``order=oldest``: oldest first), filtered; non-admins see their own team's jobs only."""
    where = JobFilter(status=status, queue=queue, team=team)
    return service.list_page(session, who, where, limit, cursor, oldest_first=order == "oldest")


@router.get("/{job_id}", response_model=Job)
def get_job(who: PrincipalDep, job_id: str, session: ReadSessionDep) -> Job:
    """One job (404 when it does not exist or belongs to another team)."""
    return service.to_api(service.get_visible(session, who, job_id))


@router.post("/{job_id}/cancel", response_model=Job)
def cancel_job(who: PrincipalDep, job_id: str, ctx: CtxDep, now: NowDep) -> Job:
    """Cancel a pending, placed or running job (409 when it is already final)."""
    with ctx.db.write() as session:
        return service.to_api(service.cancel(session, who, job_id, now))


@router.get(
    "/{job_id}/logs",
    response_model=Logs,
    responses={
        410: {
            "model": ErrorBody,
            "description": "The log cannot be had any more, and never will: the executor's records of the finished "
            "job were pruned (or removed outside Stargate), or its engine cannot serve it because it is not UTF-8 "
            "text. Do not retry.",
        },
        503: {"model": ErrorBody, "description": "The job's executor failed or is not available; retry later."},
    },
)
def job_logs(job_id: str, ctx: CtxDep, who: PrincipalDep, offset: Annotated[int, Query(ge=0, le=2**53)] = 0) -> Logs:
    """Log text of the job's latest attempt from byte ``offset`` (410 when it cannot be had any more)."""
    return log_service.read(ctx, who, job_id, offset)
