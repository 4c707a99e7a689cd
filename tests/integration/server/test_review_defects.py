"""The second outside review's attacks on the API, against a real database (SQLite and PostgreSQL): a database that
goes away mid-use, an unhandled error, token names with terminal escapes, a far log offset, the last-admin guard
with an expiring admin, a repeated ``Idempotency-Key`` and the echo of long or bidirectional ids in a 404."""

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, make_url, text

from integration.server.stargate_harness import POSTGRES_ENV, Harness, postgres_schema_url
from integration.server.tcp_forwarder import TcpForwarder
from stargate.server.scheduling.loop import run_cycle
from stargate.server.services import jobs as job_service

JOBS = "/api/v1/jobs"
TOKENS = "/api/v1/tokens"


# -- 1. the database goes away --------------------------------------------------------------------------------------
@pytest.fixture
def forwarded_postgres() -> Iterator[tuple[str, TcpForwarder]]:
    """A fresh schema in the test PostgreSQL, reached through a TCP forwarder the test can cut."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.fail(f"{POSTGRES_ENV} is not set: this test needs a PostgreSQL it can make unreachable")
    url = make_url(base)
    forwarder = TcpForwarder(url.host or "127.0.0.1", url.port or 5432)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        through = url.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False)
        yield postgres_schema_url(through, schema), forwarder
    finally:
        forwarder.cut()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_an_unreachable_database_is_json_503_with_retry_after_and_one_log_line(
    forwarded_postgres: tuple[str, TcpForwarder],
    make_harness: Callable[[str], Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, forwarder = forwarded_postgres
    h = make_harness(url)
    job = h.submit()
    forwarder.cut()  # PostgreSQL is now unreachable: open connections break, new ones are refused
    caplog.set_level(logging.INFO, logger="stargate")
    for _ in range(10):
        for method, path, body in (("GET", f"{JOBS}/{job['id']}", None), ("POST", JOBS, _job_body())):
            answer = h.client.request(method, path, json=body, headers=h.headers())
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["retry-after"] == "5"
            detail = answer.json()["detail"]
            assert detail.startswith("database unavailable: OperationalError: ") and "\n" not in detail, detail
            assert len(detail) <= 250 and "[SQL:" not in detail
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert records and all(r.getMessage().startswith("database unavailable: ") for r in records), records
    assert len({r.getMessage() for r in records}) == len(records) <= 3  # once per kind, not once per request
    assert not any(r.exc_info for r in records)  # no traceback
    forwarder.restore()
    assert h.client.get(f"{JOBS}/{job['id']}", headers=h.headers()).status_code == 200  # back by itself


def test_an_unhandled_error_is_json_500_with_an_id_logged_once_with_its_traceback(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(job_service, "list_page", broken)
    caplog.set_level(logging.ERROR)
    answer = harness.client.get(JOBS, headers=harness.headers())
    assert answer.status_code == 500 and answer.headers["content-type"] == "application/json"
    found = re.fullmatch(r"internal error \(logged as ([0-9a-f]{12})\)", answer.json()["detail"])
    assert found, answer.text
    logged = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None and "a bug" in str(logged[0].exc_info[1])


# -- 2. token names -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("ops\x1b[1A\x1b[2K", "U+001B"),
        ("admin\u202eevil", "U+202E"),
        ("two\nlines", "U+000A"),
        ("x" * 201, "at most 200 characters"),
        ("", "at least 1 character"),
    ],
)
def test_a_token_name_with_control_or_bidi_characters_is_422(harness: Harness, name: str, found: str) -> None:
    answer = harness.client.post(TOKENS, json={"name": name, "role": "admin"}, headers=harness.headers())
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("body.name: found ") and found in detail and "\x1b" not in detail, detail
    listed = harness.client.get(TOKENS, headers=harness.headers()).json()
    assert [t["name"] for t in listed] == ["admin"]  # nothing stored


# -- 5. a far log offset --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("offset", [2**44, 2**53])
def test_a_log_offset_far_past_the_end_is_an_empty_page_at_that_offset(harness: Harness, offset: int) -> None:
    job = harness.submit(command="echo hello")
    path = f"{JOBS}/{job['id']}/logs"
    deadline = time.monotonic() + 20
    while harness.client.get(path, headers=harness.headers()).json()["text"] != "hello\n":
        assert time.monotonic() < deadline, "the job did not write its log"
        run_cycle(harness.ctx, datetime.now(UTC))
        time.sleep(0.05)
    answer = harness.client.get(path, params={"offset": offset}, headers=harness.headers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "" and answer.json()["next_offset"] == offset


# -- 6. the last-admin guard ----------------------------------------------------------------------------------------
def test_the_last_admin_without_expiry_cannot_be_revoked_while_only_expiring_admins_remain(harness: Harness) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=15)).isoformat()
    made = harness.client.post(
        TOKENS, json={"name": "temp", "role": "admin", "expires_at": soon}, headers=harness.headers()
    )
    assert made.status_code == 201, made.text
    first = harness.client.get("/api/v1/whoami", headers=harness.headers()).json()["token_id"]
    refused = harness.client.post(f"{TOKENS}/{first}/revoke", headers=harness.headers())
    assert refused.status_code == 409, refused.text
    assert "last live admin token without expiry" in refused.json()["detail"]
    expiring = {"Authorization": f"Bearer {made.json()['token']}"}
    assert harness.client.post(f"{TOKENS}/{first}/revoke", headers=expiring).status_code == 409  # nor by the other
    # another admin without expiry: now the first may go, and the expiring one too
    other = harness.client.post(TOKENS, json={"name": "ops", "role": "admin"}, headers=harness.headers()).json()
    assert harness.client.post(f"{TOKENS}/{first}/revoke", headers=expiring).status_code == 200
    keep = {"Authorization": f"Bearer {other['token']}"}
    assert harness.client.post(f"{TOKENS}/{made.json()['id']}/revoke", headers=keep).status_code == 200
    last = harness.client.post(f"{TOKENS}/{other['id']}/revoke", headers=keep)
    assert last.status_code == 409, last.text


def test_an_expiring_admin_can_be_revoked_only_while_one_lasting_as_long_remains(harness: Harness) -> None:
    now = datetime.now(UTC)
    made = {}
    for name, hours in (("short", 1), ("long", 2)):
        until = (now + timedelta(hours=hours)).isoformat()
        body = {"name": name, "role": "admin", "expires_at": until}
        made[name] = harness.client.post(TOKENS, json=body, headers=harness.headers()).json()
    first = harness.client.get("/api/v1/whoami", headers=harness.headers()).json()["token_id"]
    as_long = {"Authorization": f"Bearer {made['long']['token']}"}
    assert harness.client.post(f"{TOKENS}/{first}/revoke", headers=as_long).status_code == 409
    assert harness.client.post(f"{TOKENS}/{made['short']['id']}/revoke", headers=as_long).status_code == 200
    last = harness.client.post(f"{TOKENS}/{made['long']['id']}/revoke", headers=harness.headers())
    assert last.status_code == 200  # the admin without expiry outlives it


# -- 7. minor ones --------------------------------------------------------------------------------------------------
def test_two_idempotency_key_headers_are_422(harness: Harness) -> None:
    headers = [*harness.headers().items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    answer = harness.client.post(JOBS, json=_job_body(), headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == "header.Idempotency-Key: found 2 values, expected one"
    assert harness.client.get(JOBS, headers=harness.headers()).json()["items"] == []


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (f"{JOBS}/j-{'9' * 2000}", "'j-" + "9" * 57 + "…'"),
        (f"{JOBS}/j-1%E2%80%AEgpj", "'j-1\\u202egpj'"),
        (f"{TOKENS}/t-x%1B%5B2K/revoke", "'t-x\\x1b[2K'"),
    ],
)
def test_a_404_shows_the_id_shortened_and_escaped(harness: Harness, path: str, shown: str) -> None:
    method = "POST" if path.endswith("/revoke") else "GET"
    answer = harness.client.request(method, path, headers=harness.headers())
    assert answer.status_code == 404, answer.text
    detail = answer.json()["detail"]
    assert detail.endswith(shown) and len(detail) < 80, detail


def _job_body() -> dict[str, object]:
    return {"name": "job", "queue": "alpha-q", "gpus": 1, "command": "true"}


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('{"name": "a", "queue": "alpha-q", "gpus": 1, "command": "true", "gpus": 8}', "'gpus'"),
        ('{"name": "a", "queue": "alpha-q", "gpus": 1, "command": "true", "environment": {"A": "1", "A": "2"}}', "'A'"),
    ],
)
def test_a_json_body_with_a_key_twice_is_422_and_stores_nothing(harness: Harness, body: str, key: str) -> None:
    headers = {**harness.headers(), "Content-Type": "application/json"}
    answer = harness.client.post(JOBS, content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == f"body: found the key {key} twice, expected each key once"
    assert harness.client.get(JOBS, headers=harness.headers()).json()["items"] == []
    tokens = harness.client.post(TOKENS, content='{"name": "a", "role": "admin", "name": "b"}', headers=headers)
    assert tokens.status_code == 422 and "'name' twice" in tokens.json()["detail"]
