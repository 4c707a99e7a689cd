"""Token management: list (never a secret), create with an expiry, revoke (idempotent, never the last live admin
token), a revoked or expired token refused within 5 s by every server on the database, and the same through
``stargate admin token create|list|revoke`` on the database directly."""

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from integration.server.stargate_harness import Harness, build_harness
from stargate.cli import app as cli_app
from stargate.server.app import create_app
from stargate.server.auth import TOKEN_CACHE_TTL_S, Role
from stargate.server.bootstrap import open_database
from stargate.server.context import ServerContext
from stargate.server.errors import ConflictError
from stargate.server.services import tokens as token_service
from stargate.server.settings import Settings

INFO_FIELDS = {
    "id",
    "name",
    "team",
    "role",
    "provider",
    "state",
    "created_at",
    "created_by",
    "expires_at",
    "revoked_at",
    "revoked_by",
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _create(h: Harness, **body: object) -> dict[str, str]:
    answer = h.client.post(
        "/api/v1/tokens", json={"name": "t", "role": "viewer", "team": "alpha", **body}, headers=h.headers()
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, str] = answer.json()
    return created


def _id_of(token: str) -> str:
    return token.split("_")[1]


def test_admins_list_every_token_with_its_state_and_never_a_secret(harness: Harness) -> None:
    member = harness.token("member", "alpha")
    soon = _create(harness, name="ci", expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    answer = harness.client.get("/api/v1/tokens", headers=harness.headers())
    assert answer.status_code == 200, answer.text
    items = {item["id"]: item for item in answer.json()}
    assert all(set(item) == INFO_FIELDS for item in items.values())
    admin = items[_id_of(harness.admin_token)]
    assert (admin["role"], admin["team"], admin["state"], admin["created_by"]) == ("admin", None, "live", "stargate up")
    assert items[soon["id"]]["expires_at"] is not None and items[soon["id"]]["name"] == "ci"
    assert items[soon["id"]]["created_by"] == f"token {_id_of(harness.admin_token)} (admin)"
    for secret in (harness.admin_token, member, soon["token"]):
        assert secret.split("_", 2)[2] not in answer.text
    refused = harness.client.get("/api/v1/tokens", headers=harness.headers("member", "alpha"))
    assert refused.status_code == 403


def test_an_expiry_must_be_a_future_time_with_a_zone(harness: Harness) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for value, start, middle in (
        (past, "expires_at: found", "expected a time after"),
        ("2030-01-01T00:00:00", "body.expires_at: ", "timezone"),
        ("next week", "body.expires_at: ", "datetime"),
        ("9999-12-31T23:59:59-05:00", "expires_at: found 9999-12-31T23:59:59-05:00", "at most 100 years ahead"),
    ):
        body = {"name": "x", "role": "admin", "expires_at": value}
        answer = harness.client.post("/api/v1/tokens", json=body, headers=harness.headers())
        detail = answer.json()["detail"]
        assert answer.status_code == 422 and detail.startswith(start) and middle in detail, (value, detail)
    listed = harness.client.get("/api/v1/tokens", headers=harness.headers()).json()
    assert [item["name"] for item in listed] == ["admin"]  # nothing stored from a refused request


def test_an_expired_token_is_refused_as_soon_as_it_expires(harness: Harness) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    short = _create(harness, expires_at=expires.isoformat())
    assert harness.client.get("/api/v1/whoami", headers=_bearer(short["token"])).status_code == 200  # now cached
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    answer = harness.client.get("/api/v1/whoami", headers=_bearer(short["token"]))
    assert answer.status_code == 401 and answer.json() == {"detail": "unknown, revoked or expired token"}
    listed = {item["id"]: item for item in harness.client.get("/api/v1/tokens", headers=harness.headers()).json()}
    assert listed[short["id"]]["state"] == "expired"


def test_revoke_refuses_the_token_at_once_here_and_is_idempotent(harness: Harness) -> None:
    member = harness.token("member", "alpha")
    assert harness.client.get("/api/v1/whoami", headers=_bearer(member)).status_code == 200  # cached now
    first = harness.client.post(f"/api/v1/tokens/{_id_of(member)}/revoke", headers=harness.headers())
    assert first.status_code == 200, first.text
    info = first.json()
    assert (info["state"], info["revoked_by"]) == ("revoked", f"token {_id_of(harness.admin_token)} (admin)")
    assert harness.client.get("/api/v1/whoami", headers=_bearer(member)).status_code == 401
    again = harness.client.post(f"/api/v1/tokens/{_id_of(member)}/revoke", headers=harness.headers())
    assert again.status_code == 200 and again.json() == info  # the first revocation's time and author stay
    unknown = harness.client.post("/api/v1/tokens/t-0000000000000000/revoke", headers=harness.headers())
    assert unknown.status_code == 404 and unknown.json() == {"detail": "no token 't-0000000000000000'"}
    viewer = harness.token("viewer", "alpha")
    refused = harness.client.post(f"/api/v1/tokens/{_id_of(viewer)}/revoke", headers=harness.headers("member", "beta"))
    assert refused.status_code == 403


def test_the_last_live_admin_token_is_never_revoked(harness: Harness) -> None:
    first_id = _id_of(harness.admin_token)
    alone = harness.client.post(f"/api/v1/tokens/{first_id}/revoke", headers=harness.headers())
    assert alone.status_code == 409
    assert alone.json()["detail"].startswith(f"token {first_id} ('admin') is the last live admin token")
    expired_soon = _create(harness, role="admin", team=None, expires_at=_in(1.0))
    second = _create(harness, role="admin", team=None, name="ops")
    time.sleep(1.1)  # the first extra admin token has expired: it does not count as a way back in
    assert harness.client.post(f"/api/v1/tokens/{first_id}/revoke", headers=_bearer(second["token"])).status_code == 200
    last = harness.client.post(f"/api/v1/tokens/{second['id']}/revoke", headers=_bearer(second["token"]))
    assert last.status_code == 409 and "create another admin token first" in last.json()["detail"]
    expired = harness.client.post(f"/api/v1/tokens/{expired_soon['id']}/revoke", headers=_bearer(second["token"]))
    assert expired.status_code == 200 and expired.json()["state"] == "revoked"


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _second_app(h: Harness, home: Path) -> tuple[ServerContext, TestClient]:
    """Another server process's state over the same database (its own token cache)."""
    settings = Settings(home=home, database_url=h.ctx.settings.database_url, scheduler_enabled=False)
    ctx = ServerContext(settings=settings, db=open_database(settings))
    return ctx, TestClient(create_app(ctx))


def test_a_revoke_on_another_server_takes_effect_here_within_5_s(harness: Harness, tmp_path: Path) -> None:
    ctx_b, client_b = _second_app(harness, tmp_path / "replica")
    try:
        member = harness.token("member", "alpha")
        assert harness.client.get("/api/v1/whoami", headers=_bearer(member)).status_code == 200  # cached on A
        revoked = client_b.post(f"/api/v1/tokens/{_id_of(member)}/revoke", headers=harness.headers())
        assert revoked.status_code == 200, revoked.text
        started = time.monotonic()
        assert client_b.get("/api/v1/whoami", headers=_bearer(member)).status_code == 401  # at once on B
        while harness.client.get("/api/v1/whoami", headers=_bearer(member)).status_code == 200:
            assert time.monotonic() - started < TOKEN_CACHE_TTL_S + 0.5, "server A still accepts the revoked token"
            time.sleep(0.1)
        assert harness.client.get("/api/v1/whoami", headers=harness.headers()).status_code == 200
    finally:
        client_b.close()
        ctx_b.db.close()


def test_two_revocations_at_once_never_remove_both_last_admin_tokens(harness: Harness) -> None:
    with harness.ctx.db.write() as session:
        other, _ = token_service.create(session, "ops", None, Role.ADMIN, datetime.now(UTC))
        other_id = other.id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def revoke(token_id: str) -> None:
        barrier.wait()
        try:
            with harness.ctx.db.write() as session:
                token_service.revoke(session, token_id, datetime.now(UTC), "test")
            outcomes.append("revoked")
        except ConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=revoke, args=(i,)) for i in (_id_of(harness.admin_token), other_id)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["refused", "revoked"]
    with harness.ctx.db.read() as session:  # not through the API: the token it would use may be the revoked one
        listed = [token_service.to_api(row, datetime.now(UTC)) for row in token_service.list_all(session)]
    live = [item for item in listed if item.state == "live"]
    assert len(live) == 1 and live[0].role == Role.ADMIN


def _stargate(*args: str, home: Path) -> Result:
    clean = {k: None for k in os.environ if k.startswith("STARGATE_")}
    return CliRunner().invoke(cli_app, list(args), env={**clean, "STARGATE_HOME": str(home)})


def test_admin_token_commands_create_list_and_revoke_on_the_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    h = build_harness(f"sqlite:///{home / 'stargate.db'}", home)
    try:
        made = _stargate("admin", "token", "create", "--role", "viewer", "--team", "beta", "--expires", "2h", home=home)
        assert made.exit_code == 0, made.output
        assert ", expires 20" in made.stdout and "sgt_t-" in made.stdout
        secret = made.stdout.splitlines()[0].rsplit(" ", 1)[-1]
        assert h.client.get("/api/v1/whoami", headers=_bearer(secret)).status_code == 200

        listed = _stargate("admin", "token", "list", "--json", home=home)
        assert listed.exit_code == 0, listed.output
        items = {item["id"]: item for item in json.loads(listed.stdout)}
        mine = items[_id_of(secret)]
        assert (mine["role"], mine["team"], mine["state"]) == ("viewer", "beta", "live")
        assert mine["created_by"].startswith("stargate admin (")
        expires = datetime.fromisoformat(mine["expires_at"])
        assert timedelta(hours=1, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=2)
        table = _stargate("admin", "token", "list", home=home)
        assert table.exit_code == 0 and _id_of(secret) in table.stdout and secret.split("_", 2)[2] not in table.stdout

        revoked = _stargate("admin", "token", "revoke", _id_of(secret), home=home)
        assert revoked.exit_code == 0 and f"token {_id_of(secret)} (viewer-beta) revoked at" in revoked.stdout
        h.ctx.tokens.clear()  # as if 5 s had passed
        assert h.client.get("/api/v1/whoami", headers=_bearer(secret)).status_code == 401
        assert _stargate("admin", "token", "revoke", _id_of(secret), home=home).exit_code == 0  # idempotent

        last = _stargate("admin", "token", "revoke", _id_of(h.admin_token), home=home)
        assert last.exit_code == 1 and "is the last live admin token" in last.stderr
        unknown = _stargate("admin", "token", "revoke", "t-nope", home=home)
        assert unknown.exit_code == 1 and unknown.stderr == "error: no token 't-nope'\n"
    finally:
        h.client.close()
        h.ctx.db.close()


@pytest.mark.parametrize("value", ["yesterday", "-5m", "2020-01-01T00:00:00Z", "2030-01-01T00:00:00"])
def test_admin_token_create_refuses_a_bad_expiry_with_exit_2(tmp_path: Path, value: str) -> None:
    result = _stargate("admin", "token", "create", "--role", "admin", "--expires", value, home=tmp_path / "home")
    assert result.exit_code == 2 and result.stderr.startswith("error: --expires: found"), result.output
    assert result.stderr.count("\n") == 1
