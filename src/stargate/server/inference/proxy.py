"""The reverse proxy at ``/services/NAME/...``: a request goes to a ready replica of the service (least outstanding
requests from this process, ties to the lowest number) at ``http://127.0.0.1:PORT/...``, and its answer is streamed
back as it comes (the web layer only: the scheduler loop never imports this module).

- **Retry once**: when the chosen replica refuses the connection or closes it before an answer's first byte (it
  died, or is stopping), the request is sent once more to another ready replica; the first one is left out of this
  process's choices for 2 s. A replica that answered (any status) is never asked again, and no request is cut off
  to be retried.
- **No ready replica**: the request waits for one (a replica starting, or one the autoscaler is about to add: the
  arrival counts) up to the service's ``cold_start_s`` + 10 s, at most 120 s; then 503 ``{"detail": ...}`` with
  ``Retry-After``. A service being deleted answers 503 at once.
- **Measured** (see :mod:`stargate.server.inference.meter`): arrivals and their prompt tokens (the request's JSON
  ``prompt_tokens``, else the answer's ``usage.prompt_tokens``), completions and their output tokens (the answer's
  ``usage.completion_tokens`` of an OpenAI-style completion, in a JSON answer or the last event of a stream that
  carries one; else the request's ``max_tokens``), requests in flight over time, end-to-end latency, and the time to
  the first byte of a streamed answer (``text/event-stream`` or chunked).
- **Headers**: hop-by-hop headers and ``Authorization`` (the Stargate token) are not passed on; ``X-Forwarded-For``,
  ``X-Forwarded-Proto`` and ``X-Forwarded-Prefix: /services/NAME`` are added.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from stargate.fleetfile.describe import found_text
from stargate.server.auth import Principal
from stargate.server.inference.meter import Meter
from stargate.server.inference.replica_job import HOST
from stargate.server.inference.routes import ReplicaRoute, ServiceRoute
from stargate.server.inference.runtime import REFRESH_S, InferenceRuntime

MIN_WAIT_S, MAX_WAIT_S = 10.0, 120.0
"""A request with no ready replica waits ``cold_start_s`` + 10 s for one, at most 120 s."""
POLL_S = 0.05
"""How often a waiting request looks for a ready replica again, s."""
KEPT_JSON = 256 * 1024
"""The most bytes of a JSON answer kept to read its ``usage`` (a larger answer's usage is not read)."""
KEPT_TAIL = 16 * 1024
"""The bytes of a streamed answer's end kept to find a last event with ``usage``."""
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "authorization", "content-length"}
NOT_RETURNED = HOP_BY_HOP | {"server", "date"}
RETRIED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
"""Failures before an answer's first byte that send the request to another replica."""


def wait_s(route: ServiceRoute) -> float:
    """How long a request waits for a ready replica of ``route``."""
    return min(MAX_WAIT_S, MIN_WAIT_S + route.cold_start_s)


def error(status: int, detail: str, retry_after: int | None = None) -> JSONResponse:
    """An error answer of the proxy itself: ``{"detail": ...}``."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def request_tokens(body: bytes, content_type: str | None) -> tuple[int | None, int | None]:
    """(``prompt_tokens``, ``max_tokens``) of a JSON request body, each None when absent or not a whole number."""
    if not body or "json" not in (content_type or ""):
        return None, None
    try:
        data = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    return _count(data.get("prompt_tokens")), _count(data.get("max_tokens"))


def answer_usage(kept: bytes, streamed: bool) -> dict[str, Any]:
    """The ``usage`` object of an answer (its JSON, or the last event of a stream that has one); {} when none."""
    if not streamed:
        try:
            data = json.loads(kept)
        except ValueError:
            return {}
        usage = data.get("usage") if isinstance(data, dict) else None
        return usage if isinstance(usage, dict) else {}
    for line in reversed(kept.decode("utf-8", "replace").splitlines()):
        text = line.strip()
        if not text.startswith("data:") or '"usage"' not in text:
            continue
        try:
            data = json.loads(text[5:])
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            return dict(data["usage"])
    return {}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9 else None


class Proxy:
    """The proxy of one app over the process's :class:`InferenceRuntime`."""

    def __init__(self, runtime: InferenceRuntime) -> None:
        self.runtime = runtime
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refreshing = False

    def client(self) -> httpx.AsyncClient:
        """The connection pool to the replicas, made in the running event loop (again if that loop changed)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30.0)
            timeout = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=60.0)
            self._client = httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    async def route(self, name: str) -> ServiceRoute | None:
        """The route of service ``name``; the routes are read again first when they are old (no refresh thread)."""
        table = self.runtime.routes
        if time.monotonic() - table.loaded_at > 2 * REFRESH_S and not self._refreshing:
            self._refreshing = True
            try:
                await asyncio.to_thread(self.runtime.refresh)
            finally:
                self._refreshing = False
        return table.get(name)

    async def handle(self, request: Request, name: str, who: Principal) -> Response:
        """Send ``request`` (for ``/services/<name>/...``) to a replica of ``name`` and stream its answer back."""
        route = await self.route(name)
        if route is None or not (who.is_admin or who.team == route.team):
            return error(404, f"no service {found_text(name)}")
        body = await request.body()
        prompt, max_tokens = request_tokens(body, request.headers.get("content-type"))
        meter = self.runtime.meter(name)
        metrics = self.runtime.metrics
        meter.arrive(prompt or 0)
        metrics.in_flight.labels(service=name).inc()
        started = time.perf_counter()
        deadline = time.monotonic() + wait_s(route)
        upstream, replica, why = await self._send(request, name, body, meter, deadline)
        if upstream is None or replica is None:
            meter.finish(None, None, None, failed=True)
            metrics.in_flight.labels(service=name).dec()
            metrics.requests.labels(service=name, outcome="failed").inc()
            return why or error(503, f"service {found_text(name)}: no ready replica", 5)
        streamed = "text/event-stream" in upstream.headers.get("content-type", "") or (
            "content-length" not in upstream.headers
        )
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in NOT_RETURNED}
        relay = self._relay(upstream, name, replica.number, meter, started, streamed, (prompt, max_tokens))
        return StreamingResponse(relay, status_code=upstream.status_code, headers=headers)

    async def _send(
        self, request: Request, name: str, body: bytes, meter: Meter, deadline: float
    ) -> tuple[httpx.Response | None, ReplicaRoute | None, Response | None]:
        """Send the request to a ready replica, and once more to another when the first fails before answering;
        (answer, replica, None), or (None, None, the error answer)."""
        tried: set[int] = set()
        failures: list[str] = []
        for attempt in range(2):
            replica, why = await self._ready(name, meter, tried, deadline)
            if replica is None:
                if failures:
                    break
                return None, None, why
            meter.routed(replica.number)
            try:
                outgoing = self.client().build_request(
                    request.method, _url(request, replica), headers=_forwarded(request, name), content=body
                )
                return await self.client().send(outgoing, stream=True), replica, None
            except RETRIED as exc:
                meter.released(replica.number)
                self.runtime.routes.suspect(name, replica.number)
                tried.add(replica.number)
                failures.append(f"replica {replica.number}: {_why(exc)}")
                if attempt == 0:
                    self.runtime.metrics.retries.labels(service=name).inc()
            except httpx.HTTPError as exc:  # a timeout: the replica is slow, not gone (never sent twice)
                meter.released(replica.number)
                detail = f"service {found_text(name)}: replica {replica.number} did not answer: {_why(exc)}"
                return None, None, error(504, detail)
        detail = f"service {found_text(name)}: no replica answered ({'; '.join(failures)})"
        return None, None, error(502, detail)

    async def _ready(
        self, name: str, meter: Meter, tried: set[int], deadline: float
    ) -> tuple[ReplicaRoute | None, Response | None]:
        """A ready replica not in ``tried``, waiting for one until ``deadline``; (None, the 503) when none comes."""
        while True:
            route = await self.route(name)
            if route is None or not route.active:
                return None, error(503, f"service {found_text(name)} is being deleted: it takes no new request")
            replica = self.runtime.routes.choose(route, meter, tried)
            if replica is not None:
                return replica, None
            if time.monotonic() >= deadline:
                coming = route.coming()
                detail = (
                    f"service {found_text(name)}: no ready replica after waiting {wait_s(route):g} s "
                    f"({coming} starting or waiting for GPUs)"
                )
                return None, error(503, detail, 5)
            await asyncio.sleep(POLL_S)

    async def _relay(
        self,
        upstream: httpx.Response,
        name: str,
        number: int,
        meter: Meter,
        started: float,
        streamed: bool,
        asked: tuple[int | None, int | None],
    ) -> AsyncIterator[bytes]:
        """The answer's bytes as they come; the request is measured once they end."""
        first: float | None = None
        kept = bytearray()
        outcome = "answered"
        try:
            async for chunk in upstream.aiter_raw():
                if first is None:
                    first = time.perf_counter() - started
                kept += chunk
                if streamed and len(kept) > KEPT_TAIL:
                    del kept[: len(kept) - KEPT_TAIL]
                elif not streamed and len(kept) > KEPT_JSON:
                    kept.clear()  # too large to read its usage: the request's max_tokens counts
                yield chunk
        except httpx.HTTPError:
            outcome = "failed"  # cut off: the replica died mid-answer
            raise
        except BaseException:
            outcome = "gone"  # the client went away
            raise
        finally:
            await upstream.aclose()
            meter.released(number)
            self._measure(name, meter, bytes(kept), streamed, started, first, asked, outcome)

    def _measure(
        self,
        name: str,
        meter: Meter,
        kept: bytes,
        streamed: bool,
        started: float,
        first: float | None,
        asked: tuple[int | None, int | None],
        outcome: str,
    ) -> None:
        """Count one request that ended (see the module docstring for what is read)."""
        metrics = self.runtime.metrics
        metrics.in_flight.labels(service=name).dec()
        if outcome == "failed":
            meter.finish(None, None, None, failed=True)
            metrics.requests.labels(service=name, outcome="failed").inc()
            return
        usage = answer_usage(kept, streamed) if kept else {}
        prompt, max_tokens = asked
        output = _count(usage.get("completion_tokens"))
        output = max_tokens if output is None else output
        if prompt is None and (learned := _count(usage.get("prompt_tokens"))) is not None:
            meter.add_prompt_tokens(learned)
            prompt = learned
        e2e = time.perf_counter() - started if outcome == "answered" else None
        ttft = first if streamed else None
        meter.finish(output, ttft, e2e)
        metrics.requests.labels(service=name, outcome="answered").inc()
        metrics.tokens.labels(service=name, kind="prompt").inc(prompt or 0)
        metrics.tokens.labels(service=name, kind="output").inc(output or 0)
        if e2e is not None:
            metrics.latency.labels(service=name).observe(e2e)
        if ttft is not None:
            metrics.ttft.labels(service=name).observe(ttft)


def _url(request: Request, replica: ReplicaRoute) -> httpx.URL:
    """The replica's URL for ``request``: the path after ``/services/NAME`` (as sent) and the query."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    rest = raw.split(b"/", 3)
    path = b"/" + (rest[3] if len(rest) > 3 else b"")
    query = request.scope.get("query_string") or b""
    return httpx.URL(f"http://{HOST}:{replica.port}").copy_with(raw_path=path + (b"?" + query if query else b""))


def _forwarded(request: Request, name: str) -> list[tuple[str, str]]:
    """The request's headers as passed on (see the module docstring)."""
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED]
    client = request.client.host if request.client else ""
    earlier = request.headers.get("x-forwarded-for")
    headers = [(k, v) for k, v in headers if k.lower() not in ("x-forwarded-for", "x-forwarded-prefix")]
    headers.append(("x-forwarded-for", f"{earlier}, {client}" if earlier else client))
    headers.append(("x-forwarded-proto", request.url.scheme))
    headers.append(("x-forwarded-prefix", f"/services/{name}"))
    return headers


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
