"""End-to-end fixtures: servers over fresh state (killed with their runs at teardown) and the database to use.

The database is SQLite in STARGATE_HOME, or a fresh PostgreSQL database per test when the test is parametrised with
``postgres`` and STARGATE_TEST_POSTGRES_URL is set.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import ServerFactory, fresh_postgres_database


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite in STARGATE_HOME; a fresh PostgreSQL database URL for ``postgres``."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield None
        return
    admin_url = os.environ.get("STARGATE_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("STARGATE_TEST_POSTGRES_URL is not set")
    with fresh_postgres_database(admin_url) as url:
        yield url


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """A factory of servers over fresh state; all are killed (with their runs) at teardown."""
    factory = ServerFactory(tmp_path)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Like ``make_server`` but shared by a whole test module (one server start for many tests)."""
    factory = ServerFactory(tmp_path_factory.mktemp("servers"))
    yield factory
    factory.cleanup()
