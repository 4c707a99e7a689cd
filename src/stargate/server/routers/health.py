"""Unauthenticated endpoints: health, liveness and Prometheus metrics."""

from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from stargate.server.deps import CtxDep
from stargate.server.schemas import Health

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health, "description": "Degraded: the scheduler's cycles keep failing."}},
)
def healthz(ctx: CtxDep, request: Request) -> Health | JSONResponse:
    """Health: 200 ``ok``, or 503 ``degraded`` with the reason while this process's scheduler keeps failing; and
    whether this process leads the scheduling (``scheduler``: leader or standby, absent when it runs none)."""
    leads: Callable[[], bool] | None = request.app.state.leads
    role = None if leads is None else "leader" if leads() else "standby"
    problem = ctx.metrics.scheduler.problem()
    if problem is None:
        return Health(scheduler=role)
    body = Health(status="degraded", reason=problem, scheduler=role).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=503)


@router.get("/livez", response_model=Health, response_model_exclude_none=True)
def livez() -> Health:
    """Liveness: the process answers (stays 200 while degraded, so a probe does not restart a server whose API is
    needed to fix what degrades it)."""
    return Health()


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(ctx: CtxDep) -> Response:
    """Prometheus metrics in text format."""
    return Response(ctx.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
