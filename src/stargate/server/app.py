"""The FastAPI application: routers under ``/api/v1``, health and metrics, error bodies, the scheduler thread."""

import gc
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stargate import __version__
from stargate.fleetfile.describe import found_text, plain_error_words
from stargate.server.context import ServerContext
from stargate.server.deps import any_principal
from stargate.server.errors import DATABASE_DOWN, ServiceError, database_problem
from stargate.server.inference.proxy import Proxy, ServiceProxy
from stargate.server.limits import BODY_ENV, MAX_PATH_BYTES, PLAN_BODY_ENV
from stargate.server.routers import fleet, health, jobs, misc, money, plans, services, simulations
from stargate.server.scheduling.loop import SchedulerThread
from stargate.server.schemas import ERROR_RESPONSES
from stargate.server.ui import routes as ui
from stargate.store import IllegalTransitionError

log = logging.getLogger("stargate.server")

API_PREFIX = "/api/v1"

PLAN_PATH = f"{API_PREFIX}/fleet/plan"
RECONCILE_PATH = f"{API_PREFIX}/costs/reconcile"
CAPACITY_PLAN_PATH = f"{API_PREFIX}/plans"
LARGE_BODY_PATHS = (PLAN_PATH, RECONCILE_PATH, CAPACITY_PLAN_PATH)
"""The routes with their own, larger body limit (a whole fleet document; a provider's bill; a plan scenario of up
to 1 MB, escaped as a JSON string)."""


class BodyLimit:
    """ASGI middleware: a request body over its limit gets 413 before it is read into memory (and a path over
    :data:`~stargate.server.limits.MAX_PATH_BYTES` gets 414).

    A declared ``Content-Length`` over the limit is refused at once, without reading; a body without one (chunked)
    is counted as it streams and refused at the first chunk past the limit. ``POST /api/v1/fleet/plan``, ``POST
    /api/v1/costs/reconcile`` and ``POST /api/v1/plans`` have their own larger limit, granted only to a request that
    carries an ``Authorization`` header (the token is checked after the body is read, so an anonymous client gets
    the default limit).
    """

    def __init__(self, app: ASGIApp, limit: int, plan_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.plan_limit = plan_limit

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        """The byte limit of this request and the setting that sets it."""
        if scope["path"] in LARGE_BODY_PATHS and any(k == b"authorization" for k, _ in scope["headers"]):
            return self.plan_limit, PLAN_BODY_ENV
        return self.limit, BODY_ENV

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count the streamed bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        if len(path) > MAX_PATH_BYTES:
            await _reply(send, 414, f"path: found {len(path):,} bytes, expected at most {MAX_PATH_BYTES:,} bytes")
            return
        limit, setting = self.limit_for(scope)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 20:
                detail = f"content-length: found '{text[:40]}', expected a whole number of bytes"
                await _reply(send, 400, detail)
                return
            if int(text) > limit:
                await _reply(send, 413, _too_large(f"{int(text):,} bytes", limit, setting))
                return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large(f"more than {limit:,} bytes", limit, setting))
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except HTTPException as exc:  # raised by counted() outside a route (FastAPI answers it inside one)
            if exc.status_code != 413 or started:
                raise
            await _reply(send, 413, str(exc.detail))


RETRY_AFTER_S = 5
"""The ``Retry-After`` of a 503 for an unavailable database, s."""

QUIET_S = 60.0
"""A failure kind logged once is logged again at most this often (with how many requests it failed meanwhile)."""


class FailureLog:
    """Logs each kind of failure (exception type and first line) once, then at most every :data:`QUIET_S`
    seconds with a count, so that a database outage gives a few log lines, not a traceback per request."""

    def __init__(self, quiet_s: float = QUIET_S) -> None:
        self.quiet_s = quiet_s
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def note(self, kind: str) -> int | None:
        """Count one failure of ``kind``; the number of failures to report now (1 the first time), or None."""
        now = time.monotonic()
        with self._lock:
            last, missed = self._seen.get(kind, (-self.quiet_s, 0))
            if now - last < self.quiet_s:
                self._seen[kind] = (last, missed + 1)
                return None
            self._seen[kind] = (now, 0)
            return missed + 1


class LastResort:
    """ASGI middleware (outermost): an exception nothing else handled is answered ``500 {"detail": "internal
    error (logged as <id>)"}`` as JSON, and its traceback logged once with that id (never text/plain, never a
    second traceback from the server underneath)."""

    def __init__(self, app: ASGIApp, failures: "FailureLog") -> None:
        self.app = app
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; answer an escaped exception with JSON 500 when no answer was started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if isinstance(exc, DATABASE_DOWN):  # raised outside a route (e.g. in a middleware)
                detail = database_unavailable(self.failures, exc)
                if not started:
                    await _reply(send, 503, detail, {"Retry-After": str(RETRY_AFTER_S)})
                return
            error_id = uuid.uuid4().hex[:12]
            log.error("internal error %s on %s %s", error_id, scope.get("method"), scope.get("path"), exc_info=exc)
            if not started:
                await _reply(send, 500, f"internal error (logged as {error_id})")


def database_unavailable(failures: FailureLog, exc: BaseException) -> str:
    """The 503 detail for a database failure, logged once per kind (see :class:`FailureLog`)."""
    problem = database_problem(exc)
    count = failures.note(problem)
    if count is not None:
        again = "" if count == 1 else f" ({count} requests failed the same way since it was last logged)"
        log.error("database unavailable: %s%s", problem, again)
    return f"database unavailable: {problem}"


def _too_large(found: str, limit: int, setting: str) -> str:
    return f"body: found {found}, expected at most {limit:,} bytes ({setting})"


async def _reply(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    headers = {"Connection": "close", **(headers or {})}
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def create_app(ctx: ServerContext) -> FastAPI:
    """The API app over ``ctx``; the scheduler loop runs in a thread while the app is up when the settings say so.

    The database must already be migrated (see :func:`stargate.server.bootstrap.prepare`).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Run the scheduler thread (when enabled) while the app serves."""
        loop = SchedulerThread(ctx) if ctx.settings.scheduler_enabled else None
        _app.state.leads = None if loop is None else lambda: loop.leader  # /healthz says whether this process leads
        if loop is not None:
            loop.start()
        ctx.inference.start()  # the proxy's routes and traffic, kept in step with the database
        # The objects of start-up (modules, the app, the fleet: about 200,000) are never scanned by the cyclic
        # collector again: a full collection under load took 80-280 ms over them, every request waiting meanwhile.
        gc.freeze()
        try:
            yield
        finally:
            if loop is not None:
                loop.stop()
            ctx.submissions.stop()
            _app.state.proxy.close()
            ctx.inference.stop()

    app = FastAPI(
        title="Stargate",
        version=__version__,
        description='Control plane for multi-provider AI compute. Bearer tokens; errors are {"detail": "..."}.',
        lifespan=lifespan,
        redirect_slashes=False,  # a path with a trailing slash is a located 404, not a redirect built from Host
        # No OpenTelemetry (/metrics is the server's telemetry): spares FastAPI's per-request look-ups of the
        # environment for a provider, a tenth of the inference proxy's CPU per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.ctx = ctx
    app.state.leads = None
    app.state.proxy = proxy = Proxy(ctx.inference)
    # /services/NAME/...: the inference proxy, inside the body limit and the last resort (added first: innermost)
    app.add_middleware(ServiceProxy, proxy=proxy, principal=lambda authorization: any_principal(ctx, authorization))
    app.add_middleware(BodyLimit, limit=ctx.settings.max_body_bytes, plan_limit=ctx.settings.max_plan_body_bytes)
    app.state.failures = failures = FailureLog()
    app.add_middleware(
        LastResort, failures=failures
    )  # added last: the outermost of ours, so it sees what every other one raises
    app.include_router(health.router)
    app.include_router(ui.router)  # the dashboard: /ui, reading the API below with the user's token
    for router in (jobs.router, fleet.router, misc.router, money.router, plans.router, services.router):
        app.include_router(router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    simulations.attach(app, ctx, API_PREFIX, ERROR_RESPONSES)  # /api/v1/simulations; fails runs a stopped server left
    _add_error_handlers(app, failures)
    return app


def _add_error_handlers(app: FastAPI, failures: FailureLog) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(IllegalTransitionError)
    async def _illegal(_request: Request, exc: IllegalTransitionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(DisconnectionError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
        detail = database_unavailable(failures, exc)
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": _http_detail(request, exc)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, status_code=422)


def _http_detail(request: Request, exc: HTTPException) -> str:
    """Starlette's own "Not Found" and "Method Not Allowed" said with the path and what was expected; any other
    HTTP error as raised."""
    path = found_text(request.url.path)
    if exc.status_code == 404 and exc.detail == "Not Found":
        slash = request.url.path.endswith("/") and request.url.path != "/"
        return f"path: found {path}, expected an API path{' without the trailing slash' if slash else ''} (see /docs)"
    if exc.status_code == 405 and exc.detail == "Method Not Allowed":
        allowed = (exc.headers or {}).get("Allow", "")
        return f"method: found {request.method} on {path}, expected {allowed or 'another method'}"
    return str(exc.detail)


def validation_message(exc: RequestValidationError) -> str:
    """FastAPI's validation errors as one located line each: ``body.gpus: found -1, expected greater than or equal
    to 1``; inputs are shortened and control characters escaped, so a refused body is never echoed whole."""
    lines = []
    for err in exc.errors():
        if isinstance(err.get("input"), bytes):  # a body that is not JSON (a form): shown as text, not b'...'
            err = {**err, "input": err["input"].decode("utf-8", "replace")}
        where = ".".join(_part(p) for p in err.get("loc", ())) or "request"
        found, expected = plain_error_words(err)
        if err.get("type") == "json_invalid":  # loc is ("body", character offset)
            where, at = "body", err["loc"][-1] if err.get("loc") else "?"
            found = f"text that is not JSON at character {at} ({err.get('ctx', {}).get('error', 'invalid')})"
            expected = "a JSON object"
        lines.append(f"{where}: found {found}, expected {expected}")
    if len(lines) > _MAX_LINES:
        lines = [*lines[:_MAX_LINES], f"and {len(lines) - _MAX_LINES} more"]
    return "; ".join(lines) or "invalid request"


_MAX_LINES = 20
"""The most validation errors one 422 lists."""


def _part(part: int | str) -> str:
    """One step of an error's location: a key shown as written, quoted when empty, escaped and shortened."""
    text = str(part)
    return "''" if text == "" else found_text(text)[1:-1]
