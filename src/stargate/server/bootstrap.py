"""Getting a server's state ready: migrate the database, apply the fleet, create the first admin token."""

from dataclasses import dataclass
from datetime import UTC, datetime

from stargate.domain import Fleet
from stargate.server.context import ServerContext
from stargate.server.services import fleet as fleet_service
from stargate.server.services import tokens as token_service
from stargate.server.settings import Settings
from stargate.store import Database, upgrade
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


def open_database(settings: Settings) -> Database:
    """Create the state directory, connect and migrate to the newest schema."""
    settings.home.mkdir(parents=True, exist_ok=True)
    db = Database.open(settings.database_url)
    upgrade(db.engine)
    return db


def prepare(settings: Settings, db: Database, fleet: Fleet | None, now: datetime | None = None) -> Prepared:
    """Apply ``fleet`` (when given and different from the one in force) and create the first admin token."""
    now = now or datetime.now(UTC)
    with db.write() as session:
        changed = False
        if fleet is not None:
            row, changed = fleet_service.ensure(session, fleet, ACTOR, now)
            version = row.version
        else:
            current = fleet_versions.current_version(session)
            if current is None:
                raise ValueError("no fleet in the database and none given")
            version = current
        secret = token_service.bootstrap_admin(session, now)
    ctx = ServerContext(settings=settings, db=db)
    return Prepared(ctx=ctx, admin_token=secret, fleet_version=version, fleet_changed=changed)
