"""Shared fixtures for the store, server and executor tests.

- ``tiny_fleet_path``: a two-cluster, two-team fleet file (tests/integration/server/fleet/tiny.yaml).
- ``db_url``: a fresh, empty database URL, parametrised over SQLite (a file in ``tmp_path``) and PostgreSQL (a
  schema of its own in ``STARGATE_TEST_POSTGRES_URL``, dropped afterwards; skipped when the variable is unset).
- ``sqlite_url``: the SQLite case alone.
- ``harness`` / ``make_harness``: a migrated database with the tiny fleet applied, the FastAPI app (scheduler
  thread off; tests call ``run_cycle`` themselves), a sync HTTP client and token helpers.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from stargate.fleetfile import load_fleet
from stargate.server.app import create_app
from stargate.server.auth import Role
from stargate.server.bootstrap import open_database, prepare
from stargate.server.context import ServerContext
from stargate.server.services import tokens as token_service
from stargate.server.settings import Settings

POSTGRES_ENV = "STARGATE_TEST_POSTGRES_URL"
TINY_FLEET = Path(__file__).parent / "integration" / "server" / "fleet" / "tiny.yaml"
ADMIN_TOKEN = "test-admin-token-0001"


@pytest.fixture
def tiny_fleet_path() -> Path:
    """The tiny test fleet: clusters lab-h100 (2 × 4 H100-SXM) and lab-gb200 (1 × 4 GB200); teams alpha, beta."""
    return TINY_FLEET


def postgres_schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with every connection's ``search_path`` set to ``schema``."""
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file URL."""
    return f"sqlite:///{tmp_path / 'stargate.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite, and PostgreSQL when STARGATE_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'stargate.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class Harness:
    """A server's state and app for one test, plus helpers to make tokens and call the API."""

    ctx: ServerContext
    app: FastAPI
    client: TestClient
    admin_token: str
    _tokens: dict[tuple[str, str | None], str] = field(default_factory=dict)

    def token(self, role: str, team: str | None = None) -> str:
        """A token of ``role`` for ``team`` (created once per test, then reused)."""
        key = (role, team)
        if key not in self._tokens:
            with self.ctx.db.write() as session:
                name = f"{role}-{team or 'all'}"
                _, self._tokens[key] = token_service.create(session, name, team, Role(role), datetime.now(UTC))
        return self._tokens[key]

    def headers(self, role: str = "admin", team: str | None = None) -> dict[str, str]:
        """Authorization headers for a token of ``role`` (the bootstrap admin token for a team-less admin)."""
        secret = self.admin_token if role == "admin" and team is None else self.token(role, team)
        return {"Authorization": f"Bearer {secret}"}

    def submit(self, role: str = "admin", team: str | None = None, **spec: object) -> dict[str, object]:
        """Submit a job (defaults: queue alpha-q, 1 GPU, command 'true') and return its JSON; asserts 201."""
        body = {"name": "job", "queue": "alpha-q", "gpus": 1, "command": "true", **spec}
        response = self.client.post("/api/v1/jobs", json=body, headers=self.headers(role, team))
        assert response.status_code == 201, response.text
        data: dict[str, object] = response.json()
        return data


def build_harness(db_url: str, home: Path, fleet_path: Path = TINY_FLEET) -> Harness:
    """Migrate ``db_url``, apply the fleet, create the admin token and build the app (scheduler thread off)."""
    settings = Settings(
        home=home,
        database_url=db_url,
        scheduler_enabled=False,
        cancel_grace_s=2.0,
        admin_token=ADMIN_TOKEN,
    )
    db = open_database(settings)
    prepared = prepare(settings, db, load_fleet(fleet_path))
    assert prepared.admin_token == ADMIN_TOKEN
    app = create_app(prepared.ctx)
    return Harness(ctx=prepared.ctx, app=app, client=TestClient(app), admin_token=ADMIN_TOKEN)


@pytest.fixture
def make_harness(tmp_path: Path) -> Iterator[Callable[[str], Harness]]:
    """A factory of harnesses over a database URL; every database is closed at the end of the test."""
    made: list[Harness] = []

    def make(url: str) -> Harness:
        h = build_harness(url, tmp_path / f"home-{len(made)}")
        made.append(h)
        return h

    yield make
    for h in made:
        h.client.close()
        h.ctx.db.close()


@pytest.fixture
def harness(db_url: str, make_harness: Callable[[str], Harness]) -> Harness:
    """A ready server state on SQLite and (when configured) PostgreSQL."""
    return make_harness(db_url)
