"""A small typed client for the Stargate REST API (httpx): one method per endpoint, one exception per failure kind.

Failures are exceptions carrying a one-line message fit to show a user, and the CLI exit code that goes with it:
:class:`ServerUnreachableError` (3) when no server answers, :class:`ApiError` and its subclasses (1) when the server
refuses (400/401/403/404/409/410/422, with the server's ``detail``) or fails (5xx).

The client's configuration (URL and token) is in :mod:`stargate.client_config`.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NotRequired, TypedDict, TypeVar, cast
from urllib.parse import quote

import httpx

from stargate.client_config import DEFAULT_URL
from stargate.client_money import MoneyApi
from stargate.client_plans import PlansApi
from stargate.client_services import ServicesApi

DEFAULT_TIMEOUT_S = 10.0
JOB_STATUSES = ("pending", "placed", "running", "succeeded", "failed", "cancelled")
"""Every job status, in lifecycle order."""
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class WhoAmI(TypedDict):
    """``GET /api/v1/whoami``."""

    token_id: str
    name: str
    team: str | None
    role: str


class Waiting(TypedDict):
    """Why a pending job waits: a wait reason code (``quota``, ``capacity``, ``power``, ``clusters_down``,
    ``offline``, ``order``) and its detail."""

    reason: str
    detail: str


class Job(TypedDict):
    """A job as the API shows it (times ISO 8601 UTC or null)."""

    id: str
    name: str
    queue: str
    team: str
    kind: str
    gpus: int
    gpu_models: list[str]
    priority_class: str
    status: str
    reason: str
    """The code of the last status change (e.g. ``placed``, ``priority``, ``exceeds_quota``)."""
    detail: str
    """Free text that goes with ``reason`` (where, the exit code, the executor's error); may be empty."""
    attempt: int
    progress_s: NotRequired[float]
    """Run time kept across stops, s; negative while the job owes its policy's restart cost."""
    submitted_at: str
    started_at: str | None
    finished_at: str | None
    cluster: str | None
    gpu_ids: list[int]
    exit_code: int | None
    spec: dict[str, Any]
    waiting: NotRequired[Waiting | None]
    """Why a pending job waits (null when not pending or not judged yet; absent from older servers)."""


class JobPage(TypedDict):
    """A page of jobs, newest first; ``next_cursor`` is null on the last page."""

    items: list[Job]
    next_cursor: str | None


class Logs(TypedDict):
    """Log text from a byte offset; ``complete`` once the job is final and all text was returned."""

    text: str
    next_offset: int
    complete: bool


class Queue(TypedDict):
    """A queue with its quotas and what is in it now."""

    id: str
    team: str
    cohort: str | None
    quotas: list[dict[str, Any]]
    pending_jobs: int
    running_jobs: int
    running_gpus: int


class ClientError(Exception):
    """Base of the client's errors: ``str(error)`` is one line for the user, ``exit_code`` the CLI's exit code."""

    exit_code = 1


class ServerUnreachableError(ClientError):
    """No Stargate server answered at the URL."""

    exit_code = 3


class ApiError(ClientError):
    """The server answered with an error status; ``detail`` is its explanation."""

    label = "error"
    hint = ""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{status} {self.label}: {detail}{self.hint}")


class BadRequestError(ApiError):
    """400: the request is malformed."""

    label = "bad request"


class UnauthorizedError(ApiError):
    """401: no token, or an unknown or revoked one."""

    label = "unauthorised"
    hint = "; run `stargate login --url URL --token TOKEN`"


class ForbiddenError(ApiError):
    """403: the token's role or team does not allow this."""

    label = "forbidden"


class NotFoundError(ApiError):
    """404: no such thing, or not one this token may see."""

    label = "not found"


class ConflictError(ApiError):
    """409: the request conflicts with the current state."""

    label = "conflict"


class GoneError(ApiError):
    """410: the thing cannot be had any more (e.g. a job's log pruned after the job ended); retrying does not help."""

    label = "gone"


class InvalidError(ApiError):
    """422: the request is well-formed but invalid (e.g. an unknown queue)."""

    label = "invalid"


class ServerError(ApiError):
    """5xx, or an answer that is not the API's JSON."""

    label = "server error"


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
}


class StargateClient(MoneyApi, PlansApi, ServicesApi):
    """The REST API under ``/api/v1`` with a bearer token; use as a context manager or call :meth:`close` (the
    contract, procurement, budget and cost calls are in :class:`~stargate.client_money.MoneyApi`, the capacity plan
    calls in :class:`~stargate.client_plans.PlansApi`, the inference service calls in
    :class:`~stargate.client_services.ServicesApi`)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the network (e.g. ``httpx.MockTransport``) for tests of formatting alone."""
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, transport=transport)

    def __enter__(self) -> StargateClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def health(self) -> dict[str, str]:
        """``GET /healthz``: ``{"status": "ok"}`` when the server is up."""
        return cast(dict[str, str], self._call("GET", "/healthz"))

    def whoami(self) -> WhoAmI:
        """``GET /api/v1/whoami``: the token's id, name, team and role."""
        return cast(WhoAmI, self._call("GET", "/api/v1/whoami"))

    def submit_job(self, spec: Mapping[str, Any], idempotency_key: str | None = None) -> Job:
        """``POST /api/v1/jobs`` with a JobSpec as JSON; the new job. With ``idempotency_key``, sending it again
        (e.g. after a lost answer) gets the same job instead of a second one."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        return cast(Job, self._call("POST", "/api/v1/jobs", json=dict(spec), headers=headers))

    def list_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        team: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """``GET /api/v1/jobs``: one page of jobs, newest first, filtered by status, queue and team."""
        params = {"status": status, "queue": queue, "team": team, "limit": limit, "cursor": cursor}
        return cast(JobPage, self._call("GET", "/api/v1/jobs", params=_present(params)))

    def iter_jobs(
        self, *, status: str | None = None, queue: str | None = None, team: str | None = None, page_size: int = 200
    ) -> Iterator[Job]:
        """Every matching job, newest first, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = self.list_jobs(status=status, queue=queue, team=team, limit=page_size, cursor=cursor)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def get_job(self, job_id: str) -> Job:
        """``GET /api/v1/jobs/{id}``."""
        return cast(Job, self._call("GET", f"/api/v1/jobs/{_segment(job_id)}"))

    def cancel_job(self, job_id: str) -> Job:
        """``POST /api/v1/jobs/{id}/cancel``: the job after the cancel request."""
        return cast(Job, self._call("POST", f"/api/v1/jobs/{_segment(job_id)}/cancel"))

    def job_logs(self, job_id: str, offset: int = 0) -> Logs:
        """``GET /api/v1/jobs/{id}/logs``: log text from byte ``offset``."""
        return cast(Logs, self._call("GET", f"/api/v1/jobs/{_segment(job_id)}/logs", params={"offset": offset}))

    def events(self, *, job_id: str | None = None, after: str | None = None, limit: int | None = None) -> Any:
        """``GET /api/v1/events``: status changes, oldest first."""
        return self._call("GET", "/api/v1/events", params=_present({"job_id": job_id, "after": after, "limit": limit}))

    def queues(self) -> list[Queue]:
        """``GET /api/v1/queues``: every queue with its quotas and load."""
        return cast(list[Queue], self._call("GET", "/api/v1/queues"))

    def teams(self) -> list[dict[str, Any]]:
        """``GET /api/v1/teams``."""
        return cast(list[dict[str, Any]], self._call("GET", "/api/v1/teams"))

    def fleet(self) -> dict[str, Any]:
        """``GET /api/v1/fleet``: the fleet in force with its version."""
        return cast(dict[str, Any], self._call("GET", "/api/v1/fleet"))

    def scheduling(self) -> dict[str, Any]:
        """``GET /api/v1/fleet/scheduling``: the scheduling policy in force, its settings and the server's options."""
        return cast(dict[str, Any], self._call("GET", "/api/v1/fleet/scheduling"))

    def fleet_health(self) -> dict[str, Any]:
        """``GET /api/v1/fleet/health``: each cluster's declared, observed and effective status, why and since."""
        return cast(dict[str, Any], self._call("GET", "/api/v1/fleet/health"))

    def cluster_events(
        self, *, limit: int | None = None, cluster: str | None = None, before: int | None = None
    ) -> dict[str, Any]:
        """``GET /api/v1/fleet/events``: changes of the clusters' observed status, newest first."""
        params = _present({"limit": limit, "cluster": cluster, "before": before})
        return cast(dict[str, Any], self._call("GET", "/api/v1/fleet/events", params=params))

    def plan_fleet(self, fleet: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/fleet/plan``: the changes a proposed fleet would make (admin)."""
        return cast(dict[str, Any], self._call("POST", "/api/v1/fleet/plan", json={"fleet": dict(fleet)}))

    def apply_fleet(self, plan_id: str) -> dict[str, Any]:
        """``POST /api/v1/fleet/apply``: apply a plan; :class:`ConflictError` when it is stale (admin)."""
        return cast(dict[str, Any], self._call("POST", "/api/v1/fleet/apply", json={"plan_id": plan_id}))

    def create_token(
        self,
        name: str,
        role: str,
        team: str | None = None,
        expires_at: datetime | None = None,
        *,
        provider: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/v1/tokens``: a new token ``{"id", "token", "expires_at"}`` (the secret is shown this once;
        admin). ``provider``: the provider a ``provider`` token speaks for."""
        body = {"name": name, "role": role, "team": team}
        if provider is not None:
            body["provider"] = provider
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        return cast(dict[str, Any], self._call("POST", "/api/v1/tokens", json=body))

    def list_tokens(self) -> list[dict[str, Any]]:
        """``GET /api/v1/tokens``: every token with its state, never a secret (admin)."""
        return cast(list[dict[str, Any]], self._call("GET", "/api/v1/tokens"))

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        """``POST /api/v1/tokens/{id}/revoke``: the token after revocation (idempotent; admin)."""
        return cast(dict[str, Any], self._call("POST", f"/api/v1/tokens/{_segment(token_id)}/revoke"))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; the decoded JSON body, or the matching :class:`ClientError`."""
        return self._call_status(method, path, **kwargs)[1]

    def _call_status(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """Send one request; (its status, the decoded JSON body), or the matching :class:`ClientError`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(unreachable_message(self.url, exc)) from exc
        if response.is_success:
            try:
                return response.status_code, response.json()
            except ValueError as exc:
                raise ServerError(response.status_code, "the answer is not JSON") from exc
        raise error_for(response)


RETRY_FIRST_DELAY_S = 0.25
RETRY_MAX_DELAY_S = 4.0
T = TypeVar("T")


def is_transient(error: ClientError) -> bool:
    """Whether ``error`` may pass on its own: no answer (connection lost, refused, timed out) or a 5xx answer."""
    return isinstance(error, ServerUnreachableError) or (isinstance(error, ServerError) and error.status >= 500)


def with_retries(
    call: Callable[[], T],
    budget_s: float,
    on_retry: Callable[[ClientError, int, float], None] | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, tried again after a transient error (:func:`is_transient`) with exponential backoff (0.25 s
    doubling to 4 s, with jitter) for up to ``budget_s`` seconds; then the last error. ``on_retry(error, attempt,
    delay_s)`` is told before each wait. Only for calls that are safe to repeat (reads, idempotent submissions)."""
    deadline = clock() + budget_s
    delay = RETRY_FIRST_DELAY_S
    attempt = 0
    while True:
        try:
            return call()
        except ClientError as exc:
            remaining = deadline - clock()
            if not is_transient(exc) or remaining <= 0:
                raise
            attempt += 1
            wait = min(delay * random.uniform(0.75, 1.0), remaining)
            if on_retry is not None:
                on_retry(exc, attempt, wait)
            sleep(wait)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)


def error_for(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` for an error response, carrying the server's ``detail`` in words."""
    detail = detail_text(response)
    kind = _BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else ApiError)
    return kind(response.status_code, detail)


def detail_text(response: httpx.Response) -> str:
    """The server's ``detail`` as one line: a string as is; FastAPI's validation list as ``field: message; ...``."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return " ".join(response.text.split())[:300] or response.reason_phrase
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(_validation_item(item) for item in detail) or "invalid request"
    return json.dumps(detail) if detail is not None else response.reason_phrase


def _validation_item(item: object) -> str:
    """One FastAPI validation error as ``body.gpus: Input should be a valid integer``."""
    if not isinstance(item, dict):
        return str(item)
    loc = ".".join(str(part) for part in item.get("loc", []))
    return f"{loc}: {item.get('msg', 'invalid')}" if loc else str(item.get("msg", "invalid"))


def unreachable_message(url: str, exc: httpx.TransportError) -> str:
    """``cannot reach the Stargate server at URL: <why> (is `stargate up` running?)``."""
    text = str(exc)
    if isinstance(exc, httpx.TimeoutException):
        why = "no answer in time"
    elif "refused" in text.lower():
        why = "connection refused"
    elif "name or service not known" in text.lower() or "nodename nor servname" in text.lower():
        why = "unknown host name"
    else:
        why = text or type(exc).__name__
    return f"cannot reach the Stargate server at {url}: {why} (is `stargate up` running?)"


_DURATION = re.compile(r"^([0-9]{1,6})([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_expiry(text: str, now: datetime) -> datetime:
    """An expiry given as a duration from ``now`` (``90s``, ``30m``, ``12h``, ``7d``, ``2w``) or an ISO 8601 time
    with a zone (``2027-01-01T00:00:00Z``); ValueError saying what was expected otherwise (or if not after now)."""
    expected = "expected a duration such as 30m, 12h, 7d or 2w, or an ISO 8601 time with a zone (2027-01-01T00:00Z)"
    found = _DURATION.match(text.strip())
    if found:
        try:
            when = now + timedelta(seconds=int(found.group(1)) * _UNIT_S[found.group(2)])
        except OverflowError:
            raise ValueError(f"found {json.dumps(text[:60])}, too far in the future; {expected}") from None
    else:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"found {json.dumps(text[:60])}; {expected}") from None
        if when.tzinfo is None:
            raise ValueError(f"found {json.dumps(text[:60])} without a time zone; {expected}")
    if when <= now:
        raise ValueError(f"found {json.dumps(text[:60])}, which is not in the future; {expected}")
    return when.astimezone(UTC)


def _present(params: Mapping[str, object]) -> dict[str, object]:
    """Query parameters without the unset (None) ones."""
    return {k: v for k, v in params.items() if v is not None}


def _segment(job_id: str) -> str:
    """A job id as one URL path segment (escaped, so an id can never reach another route)."""
    return quote(job_id, safe="")
