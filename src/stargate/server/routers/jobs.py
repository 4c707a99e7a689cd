"""Job endpoints: submit, list, get, cancel, logs."""

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from stargate.domain import JobSpec
from stargate.server.deps import CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.errors import InvalidError, ServiceError
from stargate.server.routers.strict import StrictJsonRoute
from stargate.server.schemas import ErrorBody, Job, JobPage, Logs
from stargate.server.services import jobs as service
from stargate.server.services import logs as log_service
from stargate.server.writer import Submission
from stargate.store import JobStatus
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


@router.post(
    "",
    response_model=Job,
    status_code=201,
    responses={409: {"model": ErrorBody, "description": "The Idempotency-Key was used with a different body."}},
)
async def submit_job(
    who: PrincipalDep,
    spec: JobSpec,
    ctx: CtxDep,
    now: NowDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Submit a job to a queue (members: their own team's queues only); idempotent with an ``Idempotency-Key``."""
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
) -> JobPage:
    """Jobs newest first, filtered; non-admins see their own team's jobs only."""
    return service.list_page(session, who, JobFilter(status=status, queue=queue, team=team), limit, cursor)


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
    responses={503: {"model": ErrorBody, "description": "The job's executor failed or is not available."}},
)
def job_logs(job_id: str, ctx: CtxDep, who: PrincipalDep, offset: Annotated[int, Query(ge=0, le=2**53)] = 0) -> Logs:
    """Log text of the job's latest attempt from byte ``offset``."""
    return log_service.read(ctx, who, job_id, offset)
