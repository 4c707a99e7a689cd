"""Fleet endpoints: read the fleet in force and its clusters' health (declared, observed, their events); plan and
apply a change (admin only)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime

from stargate.domain import ClusterStatus
from stargate.server.deps import AdminDep, CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.routers.strict import StrictJsonRoute
from stargate.server.schemas import (
    ClusterEvent,
    ClusterEventPage,
    ClusterHealth,
    FleetApplyIn,
    FleetHealth,
    FleetOut,
    FleetPlan,
    FleetPlanIn,
    HealthFailing,
    SchedulingOut,
)
from stargate.server.schemas_usage import DEFAULT_POINTS, MAX_POINTS, FleetUsage
from stargate.server.services import fleet as service
from stargate.server.services import fleet_usage as usage_service
from stargate.server.services.fleet import STANDBY_NOTE
from stargate.store.repositories import health as health_repo

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


_WORSE = (ClusterStatus.UP, ClusterStatus.DEGRADED, ClusterStatus.DOWN)
"""Statuses from best to worst: the scheduler uses the worse of a cluster's declared and observed status."""


@router.get("/health", response_model=FleetHealth)
def get_health(_who: PrincipalDep, session: ReadSessionDep, ctx: CtxDep) -> FleetHealth:
    """Every cluster's declared status, the status its executor's health checks observe, and the one the scheduler
    uses (the worse of the two), with why and since when; while its executor's checks fail, since when, how many,
    the last error and when its clusters are taken down if they go on failing (as stored: any server answers)."""
    version, fleet = ctx.fleet.get(session)
    executor_of = fleet.cluster_executor_ids()
    configs = fleet.executor_configs()
    stored = health_repo.observed(session)
    streaks = health_repo.streaks(session)
    out: list[ClusterHealth] = []
    for c in fleet.clusters:
        executor = executor_of.get(c.id, "local")
        streak, config = streaks.get(executor), configs.get(executor)
        failing = None
        if streak is not None and config is not None:
            down_at = streak.since + timedelta(seconds=config.health.down_after_s)
            failing = HealthFailing(
                since=streak.since,
                checks=streak.checks,
                last_error=streak.last_error,
                last_check_at=streak.checked_at,
                down_at=down_at,
            )
        seen = stored.get(c.id)
        if seen is not None and seen.executor != executor:
            seen = None  # observed through an executor the cluster no longer uses
        observed = ClusterStatus(seen.status) if seen is not None else ClusterStatus.UP
        status = max(c.status, observed, key=_WORSE.index)
        out.append(
            ClusterHealth(
                cluster=c.id,
                executor=executor,
                declared=c.status.value,
                observed=observed.value,
                status=status.value,
                reason=seen.reason if seen is not None else "",
                since=seen.since if seen is not None else None,
                failing=failing,
            )
        )
    return FleetHealth(version=version, clusters=out)


@router.get("/events", response_model=ClusterEventPage)
def list_cluster_events(
    _who: PrincipalDep,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cluster: Annotated[str | None, Query(max_length=63)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> ClusterEventPage:
    """Changes of the clusters' observed status, newest first (of ``cluster`` only, older than the event id
    ``before``, when given)."""
    rows = health_repo.events(session, limit + 1, cluster, before)
    items = [
        ClusterEvent(
            id=r.id,
            at=r.at,
            cluster=r.cluster,
            executor=r.executor,
            from_=r.from_status,
            to=r.to_status,
            reason=r.reason,
        )
        for r in rows[:limit]
    ]
    return ClusterEventPage(items=items, next_before=items[-1].id if len(rows) > limit else None)


@router.get("/usage", response_model=FleetUsage)
def get_usage(
    _who: PrincipalDep,
    session: ReadSessionDep,
    ctx: CtxDep,
    now: NowDep,
    since: Annotated[
        AwareDatetime | None, Query(description="First sample instant, ISO 8601 with a zone; default: until − 24 h.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Last sample instant, ISO 8601 with a zone; default: now.")
    ] = None,
    points: Annotated[int, Query(ge=2, le=MAX_POINTS, description="Sample instants, 2 to 1,000.")] = DEFAULT_POINTS,
) -> FleetUsage:
    """GPUs held per cluster and IT power energised per site at ``points`` evenly spaced instants from ``since`` to
    ``until`` (at most 366 days), and the fleet's buildings by the day their power counts from."""
    version, fleet = ctx.fleet.get(session)
    return usage_service.fleet_usage(session, version, fleet, since, until, points, now)


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
