"""Simulations: run a what-if (a trace on a fleet under a policy, as ``stargate simulate`` does) on the server, with
progress; list, show and cancel runs; list what may be picked.

Who may do what: admins and members run and cancel simulations; viewers read them; provider tokens none of it. The
routes are plain functions (FastAPI runs them in a worker thread): reading a trace and a fleet never holds up the
event loop. The simulation itself runs on this process's runner, one at a time (see
:mod:`stargate.server.services.sim_runner`).
"""

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request

from stargate.server.context import ServerContext
from stargate.server.deps import CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.limits import SettingsError
from stargate.server.routers.strict import StrictJsonRoute
from stargate.server.schemas import ErrorBody
from stargate.server.schemas_simulations import Pickable, SimulationIn, SimulationOut, SimulationSummary
from stargate.server.services import simulations as service
from stargate.server.services.sim_runner import Limits, Runner, log

router = APIRouter(route_class=StrictJsonRoute)

IdPath = Annotated[str, Path(max_length=40)]

BUSY: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorBody, "description": "This server runs a simulation and its queue is full; try again later."}
}


def attach(app: FastAPI, ctx: ServerContext, prefix: str, responses: dict[int | str, dict[str, Any]]) -> None:
    """Give ``app`` its simulations runner and routes under ``prefix``, and fail the runs a previous start of this
    server left queued or running (its queue died with it)."""
    try:
        limits = Limits.from_env()
    except SettingsError as exc:
        log.error("%s; the default simulation limits apply", exc)
        limits = Limits()
    app.state.simulations = runner = Runner(ctx, limits)
    runner.fail_stale()
    app.include_router(router, prefix=prefix, responses=responses)


def _runner(request: Request) -> Runner:
    found: Runner = request.app.state.simulations
    return found


@router.get("/simulations/traces", response_model=Pickable, tags=["simulations"])
def pickable(who: PrincipalDep, request: Request) -> Pickable:
    """What a simulation may replay (traces of the server's traces directory and of the bundled examples, with
    their formats) and on which fleet ('current' or a bundled example), the formats of uploads, the policies and
    this server's limits."""
    return service.pickable(_runner(request))


@router.post("/simulations", response_model=SimulationOut, status_code=201, tags=["simulations"], responses=BUSY)
def create_simulation(
    who: PrincipalDep, body: SimulationIn, ctx: CtxDep, now: NowDep, request: Request
) -> SimulationOut:
    """Queue a simulation (admin or member): 201 with it queued; 422 with the located problem of a bad request
    (nothing stored); 429 when this server runs one and its queue is full."""
    return service.create(ctx, _runner(request), who, body, now)


@router.get("/simulations", response_model=list[SimulationSummary], tags=["simulations"])
def list_simulations(
    who: PrincipalDep, session: ReadSessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[SimulationSummary]:
    """Simulations, newest first: what was asked, status, progress, and a few figures of those that succeeded."""
    return service.list_simulations(session, limit)


@router.get("/simulations/{simulation_id}", response_model=SimulationOut, tags=["simulations"])
def get_simulation(who: PrincipalDep, simulation_id: IdPath, session: ReadSessionDep) -> SimulationOut:
    """One simulation: status, progress 0 to 1, and its whole result once it succeeded."""
    return service.get(session, simulation_id)


@router.post("/simulations/{simulation_id}/cancel", response_model=SimulationOut, tags=["simulations"])
def cancel_simulation(who: PrincipalDep, simulation_id: IdPath, ctx: CtxDep, now: NowDep) -> SimulationOut:
    """Cancel a queued or running simulation (admin or member); 409 when it has ended."""
    return service.cancel(ctx, who, simulation_id, now)
