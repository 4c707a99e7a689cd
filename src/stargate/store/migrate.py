"""Schema migrations: bring a database to the newest Alembic revision shipped in the package."""

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from stargate.store.database import WRITE_OPTION

MIGRATION_LOCK_KEY = 0x5354_4752_4D49_4752  # "STGRMIGR": serialises concurrent upgrades on PostgreSQL


def alembic_config() -> Config:
    """The Alembic configuration of the packaged migrations (no ini file needed)."""
    package_dir = Path(str(resources.files("stargate.store")))
    cfg = Config(str(package_dir / "alembic.ini"))
    cfg.set_main_option("script_location", str(package_dir / "migrations"))
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this version of Stargate."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migration revisions found in stargate/store/migrations")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (default: the newest) in one transaction.

    On SQLite, foreign keys are off while it runs: a migration that alters a table rebuilds it (copy, drop, rename),
    and dropping the old table with foreign keys on would delete every row that refers to it through ``ON DELETE
    CASCADE`` (a job's events and runs). The references are checked before the transaction commits instead.
    """
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database behind ``engine`` back to ``revision``, in one transaction and as safely as
    :func:`upgrade` (foreign keys off on SQLite while tables are rebuilt, references checked before the commit)."""
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    cfg = alembic_config()
    with engine.connect() as conn:
        conn = conn.execution_options(**{WRITE_OPTION: True})
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # outside any transaction, where SQLite honours it (a no-op inside one)
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = conn
                step(cfg, revision)
                if sqlite and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()):
                    raise RuntimeError(f"the migration left rows that refer to missing rows: {broken[:5]}")
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
