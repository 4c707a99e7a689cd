"""Unauthenticated endpoints: liveness and Prometheus metrics."""

from fastapi import APIRouter, Response

from stargate.server.deps import CtxDep
from stargate.server.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process answers."""
    return Health()


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(ctx: CtxDep) -> Response:
    """Prometheus metrics in text format."""
    return Response(ctx.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
