"""The server test harness: a migrated database with the tiny fleet applied, the app, a client, token helpers.

Imported as ``integration.server.stargate_harness`` (``tests/`` is on ``sys.path`` through the root conftest); the
fixtures that build it are in tests/conftest.py. A module of its own, because several ``conftest`` modules exist and
``from conftest import ...`` would find whichever was loaded first.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from stargate.fleetfile import load_fleet
from stargate.server.app import create_app
from stargate.server.auth import Role
from stargate.server.bootstrap import open_database, prepare
from stargate.server.context import ServerContext
from stargate.server.services import tokens as token_service
from stargate.server.settings import Settings

POSTGRES_ENV = "STARGATE_TEST_POSTGRES_URL"
TINY_FLEET = Path(__file__).parent / "fleet" / "tiny.yaml"


def postgres_schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with every connection's ``search_path`` set to ``schema``."""
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


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


def build_harness(db_url: str, home: Path, fleet_path: Path = TINY_FLEET, **settings_: Any) -> Harness:
    """Migrate ``db_url``, apply the fleet, create the admin token and build the app (scheduler thread off);
    ``settings_``: further :class:`Settings` fields (e.g. ``scheduling``)."""
    settings = Settings(
        home=home,
        database_url=db_url,
        scheduler_enabled=False,
        cancel_grace_s=2.0,
        isolation="none",  # these tests' jobs write to the test's files; isolation has tests of its own
        **settings_,
    )
    db = open_database(settings)
    prepared = prepare(settings, db, load_fleet(fleet_path))
    assert prepared.admin_token is not None
    app = create_app(prepared.ctx)
    return Harness(ctx=prepared.ctx, app=app, client=TestClient(app), admin_token=prepared.admin_token)
