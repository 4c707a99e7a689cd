"""Getting a server's state ready: migrate the database, apply the fleet, create the first admin token."""

import os
import stat
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect

from stargate.domain import Fleet
from stargate.executors.isolation import Isolation, IsolationMode, needs_traversal, resolve
from stargate.server.context import ServerContext
from stargate.server.services import fleet as fleet_service
from stargate.server.services import tokens as token_service
from stargate.server.settings import Settings
from stargate.store import Database, upgrade
from stargate.store.database import sqlite_path
from stargate.store.repositories import fleet_versions

ACTOR = "stargate up"


@dataclass(frozen=True)
class Prepared:
    """The result of :func:`prepare`: the context to serve from, and what changed on the way."""

    ctx: ServerContext
    admin_token: str | None
    """The first admin token's secret when it was created now (first start), else None."""
    fleet_version: str
    fleet_changed: bool


def needs_fleet(db: Database) -> bool:
    """True when no fleet was ever applied to this database."""
    with db.read() as session:
        return fleet_versions.current_version(session) is None


PRIVATE_FILES = (
    "stargate.db",
    "stargate.db-wal",
    "stargate.db-shm",
    "stargate.db-journal",
    "stargate.db.scheduler.lock",
    "admin-token",
)
"""Files of the state directory that only the server's user may read (with ``scheduler.lock``, ``job-uids.json``
and every ``*.log`` / ``*.pid`` there)."""


def resolve_isolation(settings: Settings) -> tuple[Settings, Isolation]:
    """The settings with ``isolation`` resolved (auto → the mode found here) and that isolation; IsolationError
    (with the option at fault) when it cannot be had, e.g. ``none`` without ``single_team``."""
    found = resolve(
        settings.isolation,
        single_team=settings.single_team,
        uid_base=settings.job_uid_base,
        work_root=settings.home,
        job_network=settings.job_network,
    )
    return replace(settings, isolation=found.mode.value), found


def home_mode(settings: Settings) -> int:
    """The state directory's mode: 0700; 0711 (others may pass through, never list) only when jobs run under
    other uids without a sandbox and must reach their working directories inside it. ``auto`` counts as what it
    resolves to (users as root), so an admin command never closes the directory a server's jobs need."""
    mode = settings.isolation
    if mode == IsolationMode.AUTO:
        mode = IsolationMode.USERS if os.geteuid() == 0 else IsolationMode.SANDBOX
    return 0o711 if mode == IsolationMode.USERS and needs_traversal() else 0o700


def secure_home(home: Path, mode: int) -> None:
    """Create the state directory with ``mode``, or tighten an existing one and the server's files in it: 0600 for
    the database, its journal files, the admin token, the lock, logs and pid files; 0700 for ``runs``."""
    home.mkdir(mode=mode, parents=True, exist_ok=True)
    if stat.S_IMODE(home.stat().st_mode) != mode:
        home.chmod(mode)
    names = {*PRIVATE_FILES, "scheduler.lock", "job-uids.json"}
    for entry in home.iterdir():
        info = entry.lstat()
        if stat.S_ISREG(info.st_mode) and (entry.name in names or entry.suffix in {".log", ".pid"}):
            if info.st_mode & 0o077:
                entry.chmod(0o600)
        elif stat.S_ISDIR(info.st_mode) and entry.name == "runs" and info.st_mode & 0o077:
            entry.chmod(0o700)


class NoDatabaseError(Exception):
    """``open_database(..., create=False)`` found no database where the settings point (one located line)."""


def open_database(settings: Settings, *, create: bool = True) -> Database:
    """Check the URL, create the state directory (private: see :func:`secure_home`), connect and migrate to the
    newest schema.

    The URL is checked before anything is written (an unusable one raises
    :class:`~stargate.store.database.DatabaseUrlError`). With ``create=False`` nothing is created either: a SQLite
    file that does not exist, or a PostgreSQL database without Stargate's schema, raises :class:`NoDatabaseError`
    (for commands that only read or change an existing state, so that a mistyped ``STARGATE_HOME`` is refused
    instead of starting an empty one).
    """
    path = sqlite_path(settings.database_url)  # raises DatabaseUrlError before anything is written
    if not create and path is not None and not path.is_file():
        raise NoDatabaseError(
            f"no database at {path}: set STARGATE_HOME (now {settings.home}) or STARGATE_DATABASE_URL to the "
            "server's state; `stargate up` creates it"
        )
    db = Database.open(settings.database_url)
    if not create and path is None and not inspect(db.engine).has_table("alembic_version"):
        db.close()
        raise NoDatabaseError(
            "no Stargate schema in the database of STARGATE_DATABASE_URL: point it at the server's database; "
            "`stargate up` creates the schema"
        )
    secure_home(settings.home, home_mode(settings))
    upgrade(db.engine)
    return db


def prepare(settings: Settings, db: Database, fleet: Fleet | None, now: datetime | None = None) -> Prepared:
    """Apply ``fleet`` (when given and different from the one in force) and create the first admin token.

    Servers starting at once on one PostgreSQL database do this one after another (under the fleet lock), so only
    the first creates an admin token and the others find the fleet applied.
    """
    now = now or datetime.now(UTC)
    with db.write() as session:
        fleet_versions.lock(session)
        changed = False
        if fleet is not None:
            row, changed = fleet_service.ensure(session, fleet, ACTOR, now, settings.scheduling)
            version = row.version
        else:
            current = fleet_versions.current(session)
            if current is None:
                raise ValueError("no fleet in the database and none given")
            version = current.version
            if settings.scheduling:  # the options must make a valid policy with the fleet in force
                fleet_service.check_schedulable(Fleet.model_validate(current.document), now, settings.scheduling)
        secret = token_service.bootstrap_admin(session, now)
    ctx = ServerContext(settings=settings, db=db)
    return Prepared(ctx=ctx, admin_token=secret, fleet_version=version, fleet_changed=changed)
