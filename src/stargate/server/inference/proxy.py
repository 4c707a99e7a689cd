"""The reverse proxy at ``/services/NAME/...``: a request goes to a ready replica of the service (least outstanding
requests from this process, ties to the lowest number) at ``http://127.0.0.1:PORT/...``, and its answer is streamed
back as it comes (the web layer only: the scheduler loop never imports this module).

It is an ASGI middleware of the app (inside the body limit and the last-resort error handler), not a FastAPI route,
and talks to replicas with :mod:`.upstream`, not httpx: at 500 requests/s on two cores, FastAPI's routing and httpx
cost about 2 ms of CPU per request and their queueing made the p99 added latency 100 ms and more (bench/README.md).
The caller needs a bearer token of the service's team (or an admin's; a viewer's will do): another team's service is
a 404, as its jobs are.

- **Retry once, when safe**: when the chosen replica refuses the connection (or none can be made), or the request is
  idempotent (GET, HEAD, OPTIONS, PUT, DELETE) and the replica closes the connection before an answer's first byte
  (it died, or is stopping), the request is sent once more to another ready replica; the first one is left out of
  this process's choices for 2 s. A POST or PATCH that may have reached a replica is never sent to another (it may
  have run: a located 502 instead), a replica that answered (any status) is never asked again, and no request is
  cut off to be retried.
- **No ready replica**: the request waits for one (a replica starting, or one the autoscaler is about to add: the
  arrival counts) as long as a first replica takes to come (:func:`wait_s`): the autoscaler's next tick sees the
  request, it adds a replica once that has been wanted for ``upscale_delay_s`` (in whole ticks), and the replica
  answers ``cold_start_s`` after it started; + 10 s, at most 600 s. Then 503 ``{"detail": ...}`` saying what it
  waited for, with ``Retry-After``. A service being deleted answers 503 at once.
- **Measured** (see :mod:`stargate.server.inference.meter`): arrivals and their prompt tokens (the request's JSON
  ``prompt_tokens``, else the answer's ``usage.prompt_tokens``), completions and their output tokens (the answer's
  ``usage.completion_tokens`` of an OpenAI-style completion, in a JSON answer or the last event of a stream that
  carries one; else the request's ``max_tokens``), requests in flight over time, end-to-end latency, and the time to
  the first byte of a streamed answer (``text/event-stream`` or chunked).
- **Headers**: hop-by-hop headers, the headers the ``Connection`` header names (RFC 9110 7.6.1), ``Authorization``
  (the Stargate token), and the client's own ``Forwarded`` and ``X-Forwarded-*`` are not passed on; the proxy's
  ``X-Forwarded-For`` (the client's address), ``X-Forwarded-Proto`` and ``X-Forwarded-Prefix: /services/NAME`` are.
- **Client gone**: a body the client did not send whole (it went away mid-upload) is never sent on. When the client
  disconnects while its request waits for a ready replica, waits for the replica's answer, or before the answer
  ended, the request is dropped and the replica's connection is closed (its work for that request stops being
  read, and the replica sees the request go).
"""

import asyncio
import json
import math
import re
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stargate.domain.ids import ID_PATTERN
from stargate.fleetfile.describe import found_text
from stargate.server.auth import Principal
from stargate.server.errors import ServiceError
from stargate.server.inference.meter import Meter
from stargate.server.inference.routes import ReplicaRoute, ServiceRoute
from stargate.server.inference.runtime import REFRESH_S, InferenceRuntime
from stargate.server.inference.upstream import IDEMPOTENT, Answer, CutOff, Pool, Unreachable

MIN_WAIT_S, MAX_WAIT_S = 10.0, 600.0
"""A request with no ready replica waits for a first replica to come + 10 s (the scheduler placing it, the health
checks seeing it ready), at most 600 s (as long as a replica may take to begin its answer: a client waits at most
twice that for a first byte)."""
POLL_S = 0.05
"""How often a waiting request looks for a ready replica again, s."""
KEPT_JSON = 256 * 1024
"""The most bytes of a JSON answer kept to read its ``usage`` (a larger answer's usage is not read)."""
SMALL_ANSWER = 64 * 1024
"""An answer of a known length up to this is relayed without watching for the client going away, bytes."""
KEPT_TAIL = 16 * 1024
"""The bytes of a streamed answer's end kept to find a last event with ``usage``."""
PREFIX = "/services/"
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"authorization", b"content-length", b"forwarded"}
NOT_RETURNED = HOP_BY_HOP | {b"server", b"date"}


def wait_s(route: ServiceRoute) -> float:
    """How long a request waits for a ready replica of ``route``: one autoscaler tick (until a tick sees it), then
    ``upscale_delay_s`` rounded up to whole ticks (a larger count is taken at the first tick that long after the first
    that wanted it), then ``cold_start_s``, + :data:`MIN_WAIT_S`; at most :data:`MAX_WAIT_S`."""
    return min(MAX_WAIT_S, _delay_s(route) + route.tick_s + route.cold_start_s + MIN_WAIT_S)


def waited_for(route: ServiceRoute) -> str:
    """What :func:`wait_s` waited for, in words (for the 503)."""
    delay = _delay_s(route)
    upscale = f"upscale_delay_s {route.upscale_delay_s:g} s"
    if delay != route.upscale_delay_s:
        upscale += f" in whole ticks ({delay:g} s)"
    whole = delay + route.tick_s + route.cold_start_s + MIN_WAIT_S
    text = (
        f"an autoscaler tick {route.tick_s:g} s + {upscale} + cold_start_s {route.cold_start_s:g} s + "
        f"{MIN_WAIT_S:g} s to place it and see it ready"
    )
    return text + (f" = {whole:g} s, at most {MAX_WAIT_S:g} s" if whole > MAX_WAIT_S else "")


def _delay_s(route: ServiceRoute) -> float:
    """``upscale_delay_s`` rounded up to whole ticks, s."""
    ticks = math.ceil(route.upscale_delay_s / route.tick_s - 1e-9) if route.tick_s > 0 else 0
    return max(ticks, 0) * route.tick_s


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer of the proxy itself: ``{"detail": ...}`` with a status (and ``Retry-After`` for a 503)."""

    status: int
    detail: str
    retry_after: int | None = None

    async def send(self, send: Send) -> None:
        """Answer with it."""
        body = json.dumps({"detail": self.detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if self.retry_after is not None:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        if self.status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


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
        self._pool: Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refreshing = False

    def pool(self) -> Pool:
        """The connections to the replicas, of the running event loop (made again if that loop changed)."""
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            self._pool, self._loop = Pool(), loop
        return self._pool

    def close(self) -> None:
        """Close the idle connections to the replicas."""
        if self._pool is not None:
            self._pool.close()

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

    async def handle(self, scope: Scope, receive: Receive, send: Send, name: str, who: Principal) -> None:
        """Send the request (``/services/<name>/...``) to a replica of ``name`` and stream its answer back."""
        route = await self.route(name)
        if route is None or not (who.is_admin or who.team == route.team):
            await Refusal(404, f"no service {found_text(name)}").send(send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away mid-upload: nothing to send on, no one to answer
            return
        prompt, max_tokens = request_tokens(body, _header(scope, b"content-type"))
        meter, counted = self.runtime.meter(name), self.runtime.metrics.of(name)
        meter.arrive(prompt or 0)
        counted.in_flight.inc()
        started = time.perf_counter()
        deadline = time.monotonic() + wait_s(route)
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await self._answer(scope, send, name, body, (prompt, max_tokens), started, deadline, gone)
        finally:
            gone.cancel()

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        name: str,
        body: bytes,
        asked: tuple[int | None, int | None],
        started: float,
        deadline: float,
        gone: "asyncio.Future[None]",
    ) -> None:
        """Send the request to a replica and stream its answer back, unless the client goes first (``gone``)."""
        meter, counted = self.runtime.meter(name), self.runtime.metrics.of(name)
        sending = asyncio.ensure_future(self._send(scope, name, body, meter, deadline))
        answered = await _first(sending, gone)  # False: the client went away, the request is dropped
        answer, replica, refusal = sending.result() if answered else (None, None, None)
        if answer is None or replica is None:
            meter.finish(None, None, None, failed=True)
            counted.in_flight.dec()
            counted.failed.inc()
            if answered:
                await (refusal or Refusal(503, f"service {found_text(name)}: no ready replica", 5)).send(send)
            return
        streamed = (
            answer.chunked or answer.length is None or b"text/event-stream" in (answer.header(b"content-type") or b"")
        )
        headers = [(k, v) for k, v in answer.headers if k not in NOT_RETURNED]
        if answer.chunked:
            headers = [(k, v) for k, v in headers if k != b"content-length"]
        if not streamed and (answer.length or 0) <= SMALL_ANSWER:  # read whole at once: no client to watch
            first, kept, outcome = await _outcome(self._relay(send, answer, headers, started, streamed))
            meter.released(replica.number)
            await answer.body.aclose()
            self._measure(name, meter, kept, streamed, started, first, asked, outcome)
            return
        relay = asyncio.ensure_future(self._relay(send, answer, headers, started, streamed))
        try:
            await asyncio.wait((relay, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not relay.done():
                relay.cancel()
            first, kept, outcome = await _outcome(relay)
            meter.released(replica.number)
            await answer.body.aclose()
            self._measure(name, meter, kept, streamed, started, first, asked, outcome)

    async def _send(
        self, scope: Scope, name: str, body: bytes, meter: Meter, deadline: float
    ) -> tuple[Answer | None, ReplicaRoute | None, Refusal | None]:
        """Send the request to a ready replica, and once more to another when the first did not answer and that is
        safe (see the module docstring); (answer, replica, None), or (None, None, why)."""
        tried: set[int] = set()
        failures: list[str] = []
        method, target, headers = scope["method"], _target(scope), _forwarded(scope, name)
        again = ""
        for attempt in range(2):
            replica, refusal = await self._ready(name, meter, tried, deadline)
            if replica is None:
                if failures:
                    break
                return None, None, refusal
            meter.routed(replica.number)
            try:
                return await self.pool().send(replica.port, method, target, headers, body), replica, None
            except Unreachable as exc:
                meter.released(replica.number)
                self.runtime.routes.suspect(name, replica.number)
                tried.add(replica.number)
                failures.append(f"replica {replica.number}: {exc}")
                if exc.sent and method not in IDEMPOTENT:
                    again = f"; a {method} that may have reached a replica is not sent again"
                    break
                if attempt == 0:
                    self.runtime.metrics.of(name).retries.inc()
            except TimeoutError:  # slow, not gone: never sent twice
                meter.released(replica.number)
                detail = f"service {found_text(name)}: replica {replica.number} did not start an answer in time"
                return None, None, Refusal(504, detail)
            except asyncio.CancelledError:  # the client went away (the connection was closed)
                meter.released(replica.number)
                raise
        detail = f"service {found_text(name)}: no replica answered ({'; '.join(failures)}){again}"
        return None, None, Refusal(502, detail)

    async def _ready(
        self, name: str, meter: Meter, tried: set[int], deadline: float
    ) -> tuple[ReplicaRoute | None, Refusal | None]:
        """A ready replica not in ``tried``, waiting for one until ``deadline``; (None, the 503) when none comes."""
        while True:
            route = await self.route(name)
            if route is None or not route.active:
                return None, Refusal(503, f"service {found_text(name)} is being deleted: it takes no new request")
            replica = self.runtime.routes.choose(route, meter, tried)
            if replica is not None:
                return replica, None
            if time.monotonic() >= deadline:
                detail = (
                    f"service {found_text(name)}: no ready replica after waiting {wait_s(route):g} s "
                    f"({waited_for(route)}; {route.coming()} starting or waiting for GPUs)"
                )
                return None, Refusal(503, detail, 5)
            await asyncio.sleep(POLL_S)

    async def _relay(
        self, send: Send, answer: Answer, headers: list[tuple[bytes, bytes]], started: float, streamed: bool
    ) -> tuple[float | None, bytes, str]:
        """Stream the answer to the client; (time to its first byte, the bytes kept to read its usage, outcome)."""
        first: float | None = None
        kept = bytearray()
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        try:
            async for chunk in answer.body:
                if first is None:
                    first = time.perf_counter() - started
                kept += chunk
                if streamed and len(kept) > KEPT_TAIL:
                    del kept[: len(kept) - KEPT_TAIL]
                elif not streamed and len(kept) > KEPT_JSON:
                    kept.clear()  # too large to read its usage: the request's max_tokens counts
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except CutOff:
            return first, bytes(kept), "failed"  # the client's connection is closed without an end
        await send({"type": "http.response.body", "body": b""})
        return first, bytes(kept), "answered"

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
        counted = self.runtime.metrics.of(name)
        counted.in_flight.dec()
        if outcome == "failed":
            meter.finish(None, None, None, failed=True)
            counted.failed.inc()
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
        counted.answered.inc()
        counted.prompt_tokens.inc(prompt or 0)
        counted.output_tokens.inc(output or 0)
        if e2e is not None:
            counted.latency.observe(e2e)
        if ttft is not None:
            counted.ttft.observe(ttft)


class ServiceProxy:
    """ASGI middleware: ``/services/NAME`` and ``/services/NAME/...`` go to :class:`Proxy` (after the caller's token
    is checked), everything else to the app."""

    def __init__(self, app: ASGIApp, proxy: Proxy, principal: Any) -> None:
        """``principal(authorization)``: the caller of a bearer header (raises the API's 401 or 503 errors)."""
        self.app, self.proxy, self.principal = app, proxy, principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Proxy a service request; pass any other on."""
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        name = _name(scope)
        if not _NAME.match(name):
            await Refusal(404, f"no service {found_text(name)}").send(send)
            return
        refusal = None
        try:
            who = await self.principal(_header(scope, b"authorization"))
            who.require_not_provider()
        except ServiceError as exc:
            refusal = Refusal(exc.status, exc.detail)
        if refusal is not None:
            await refusal.send(send)
            return
        await self.proxy.handle(scope, receive, send, name, who)


_NAME = re.compile(ID_PATTERN)


def _named(values: Iterable[bytes]) -> frozenset[bytes]:
    """The header names the ``Connection`` header values list (lower case)."""
    return frozenset(name.strip().lower() for value in values for name in value.split(b",") if name.strip())


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header ``name`` (lower case) as text, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive) -> bytes | None:
    """The request body whole (the app's body limit bounds it); None when the client went away before its end."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _disconnected(receive: Receive) -> None:
    """Return once the client went away."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _first(work: "asyncio.Future[Any]", gone: "asyncio.Future[None]") -> bool:
    """Wait for ``work`` or the client going away; True when ``work`` ended first (else it is cancelled and waited
    for, so that it has closed what it opened)."""
    try:
        await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work.done():
            work.cancel()
            await asyncio.wait((work,))
    return not work.cancelled()


async def _outcome(relay: Awaitable[tuple[float | None, bytes, str]]) -> tuple[float | None, bytes, str]:
    """What the relay ended with: its result, or (None, b'', 'gone') when the client went away first."""
    try:
        return await relay
    except (asyncio.CancelledError, OSError):
        return None, b"", "gone"


def _name(scope: Scope) -> str:
    """The service's name: the segment after ``/services/`` of the path as sent, decoded (cut from the same raw path
    as the replica's target, so a percent-encoded slash stays in the name, which then names no service)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    segment = raw[len(PREFIX) :].split(b"/", 1)[0] if raw.startswith(PREFIX.encode()) else b""
    return unquote(segment.decode("latin-1"))


def _target(scope: Scope) -> bytes:
    """The replica's request target: the path after ``/services/NAME`` as sent, and the query."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    rest = raw.split(b"/", 3)
    path = b"/" + (rest[3] if len(rest) > 3 else b"")
    query: bytes = scope.get("query_string") or b""
    return path + (b"?" + query if query else b"")


def _forwarded(scope: Scope, name: str) -> list[tuple[bytes, bytes]]:
    """The request's headers as passed on (see the module docstring)."""
    dropped = NOT_FORWARDED | _named(v for k, v in scope["headers"] if k == b"connection")
    headers = [(k, v) for k, v in scope["headers"] if k not in dropped and not k.startswith(b"x-forwarded-")]
    client = (scope.get("client") or ("", 0))[0].encode()
    headers.append((b"x-forwarded-for", client))
    headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    headers.append((b"x-forwarded-prefix", f"/services/{name}".encode()))
    return headers
