"""Capacity plans: compute a scenario against the fleet in force and store it, list and show stored plans, apply
one (its 'sign' actions become capacity requests, offered to a first-refusal holder first).

Who may do what: admins and members compute plans; admins, members and viewers read them; only admins apply one;
provider tokens none of it. The routes are plain functions: FastAPI runs them in a worker thread, so a plan being
computed (bounded to 1,000 Monte Carlo scenarios, in-process, never on Ray) never holds up the event loop.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from stargate.server.deps import AdminDep, CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.routers.strict import StrictJsonRoute
from stargate.server.schemas import ErrorBody
from stargate.server.schemas_plans import ApplyIn, ApplyOut, PlanDetail, PlanIn, PlanOut, PlanSummary
from stargate.server.services import plans as service

router = APIRouter(route_class=StrictJsonRoute)

IdPath = Annotated[str, Path(max_length=40)]


BUSY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "Other plans are being computed; try again when one has finished."}
}


@router.post("/plans", response_model=PlanOut, status_code=201, tags=["plans"], responses=BUSY)
def create_plan(who: PrincipalDep, body: PlanIn, ctx: CtxDep, now: NowDep) -> PlanOut:
    """Compute a capacity plan for the scenario (admin or member) against the fleet in force and store it: 422 with
    the located problems of a bad scenario, or the diagnosis of an infeasible one (nothing stored); 503 while
    other plans are being computed."""
    return service.compute(ctx, who, body, now)


@router.get("/plans", response_model=list[PlanSummary], tags=["plans"])
def list_plans(
    who: PrincipalDep, session: ReadSessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[PlanSummary]:
    """Stored plans, newest first: scenario, status, first shortfall month, unmet GPU-hours, applied or not."""
    return service.list_plans(session, who, limit)


@router.get("/plans/{plan_id}", response_model=PlanDetail, tags=["plans"])
def get_plan(who: PrincipalDep, plan_id: IdPath, session: ReadSessionDep) -> PlanDetail:
    """One stored plan: its result, the scenario YAML, and the requests it raised once applied."""
    return service.get_plan(session, who, plan_id)


@router.post("/plans/{plan_id}/apply", response_model=ApplyOut, tags=["plans"])
def apply_plan(who: AdminDep, plan_id: IdPath, ctx: CtxDep, now: NowDep, body: ApplyIn | None = None) -> ApplyOut:
    """Apply a plan (admin): one capacity request per 'sign' action (or per selected action), raised as `POST
    /procurement/requests` raises one (raised_by 'plan'), all in one transaction; 'build' actions are listed as not
    applicable; 409 when the plan was applied already."""
    with ctx.db.write() as session:
        return service.apply(session, who, plan_id, None if body is None else body.actions, now)
