"""Fleet endpoints: read the fleet in force; plan and apply a change (admin only)."""

from fastapi import APIRouter

from stargate.server.deps import AdminDep, NowDep, PrincipalDep, ReadSessionDep, WriteSessionDep
from stargate.server.schemas import FleetApplyIn, FleetOut, FleetPlan, FleetPlanIn
from stargate.server.services import fleet as service

router = APIRouter(prefix="/fleet", tags=["fleet"])


@router.get("", response_model=FleetOut)
def get_fleet(session: ReadSessionDep, _who: PrincipalDep) -> FleetOut:
    """The fleet in force with its version (content hash)."""
    return service.current(session)


@router.post("/plan", response_model=FleetPlan)
def plan_fleet(body: FleetPlanIn, session: WriteSessionDep, who: AdminDep, now: NowDep) -> FleetPlan:
    """Preview a fleet change: validate it and list its differences from the fleet in force."""
    return service.plan(session, body.fleet, who.actor, now)


@router.post("/apply", response_model=FleetOut)
def apply_fleet(body: FleetApplyIn, session: WriteSessionDep, who: AdminDep, now: NowDep) -> FleetOut:
    """Apply a plan; 409 when the fleet changed since the plan was made."""
    return service.apply(session, body.plan_id, who.actor, now)
