"""Fleet endpoints: read the fleet in force; plan and apply a change (admin only)."""

from collections.abc import Callable

from fastapi import APIRouter, Request

from stargate.server.deps import AdminDep, CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.routers.strict import StrictJsonRoute
from stargate.server.schemas import FleetApplyIn, FleetOut, FleetPlan, FleetPlanIn, SchedulingOut
from stargate.server.services import fleet as service
from stargate.server.services.fleet import STANDBY_NOTE

router = APIRouter(prefix="/fleet", tags=["fleet"], route_class=StrictJsonRoute)


@router.get("", response_model=FleetOut)
def get_fleet(_who: PrincipalDep, session: ReadSessionDep, ctx: CtxDep, request: Request) -> FleetOut:
    """The fleet in force with its version (content hash) and the scheduling policy in force."""
    out = service.current(session, ctx.settings.scheduling)
    if out.scheduling is not None:
        out.scheduling = _answered_by(out.scheduling, request)
    return out


@router.get("/scheduling", response_model=SchedulingOut)
def get_scheduling(_who: PrincipalDep, session: ReadSessionDep, ctx: CtxDep, request: Request) -> SchedulingOut:
    """The scheduling policy in force (as ``scheduling`` of ``GET /fleet``, without the whole fleet document); on a
    standby, under this server's ``stargate up`` options, which the leader's may differ from (see ``note``)."""
    _, fleet = ctx.fleet.get(session)
    return _answered_by(service.scheduling_out(fleet, ctx.settings.scheduling), request)


def _answered_by(out: SchedulingOut, request: Request) -> SchedulingOut:
    """``out`` saying whether this server leads the scheduler, with the standby's note."""
    leads: Callable[[], bool] | None = request.app.state.leads
    if leads is None:
        return out
    leader = leads()
    return out.model_copy(
        update={"answered_by": "leader" if leader else "standby", "note": None if leader else STANDBY_NOTE}
    )


@router.post("/plan", response_model=FleetPlan)
def plan_fleet(who: AdminDep, body: FleetPlanIn, ctx: CtxDep, now: NowDep) -> FleetPlan:
    """Preview a fleet change: validate it and list its differences from the fleet in force."""
    with ctx.db.write() as session:
        return service.plan(session, body.fleet, who.actor, now, ctx.settings.scheduling)


@router.post("/apply", response_model=FleetOut)
def apply_fleet(who: AdminDep, body: FleetApplyIn, ctx: CtxDep, now: NowDep) -> FleetOut:
    """Apply a plan; 409 when the fleet changed since the plan was made."""
    with ctx.db.write() as session:
        return service.apply(session, body.plan_id, who.actor, now, ctx.settings.scheduling)
