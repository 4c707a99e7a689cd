"""Inference services: ``/api/v1/services`` (create, list, show, delete). The proxy at ``/services/NAME/...`` is an
ASGI middleware of the app (see :mod:`stargate.server.inference.proxy`)."""

from typing import Annotated

from fastapi import APIRouter, Path, Response
from sqlalchemy.exc import IntegrityError

from stargate.domain.services import ServiceSpec
from stargate.server.deps import CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.errors import ConflictError
from stargate.server.routers.strict import StrictJsonRoute
from stargate.server.schemas import ErrorBody
from stargate.server.schemas_services import Service
from stargate.server.services import inference as service
from stargate.store.repositories import fleet_versions

router = APIRouter(prefix="/services", tags=["services"], route_class=StrictJsonRoute)

NameParam = Annotated[str, Path(max_length=200, description="The service's name.")]


@router.post(
    "",
    response_model=Service,
    status_code=201,
    responses={
        200: {"model": Service, "description": "The same spec was sent before: the service as it is."},
        409: {"model": ErrorBody, "description": "The name is taken by another spec, or its service is being deleted."},
    },
)
def create_service(who: PrincipalDep, spec: ServiceSpec, ctx: CtxDep, now: NowDep, response: Response) -> Service:
    """Create a service (members: on their own team's queues): the scheduler starts ``min_replicas`` replicas, then
    keeps as many as its autoscaler asks for; requests to ``/services/<name>/...`` reach them."""
    try:
        with ctx.db.write() as session:
            fleet_versions.lock_shared(session)  # checked against the fleet in force, as a submission is
            _, rules = ctx.fleet.rules(session)
            team = service.check(who, spec, rules, now)
            row, created = service.create(session, who, spec, team, now)
            view = service.to_api(row, [])
    except IntegrityError:  # created by another request at the same moment
        raise ConflictError(f"service '{spec.name}' was created by another request meanwhile; send it again") from None
    if not created:
        response.status_code = 200
        with ctx.db.read() as session:
            view = service.show(session, who, spec.name)
    return view


@router.get("", response_model=list[Service])
def list_services(who: PrincipalDep, session: ReadSessionDep) -> list[Service]:
    """Every service the caller may see (non-admins: their own team's), by name."""
    return service.listed(session, who)


@router.get("/{name}", response_model=Service)
def get_service(who: PrincipalDep, name: NameParam, session: ReadSessionDep) -> Service:
    """One service with its replicas, recent scale decisions and traffic (404 for another team's)."""
    return service.show(session, who, name)


@router.delete("/{name}", response_model=Service)
def delete_service(who: PrincipalDep, name: NameParam, ctx: CtxDep, now: NowDep) -> Service:
    """Delete a service: it takes no new request; its ready replicas drain (their requests in flight end), then
    every replica's job is cancelled and the service goes (idempotent)."""
    with ctx.db.write() as session:
        return service.delete(session, who, name, now)
