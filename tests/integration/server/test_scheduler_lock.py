"""One scheduler at a time: the lock is exclusive per database (file lock on SQLite, advisory lock on PostgreSQL)."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from integration.server.stargate_harness import POSTGRES_ENV, postgres_schema_url
from stargate.server.scheduling.lock import SchedulerLock
from stargate.server.settings import Settings
from stargate.store import Database


@pytest.fixture
def two_dbs(db_url: str) -> Iterator[tuple[Database, Database]]:
    """Two independent connections pools to the same database, as two server processes would have."""
    a, b = Database.open(db_url), Database.open(db_url)
    yield a, b
    a.close()
    b.close()


def test_only_one_holder_at_a_time_and_release_hands_over(two_dbs: tuple[Database, Database], tmp_path: Path) -> None:
    first, second = (
        SchedulerLock(two_dbs[0], tmp_path / "scheduler.lock"),
        SchedulerLock(two_dbs[1], tmp_path / "scheduler.lock"),
    )
    assert first.acquire() and first.held
    assert not second.acquire() and not second.held
    assert first.acquire()  # re-entrant for its holder
    first.release()
    assert not first.held
    assert second.acquire() and second.held
    assert not first.acquire()
    second.release()


@pytest.mark.postgres
def test_postgres_locks_are_per_database_schema(tmp_path: Path) -> None:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    schemas = [f"t_lock_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin = create_engine(base)
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    dbs = [Database.open(postgres_schema_url(base, s)) for s in (*schemas, schemas[0])]
    try:
        locks = [SchedulerLock(db, tmp_path / "unused.lock") for db in dbs]
        assert [lock.acquire() for lock in locks] == [True, True, False]
        assert not (tmp_path / "unused.lock").exists()
        for lock in locks:
            lock.release()
    finally:
        for db in dbs:
            db.close()
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_two_sqlite_databases_over_one_state_directory_each_get_a_scheduler(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    one = Settings(home=home, database_url=f"sqlite:///{home / 'stargate.db'}")
    other = Settings(home=home, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    same = Settings(home=tmp_path / "elsewhere", database_url=one.database_url)
    assert same.lock_path == one.lock_path  # servers on one database share the lock wherever their state is
    dbs = [Database.open(s.database_url) for s in (one, other, same)]
    try:
        first, second, third = (SchedulerLock(db, s.lock_path) for db, s in zip(dbs, (one, other, same), strict=True))
        assert first.acquire() and second.acquire()  # two databases: two schedulers, neither a standby
        assert not third.acquire()  # the same database: a standby
        first.release()
        second.release()
    finally:
        for db in dbs:
            db.close()
