"""The FastAPI application: routers under ``/api/v1``, health and metrics, error bodies, the scheduler thread."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from stargate import __version__
from stargate.server.context import ServerContext
from stargate.server.errors import ServiceError
from stargate.server.loop import SchedulerThread
from stargate.server.routers import fleet, health, jobs, misc
from stargate.server.schemas import ERROR_RESPONSES
from stargate.store import IllegalTransitionError

API_PREFIX = "/api/v1"


def create_app(ctx: ServerContext) -> FastAPI:
    """The API app over ``ctx``; the scheduler loop runs in a thread while the app is up when the settings say so.

    The database must already be migrated (see :func:`stargate.server.bootstrap.prepare`).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Run the scheduler thread (when enabled) while the app serves."""
        loop = SchedulerThread(ctx) if ctx.settings.scheduler_enabled else None
        if loop is not None:
            loop.start()
        try:
            yield
        finally:
            if loop is not None:
                loop.stop()
            ctx.submissions.stop()

    app = FastAPI(
        title="Stargate",
        version=__version__,
        description='Control plane for multi-provider AI compute. Bearer tokens; errors are {"detail": "..."}.',
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.include_router(health.router)
    for router in (jobs.router, fleet.router, misc.router):
        app.include_router(router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(IllegalTransitionError)
    async def _illegal(_request: Request, exc: IllegalTransitionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, status_code=422)


def validation_message(exc: RequestValidationError) -> str:
    """FastAPI's validation errors as one located line each: ``body.gpus: Input should be ... (found -1)``."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "request"
        found = err.get("input")
        shown = f" (found {found!r})" if found is not None and not isinstance(found, dict | list) else ""
        lines.append(f"{where}: {err.get('msg', 'invalid')}{shown[:200]}")
    return "; ".join(lines) or "invalid request"
