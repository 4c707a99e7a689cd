"""The input half of the attack suite against the API: request size limits and Hypothesis-generated job specs.

Whatever the body, the server answers below 500; a refused submission stores nothing; an accepted one reads back
with the values it was given. Bodies over the limit get 413 before they are read.
"""

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from integration.server.stargate_harness import Harness
from stargate.domain import JobSpec
from stargate.server.app import BodyLimit
from stargate.server.limits import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_PLAN_BODY_BYTES,
    SettingsError,
    bytes_from_env,
)
from stargate.server.settings import Settings
from stargate.store.database import Database, DatabaseUrlError
from stargate.store.models import JobRow

JOBS = "/api/v1/jobs"
VALID = {"name": "fuzz", "queue": "alpha-q", "gpus": 1, "command": "true"}
LIMIT_DETAIL = (
    f"body: found more than {DEFAULT_MAX_BODY_BYTES:,} bytes, expected at most {DEFAULT_MAX_BODY_BYTES:,} bytes "
    "(STARGATE_MAX_BODY_BYTES)"
)


@pytest.fixture
def sqlite_harness(make_harness: Callable[[str], Harness], sqlite_url: str) -> Harness:
    """A harness on SQLite (the fuzz tests run many requests; one database is enough)."""
    return make_harness(sqlite_url)


def _jobs(harness: Harness) -> int:
    with harness.ctx.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(JobRow)) or 0)


def _post(harness: Harness, body: bytes, **headers: str) -> Any:
    return harness.client.post(
        JOBS, content=body, headers={**harness.headers(), "Content-Type": "application/json", **headers}
    )


# -- request size -----------------------------------------------------------------------------------------------
def test_a_body_over_the_limit_gets_413_and_stores_nothing(sqlite_harness: Harness) -> None:
    """A declared Content-Length over 1 MiB is refused before the body is read; nothing is stored."""
    before = _jobs(sqlite_harness)
    spec = {**VALID, "command": "x" * DEFAULT_MAX_BODY_BYTES}
    response = _post(sqlite_harness, json.dumps(spec).encode())
    assert response.status_code == 413
    size = len(json.dumps(spec).encode())
    assert response.json() == {
        "detail": f"body: found {size:,} bytes, expected at most {DEFAULT_MAX_BODY_BYTES:,} bytes "
        "(STARGATE_MAX_BODY_BYTES)"
    }
    assert _jobs(sqlite_harness) == before


def test_a_body_at_the_limit_is_read(sqlite_harness: Harness) -> None:
    """Exactly the limit is allowed (the spec's own 64 KiB command bound then answers 422, located)."""
    spec = {**VALID, "command": ""}
    padding = DEFAULT_MAX_BODY_BYTES - len(json.dumps(spec).encode())
    spec["command"] = "x" * padding
    body = json.dumps(spec).encode()
    assert len(body) == DEFAULT_MAX_BODY_BYTES
    response = _post(sqlite_harness, body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body.command: found 1,048,")


def test_a_bad_content_length_is_400() -> None:
    """A Content-Length that is not a number is refused before the app sees the request."""
    sent = _call(BodyLimit(_echo_app, 100, 1_000), [b"{}"], {b"content-length": b"12x"})
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {"detail": "content-length: found '12x', expected a whole number of bytes"}


def test_a_chunked_body_is_counted_as_it_streams() -> None:
    """Without a Content-Length the middleware counts chunks and answers 413 at the first past the limit."""
    reads: list[int] = []
    sent = _call(BodyLimit(_echo_app, 100, 1_000), [b"x" * 60, b"x" * 60, b"x" * 60], {}, reads)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["detail"] == (
        "body: found more than 100 bytes, expected at most 100 bytes (STARGATE_MAX_BODY_BYTES)"
    )
    assert reads == [60, 120]  # the third chunk is never asked for


def test_the_plan_route_has_its_own_limit_for_a_request_with_a_token() -> None:
    """POST /api/v1/fleet/plan may carry a larger body, but only with an Authorization header."""
    limit = BodyLimit(_echo_app, 100, 1_000)
    plan = {"type": "http", "path": "/api/v1/fleet/plan", "headers": [(b"authorization", b"Bearer x")]}
    assert limit.limit_for(plan) == (1_000, "STARGATE_MAX_PLAN_BODY_BYTES")
    assert limit.limit_for({**plan, "headers": []}) == (100, "STARGATE_MAX_BODY_BYTES")
    assert limit.limit_for({**plan, "path": "/api/v1/jobs"}) == (100, "STARGATE_MAX_BODY_BYTES")
    sent = _call(limit, [b"x" * 500], {b"authorization": b"Bearer x", b"content-length": b"500"}, path=plan["path"])
    assert sent[0]["status"] == 200


def test_the_limits_come_from_the_environment() -> None:
    """STARGATE_MAX_BODY_BYTES and STARGATE_MAX_PLAN_BODY_BYTES set the limits; a bad value is one located line."""
    settings_ = Settings.from_env({"STARGATE_MAX_BODY_BYTES": "2048", "STARGATE_MAX_PLAN_BODY_BYTES": "4_096"})
    assert (settings_.max_body_bytes, settings_.max_plan_body_bytes) == (2_048, 4_096)
    defaults = Settings.from_env({})
    assert (defaults.max_body_bytes, defaults.max_plan_body_bytes) == (
        DEFAULT_MAX_BODY_BYTES,
        DEFAULT_MAX_PLAN_BODY_BYTES,
    )
    with pytest.raises(SettingsError, match=r"^STARGATE_MAX_BODY_BYTES: found 'lots'; expected a whole number"):
        bytes_from_env({"STARGATE_MAX_BODY_BYTES": "lots"}, "STARGATE_MAX_BODY_BYTES", 1)
    with pytest.raises(SettingsError, match=r"found 10; expected a whole number of bytes from 1,024 to"):
        bytes_from_env({"X": "10"}, "X", 1)


async def _echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny ASGI app that reads the whole body, then answers 200."""
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(
    app: BodyLimit,
    chunks: list[bytes],
    headers: dict[bytes, bytes],
    reads: list[int] | None = None,
    path: str = "/api/v1/jobs",
) -> list[dict[str, Any]]:
    """Run ``app`` on one request whose body arrives in ``chunks``; the messages it sent."""
    import asyncio

    sent: list[dict[str, Any]] = []
    pending: Iterator[bytes] = iter(chunks)
    total = 0

    async def receive() -> dict[str, Any]:
        nonlocal total
        chunk = next(pending, b"")
        total += len(chunk)
        if reads is not None:
            reads.append(total)
        return {"type": "http.request", "body": chunk, "more_body": total < sum(map(len, chunks))}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "POST", "headers": list(headers.items())}
    asyncio.run(app(scope, receive, send))
    return sent


# -- generated job specs ----------------------------------------------------------------------------------------
NASTY_TEXT = ["\x00", "a\x00b", "\u202eevil", "x\u2066y", "\u200b", "\x07bell", "tab\there", "line\nbreak", "é", "👩‍💻"]
numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30, 0, -1, 1_000_001])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e999", "8", "0x10"])
)
texts = st.text(max_size=30) | st.sampled_from(NASTY_TEXT) | st.builds(lambda n: "y" * n, st.integers(0, 70_000))
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8
)
environments = st.dictionaries(
    st.sampled_from(["PATH", "A=B", "", "1X", "_ok", "X\x00", "\u202eX", "A" * 300]) | st.text(max_size=8),
    st.sampled_from(["", "v", "\x00", "a\x00b", "\u202e", "z" * 40_000]) | st.text(max_size=8),
    max_size=4,
)
FIELDS = [
    "name", "queue", "kind", "gpus", "gpu_models", "priority_class", "deadline", "estimated_duration_s",
    "checkpoint_interval_s", "preemptible", "allowed_providers", "allowed_regions", "command", "image", "environment",
]  # fmt: skip


PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "name": st.text(min_size=1, max_size=40).filter(lambda t: t.strip() != ""),
    "gpus": st.integers(1, 8),
    "command": st.text(min_size=1, max_size=60).filter(lambda t: t.strip() != ""),
    "environment": st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), st.text(max_size=20)),
    "estimated_duration_s": st.floats(0.001, 1e9),
    "preemptible": st.booleans(),
    "deadline": st.sampled_from(["2030-01-01T00:00:00Z", "2100-06-01T12:00:00+02:00"]),
    "allowed_regions": st.lists(st.text(min_size=1, max_size=10).filter(lambda t: t.strip() != ""), max_size=2),
}


@st.composite
def job_bodies(draw: st.DrawFn) -> dict[str, Any] | Any:
    """A valid spec with one to three fields replaced by generated values, or (rarely) any JSON value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    body: dict[str, Any] = dict(VALID)
    for key in draw(st.lists(st.sampled_from([*FIELDS, "surprise"]), min_size=1, max_size=3)):
        if key in PLAUSIBLE and draw(st.booleans()):
            body[key] = draw(PLAUSIBLE[key])
        elif key == "environment":
            body[key] = draw(environments)
        elif key == "deadline":
            body[key] = draw(st.sampled_from(["2030-01-01T00:00:00Z", "9999-12-31", "1900-01-01", "soon"]) | numbers)
        else:
            body[key] = draw(json_values)
    return body


@given(body=job_bodies())
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_generated_job_specs_never_fail_the_server(sqlite_harness: Harness, body: Any) -> None:
    """No 5xx; a refusal stores nothing and says where; an acceptance reads back with the same values."""
    before = _jobs(sqlite_harness)
    response = _post(sqlite_harness, json.dumps(body, allow_nan=True).encode())
    assert response.status_code < 500, response.text
    event(f"status {response.status_code}")
    if response.status_code != 201:
        assert response.status_code in (413, 422), response.text
        assert _jobs(sqlite_harness) == before
        detail = response.json()["detail"]
        assert isinstance(detail, str) and len(detail) < 5_000
        assert "\x00" not in detail and "\u202e" not in detail
        return
    assert _jobs(sqlite_harness) == before + 1
    spec = JobSpec.model_validate(body)  # what the server accepted, it must accept here too
    job = sqlite_harness.client.get(f"{JOBS}/{response.json()['id']}", headers=sqlite_harness.headers()).json()
    assert (job["name"], job["queue"], job["gpus"]) == (spec.name, spec.queue, spec.gpus)
    assert job["spec"]["command"] == spec.command and job["spec"]["environment"] == spec.environment
    for key in ("estimated_duration_s", "checkpoint_interval_s"):
        value = job["spec"].get(key)
        assert value is None or math.isfinite(value)


def test_an_accepted_spec_reads_back_unchanged(sqlite_harness: Harness) -> None:
    """Joiners, accents, emoji, tabs and newlines in a command, and any environment value but NUL are accepted."""
    body = {
        **VALID,
        "name": "résumé 👩‍💻 run",
        "command": "printf 'a\\tb\\n'\necho done",
        "environment": {"_X1": "\u202e is data here", "PATH": "/bin"},
        "estimated_duration_s": 3600,
        "deadline": "2100-06-01T12:00:00+02:00",
    }
    response = _post(sqlite_harness, json.dumps(body).encode())
    assert response.status_code == 201, response.text
    job = sqlite_harness.client.get(f"{JOBS}/{response.json()['id']}", headers=sqlite_harness.headers()).json()
    assert job["name"] == "résumé 👩‍💻 run"
    assert job["spec"]["command"] == body["command"]
    assert job["spec"]["environment"] == body["environment"]
    assert job["spec"]["deadline"].startswith("2100-06-01T10:00:00")


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"gpus": 2**64}, "body.gpus: found 18446744073709551616, expected less than or equal to 1000000"),
        ({"gpus": True}, "body.gpus: found true, expected a valid integer"),
        ({"gpus": "8"}, "body.gpus: found '8', expected a valid integer"),
        ({"preemptible": 1}, "body.preemptible: found 1, expected a valid boolean"),
        ({"estimated_duration_s": "nan"}, "body.estimated_duration_s: found 'nan', expected a valid number"),
        ({"name": "a\u202eb"}, "body.name: found the character U+202E (right-to-left override) at character 2"),
        ({"command": "echo\x00hi"}, "body.command: found a NUL character (U+0000) at character 5"),
        ({"environment": {"A=B": "x"}}, "body.environment.A=B.[key]: found 'A=B', expected"),
        ({"environment": {"": "x"}}, "body.environment.''.[key]: found '', expected"),
        ({"environment": {"K": "a\x00"}}, "body.environment.K: found a NUL character (U+0000) at character 2"),
        ({"deadline": 1e20}, "body.deadline: found the number 1e+20, expected an ISO 8601 date"),
        ({"deadline": "2201-01-01T00:00:00Z"}, "expected a date from 1970-01-01 to 2200-12-31"),
    ],
)
def test_attack_values_are_refused_with_a_located_line(
    sqlite_harness: Harness, patch: dict[str, Any], where: str
) -> None:
    """The findings' values, one by one: 422 with the field's path, nothing stored."""
    before = _jobs(sqlite_harness)
    response = _post(sqlite_harness, json.dumps({**VALID, **patch}).encode())
    assert response.status_code == 422, response.text
    assert where in response.json()["detail"]
    assert _jobs(sqlite_harness) == before


def test_nan_in_json_is_refused_not_stored(sqlite_harness: Harness) -> None:
    """Python's JSON reader accepts NaN and Infinity; the spec does not."""
    before = _jobs(sqlite_harness)
    response = _post(
        sqlite_harness, b'{"name":"n","queue":"alpha-q","gpus":1,"command":"true","estimated_duration_s":NaN}'
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "body.estimated_duration_s: found nan, expected a finite number"
    assert _jobs(sqlite_harness) == before


def test_a_spec_accepted_by_the_api_validates_locally(sqlite_harness: Harness) -> None:
    """The bounds are the spec's own: the same body validates (or not) in the client as on the server."""
    body = {**VALID, "environment": {f"K{i}": "v" for i in range(257)}}
    with pytest.raises(ValidationError):
        JobSpec.model_validate(body)
    response = _post(sqlite_harness, json.dumps(body).encode())
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body.environment: found a mapping of 257 entries, expected")


# -- database URLs and ids --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("mysql://x", "found the backend 'mysql', expected sqlite or postgresql"),
        ("garbage", "found text that is not a URL, expected a database URL"),
        ("", "found an empty URL, expected a database URL"),
        ("postgresql+asyncpg://u@h/db", "found the driver 'asyncpg', which is not installed"),
        ("postgresql+nodriver://u@h/db", "found the driver 'nodriver' or an option SQLAlchemy does not know"),
    ],
)
def test_an_unusable_database_url_is_one_line_without_the_url(url: str, found: str) -> None:
    """Database.open refuses before connecting, with an error the CLI reports as one line (exit 2)."""
    with pytest.raises(DatabaseUrlError) as caught:
        Database.open(url)
    assert str(caught.value).startswith(found)
    assert isinstance(caught.value, SQLAlchemyError)  # what `stargate up` and `admin token` turn into exit 2
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/v1/jobs/%00", 404), ("/api/v1/jobs/" + "9" * 1_900, 404), ("/api/v1/jobs/j-" + "9" * 40, 404),
     ("/api/v1/jobs/%E2%80%AE", 404), ("/api/v1/jobs/j-000001%2F..%2F..", 404), ("/api/v1/jobs/%20/cancel", 404),
     ("/api/v1/jobs/" + "x" * 20_000 + "/logs", 414), ("/api/v1/jobs/" + "9" * 5_000, 414)],
)  # fmt: skip
def test_odd_job_ids_in_paths_get_404_or_414(sqlite_harness: Harness, path: str, status: int) -> None:
    """Empty, control-character and traversal ids are 'no such job'; a path over 2,048 bytes is 414; never 5xx."""
    method = "POST" if path.endswith("/cancel") else "GET"
    response = sqlite_harness.client.request(method, path, headers=sqlite_harness.headers())
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert len(detail) < 2_100
    if status == 414:
        assert detail == f"path: found {len(path):,} bytes, expected at most 2,048 bytes"


@pytest.mark.parametrize("command", ["job", "logs", "cancel"])
@pytest.mark.parametrize("job_id", ["", "x" * 5_000, "j-", "\u202ej-1", "j-1/../x"])
def test_the_cli_refuses_a_bad_job_id_before_calling(command: str, job_id: str) -> None:
    """`stargate job ''` and friends: one line, exit 2, no request (the URL points nowhere)."""
    from typer.testing import CliRunner

    from stargate.cli import app

    result = CliRunner().invoke(app, [command, job_id], env={"STARGATE_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: JOB_ID: found ")
    assert lines[0].endswith("; expected a job id such as j-000123") and len(lines[0]) < 200


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[" * 100_000, b"null", b'"x"'])
def test_a_body_that_is_not_a_spec_is_refused_located(sqlite_harness: Harness, body: bytes) -> None:
    """Broken JSON, bytes that are not UTF-8, 100,000 levels of nesting, JSON that is not an object: 4xx, one line."""
    before = _jobs(sqlite_harness)
    response = _post(sqlite_harness, body)
    assert response.status_code in (400, 422), response.text
    detail = response.json()["detail"]
    assert detail.startswith("body: found ") or detail == "There was an error parsing the body", detail
    if body == b"{":
        assert detail.startswith("body: found text that is not JSON at character 1 (")
        assert detail.endswith(", expected a JSON object")
    assert len(detail) < 500
    assert _jobs(sqlite_harness) == before


def test_a_large_fleet_plan_is_read_with_a_token_and_refused_without(sqlite_harness: Harness) -> None:
    """A 2 MiB plan body: read (and judged) for an admin; 413 for a request without a token."""
    fleet = {"name": "big", "description": "d" * 2_000_000}
    body = json.dumps({"fleet": fleet}).encode()
    headers = {"Content-Type": "application/json"}
    anonymous = sqlite_harness.client.post("/api/v1/fleet/plan", content=body, headers=headers)
    assert anonymous.status_code == 413
    assert anonymous.json()["detail"].endswith("expected at most 1,048,576 bytes (STARGATE_MAX_BODY_BYTES)")
    admin = sqlite_harness.client.post(
        "/api/v1/fleet/plan", content=body, headers={**headers, **sqlite_harness.headers()}
    )
    assert admin.status_code == 422, admin.text[:300]
    assert "description" in admin.json()["detail"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"nodes": 2**64}, "clusters.0.nodes"),
        ({"nodes": True}, "clusters.0.nodes"),
        ({"price_per_gpu_hour_usd": "NaN"}, "clusters.0.price_per_gpu_hour_usd"),
        ({"online_from": "9999-12-31"}, "clusters.0.online_from"),
        ({"id": "lab-h100", "interconnect": "ib\u202e"}, "clusters.0.interconnect"),
    ],
)
def test_a_fleet_plan_with_an_out_of_range_value_is_refused(
    sqlite_harness: Harness, change: dict[str, Any], where: str
) -> None:
    """The finding: a nodes value beyond 64 bits passed plan/apply and then failed every cycle; now 422 at plan."""
    import yaml

    from integration.server.stargate_harness import TINY_FLEET

    document = yaml.safe_load(TINY_FLEET.read_text())
    document["clusters"][0].update(change)
    response = sqlite_harness.client.post(
        "/api/v1/fleet/plan", json={"fleet": document}, headers=sqlite_harness.headers()
    )
    assert response.status_code == 422, response.text
    assert where in response.json()["detail"].replace("[", ".").replace("]", "")
