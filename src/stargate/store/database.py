"""Opening the database: SQLite (WAL, foreign keys, busy timeout) by default, PostgreSQL by URL.

:class:`Database` hands out sessions for reading and for writing. On SQLite a write session starts with
``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing on a stale snapshot; on PostgreSQL
both are ordinary transactions (writers lock the rows they change with ``SELECT ... FOR UPDATE``).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, make_url
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another one to finish, ms."""

POOL_OVERFLOW = 45
"""Connections beyond the pool size: enough for uvicorn's 40 worker threads, the scheduler and its lock."""

WRITE_OPTION = "stargate_write"
"""Connection execution option that makes SQLite start the transaction with ``BEGIN IMMEDIATE``."""


SUPPORTED_BACKENDS = ("sqlite", "postgresql")
"""The database backends Stargate runs on (``sqlite:///PATH``, ``postgresql://USER@HOST/DB``)."""

_EXPECTED_URL = "a database URL: sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


class DatabaseUrlError(ArgumentError):
    """A database URL Stargate cannot use: unparsable, an unsupported backend, or a driver that is not installed.

    The message reads ``found X, expected Y`` and never repeats the URL (it may hold a password).
    """


def parse_url(url: str) -> URL:
    """``url`` parsed; :class:`DatabaseUrlError` when it is not a SQLite or PostgreSQL URL."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        found = "an empty URL" if not url.strip() else "text that is not a URL"
        raise DatabaseUrlError(f"found {found}, expected {_EXPECTED_URL}") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseUrlError(
            f"found the backend '{backend}', expected {' or '.join(SUPPORTED_BACKENDS)} ({_EXPECTED_URL})"
        )
    if backend == "sqlite" and is_memory_sqlite(parsed):
        raise DatabaseUrlError(
            "found an in-memory SQLite database, which cannot be shared by the server's threads and loses "
            "everything on exit; expected a file path (sqlite:///PATH)"
        )
    return parsed


def is_memory_sqlite(parsed: URL) -> bool:
    """True for ``sqlite://``, ``sqlite:///:memory:`` and ``file:...?mode=memory`` URLs."""
    database = parsed.database or ""
    return database in ("", ":memory:") or "mode=memory" in database or parsed.query.get("mode") == "memory"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL); ``url`` must pass :func:`parse_url`."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    database = parsed.database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


def default_url(home: Path) -> str:
    """The SQLite URL of the database inside the state directory ``home``."""
    return f"sqlite:///{home / 'stargate.db'}"


POSTGRES_CONNECT_DEFAULTS: dict[str, int] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}
"""libpq settings so that a database gone from the network fails a request within seconds instead of hanging it:
connecting gives up after 5 s, and a connection whose peer stops acknowledging (keepalives; data unacknowledged for
15 s) is dropped. A URL that sets any of them keeps its own value. A peer that acknowledges but never answers (a hung
PostgreSQL) is bounded by the server's own ``statement_timeout``: set it in the URL (``options=-c
statement_timeout=30s``, see docs/howto/postgresql.md)."""
POOL_TIMEOUT_S = 10.0
"""Seconds a request waits for a free pooled connection before it fails (503 database unavailable)."""


def create_engine(url: str) -> Engine:
    """An engine for ``url`` with Stargate's connection settings (SQLite pragmas, pool pre-ping).

    Raises :class:`DatabaseUrlError` for a URL Stargate cannot use (before connecting).
    """
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(url)
        connect_args = {k: v for k, v in POSTGRES_CONNECT_DEFAULTS.items() if k not in parsed.query}
        return sa_create_engine(
            url,
            isolation_level="READ COMMITTED",  # whatever the database's default: each statement sees the latest commits
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=POOL_OVERFLOW,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args=connect_args,
        )
    except ImportError as exc:  # the driver named in the URL is not installed
        found = f"the driver '{parsed.get_driver_name()}', which is not installed ({exc.name or exc})"
        raise DatabaseUrlError(f"found {found}, expected {_EXPECTED_URL}") from None
    except ArgumentError:  # an unknown driver or option
        found = f"the driver '{parsed.get_driver_name()}' or an option SQLAlchemy does not know"
        raise DatabaseUrlError(f"found {found}, expected {_EXPECTED_URL}") from None


def _sqlite_engine(url: str) -> Engine:
    engine = sa_create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=5,
        max_overflow=POOL_OVERFLOW,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@dataclass
class Database:
    """The engine and its session factory; the one object the server passes around for storage."""

    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def open(cls, url: str) -> "Database":
        """Connect to ``url`` (no schema change: run :func:`stargate.store.migrate.upgrade` for that)."""
        engine = create_engine(url)
        return cls(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))

    @property
    def is_sqlite(self) -> bool:
        """True on SQLite, False on PostgreSQL."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; closed (its transaction rolled back) at the end, loaded rows stay readable."""
        with self.sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed when the block ends, rolled back on an error."""
        with self.sessions() as session:
            session.connection(execution_options={WRITE_OPTION: True})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
