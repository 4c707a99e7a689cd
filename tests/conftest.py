"""Shared fixtures for the store, server and executor tests.

- ``tiny_fleet_path``: a two-cluster, two-team fleet file (tests/integration/server/fleet/tiny.yaml).
- ``db_url``: a fresh, empty database URL, parametrised over SQLite (a file in ``tmp_path``) and PostgreSQL (a
  schema of its own in ``STARGATE_TEST_POSTGRES_URL``, dropped afterwards; skipped when the variable is unset).
- ``sqlite_url`` / ``postgres_url``: the SQLite case alone / the PostgreSQL case alone.
- ``harness`` / ``make_harness``: a migrated database with the tiny fleet applied, the FastAPI app (scheduler
  thread off; tests call ``run_cycle`` themselves), a sync HTTP client and token helpers (the ``Harness`` class and
  its helpers live in tests/integration/server/stargate_harness.py).
"""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from integration.server.stargate_harness import (
    POSTGRES_ENV,
    TINY_FLEET,
    Harness,
    build_harness,
    postgres_schema_url,
)


@pytest.fixture
def tiny_fleet_path() -> Path:
    """The tiny test fleet: clusters lab-h100 (2 × 4 H100-SXM) and lab-gb200 (1 × 4 GB200); teams alpha, beta."""
    return TINY_FLEET


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
    yield from _postgres_schema()


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres)])
def postgres_url() -> Iterator[str]:
    """The PostgreSQL case of ``db_url`` alone, for what only PostgreSQL has (concurrent writers)."""
    yield from _postgres_schema()


def _postgres_schema() -> Iterator[str]:
    """A schema of its own in STARGATE_TEST_POSTGRES_URL, dropped afterwards (skipped when the variable is unset)."""
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
