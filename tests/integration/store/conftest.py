"""Fixtures of the store tests."""

from collections.abc import Iterator

import pytest

from stargate.store import Database, upgrade


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated, empty database on SQLite and (when configured) PostgreSQL."""
    database = Database.open(db_url)
    upgrade(database.engine)
    yield database
    database.close()
