"""Migrations: an empty database upgraded to head has exactly the models' schema; upgrading twice is a no-op."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from stargate.store import Base, create_engine, current_revision, head_revision, upgrade

TABLES = {"teams", "queues", "fleet_versions", "fleet_plans", "jobs", "job_events", "runs", "tokens"}


def test_upgrade_on_an_empty_database_gives_the_models_schema(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_upgrade_twice_is_harmless(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_the_first_revision_is_dated() -> None:
    assert head_revision().startswith("2026")


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000
    finally:
        engine.dispose()
