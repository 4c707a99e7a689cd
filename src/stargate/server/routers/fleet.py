"""Fleet endpoints: read the fleet in force; plan and apply a change (admin only)."""

from fastapi import APIRouter

from stargate.server.deps import AdminDep, CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.routers.strict import StrictJsonRoute
from stargate.server.schemas import FleetApplyIn, FleetOut, FleetPlan, FleetPlanIn, SchedulingOut
from stargate.server.services import fleet as service

router = APIRouter(prefix="/fleet", tags=["fleet"], route_class=StrictJsonRoute)


@router.get("", response_model=FleetOut)
def get_fleet(_who: PrincipalDep, session: ReadSessionDep, ctx: CtxDep) -> FleetOut:
    """The fleet in force with its version (content hash) and the scheduling policy in force."""
    return service.current(session, ctx.settings.scheduling)


@router.get("/scheduling", response_model=SchedulingOut)
def get_scheduling(_who: PrincipalDep, session: ReadSessionDep, ctx: CtxDep) -> SchedulingOut:
    """The scheduling policy in force (as ``scheduling`` of ``GET /fleet``, without the whole fleet document)."""
    _, fleet = ctx.fleet.get(session)
    return service.scheduling_out(fleet, ctx.settings.scheduling)


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
