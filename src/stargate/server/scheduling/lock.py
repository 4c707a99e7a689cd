"""One scheduler at a time: a PostgreSQL session advisory lock, or an exclusive lock file on SQLite."""

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from stargate.store import Database


class SchedulerLock:
    """Held by at most one process per database; :meth:`acquire` never blocks.

    On SQLite the lock is ``fcntl.flock`` on ``<database file>.scheduler.lock`` beside the database (released by the
    kernel when the process dies, even by SIGKILL). On PostgreSQL it is ``pg_try_advisory_lock`` on a connection kept
    open for as long as the lock is held (released by the server when that connection ends). A holder killed on a
    live host has its socket closed by the kernel, so PostgreSQL ends the session and frees the lock at once; for a
    host that vanishes (power, network) the session asks PostgreSQL for TCP keepalives (:data:`KEEPALIVE`), which
    end it within about 10 s, and turns ``idle_session_timeout`` off, which would otherwise end a held lock.
    """

    def __init__(self, db: Database, lock_path: Path) -> None:
        self._db = db
        self._path = lock_path
        self._fd: int | None = None
        self._conn: Connection | None = None
        self._pid: int | None = None
        self._lock_key: int | None = None

    @property
    def held(self) -> bool:
        """True while this process holds the lock (checked against the database on PostgreSQL)."""
        if self._conn is None:
            return self._fd is not None
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:  # the connection died: the server released the lock
            self._drop_connection()
            return False

    def holds_in(self, session: Session) -> bool:
        """Whether this process still holds the lock, asked inside ``session``'s transaction (the fence a decision
        transaction checks before it commits: a leader whose lock session ended mid-cycle must not commit).

        On PostgreSQL: the lock session's advisory lock is still granted (``pg_locks``, read on ``session``'s own
        connection, so a lock session that is gone or stuck does not answer for itself); on SQLite: the lock file
        is held (the kernel keeps it as long as the process lives)."""
        if self._pid is None or self._lock_key is None:
            return self._fd is not None
        high, low = (self._lock_key >> 32) & 0xFFFFFFFF, self._lock_key & 0xFFFFFFFF
        found = session.execute(
            text(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = :pid AND granted "
                "AND classid::bigint = :high AND objid::bigint = :low "
                "AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"pid": self._pid, "high": high, "low": low},
        ).first()
        return found is not None

    def acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it afterwards."""
        if self.held:
            return True
        return self._acquire_pg() if not self._db.is_sqlite else self._acquire_file()

    def release(self) -> None:
        """Give the lock up (no-op when not held)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key(self._conn)})
                self._conn.commit()
            finally:
                self._drop_connection()

    def _acquire_file(self) -> bool:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def _acquire_pg(self) -> bool:
        conn = self._db.engine.connect()
        key = self._key(conn)
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        conn.commit()
        if not got:
            conn.close()
            return False
        self._conn, self._pid, self._lock_key = conn, int(pid or 0), key
        _keep_session_alive(conn)
        return True

    @staticmethod
    def _key(conn: Connection) -> int:
        """A 64-bit lock key per database and schema, so test schemas in one database do not share a lock."""
        where = conn.execute(text("SELECT current_database() || '/' || current_schema()")).scalar()
        digest = hashlib.sha256(f"stargate-scheduler:{where}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken; nothing more to release
                self._conn.close()
            self._conn = None
        self._pid = self._lock_key = None


KEEPALIVE = {"tcp_keepalives_idle": "4", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3"}
"""PostgreSQL's TCP keepalives on the lock's session: a holder unheard of for 4 s is probed every 2 s and its
session ended after 3 probes unanswered (ignored on a Unix socket, where a dead process is always seen at once)."""


def _keep_session_alive(conn: Connection) -> None:
    """Set :data:`KEEPALIVE` for the lock's session (and ``idle_session_timeout`` 0 on PostgreSQL 14+), so that the
    lock lives exactly as long as its holder. The connection goes back to the pool only once closed (``release``),
    where SQLAlchemy's reset does not undo session settings: harmless ones, kept."""
    settings = dict(KEEPALIVE)
    if (conn.dialect.server_version_info or (0,)) >= (14,):
        settings["idle_session_timeout"] = "0"
    for name, value in settings.items():
        conn.execute(text("SELECT set_config(:name, :value, false)"), {"name": name, "value": value})
    conn.commit()
