"""Applied fleet versions and fleet plans (preview, then apply unless the fleet moved on)."""

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from stargate.store.models import FleetPlanRow, FleetVersionRow


def current(session: Session) -> FleetVersionRow | None:
    """The fleet in force: the most recently applied version, or None before the first apply."""
    return session.scalars(select(FleetVersionRow).order_by(FleetVersionRow.id.desc()).limit(1)).one_or_none()


def add(session: Session, row: FleetVersionRow) -> FleetVersionRow:
    """Record a newly applied fleet version."""
    session.add(row)
    session.flush()
    return row


def add_plan(session: Session, plan: FleetPlanRow) -> FleetPlanRow:
    """Record a fleet plan."""
    session.add(plan)
    session.flush()
    return plan


def get_plan(session: Session, plan_id: str, *, for_update: bool = False) -> FleetPlanRow | None:
    """The plan ``plan_id``, or None."""
    query = select(FleetPlanRow).where(FleetPlanRow.id == plan_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


FLEET_LOCK_KEY = 0x5354_4752_464C_4554  # "STGRFLET"


def lock(session: Session) -> None:
    """Serialise fleet changes until the transaction ends (PostgreSQL advisory lock; SQLite writers already queue)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FLEET_LOCK_KEY})


def lock_shared(session: Session) -> None:
    """Hold fleet changes off until the transaction ends, alongside other holders (PostgreSQL; SQLite writers
    already queue): a transaction that stores jobs against the fleet in force takes it, so a fleet change waits for
    those jobs to commit and sees them (it refuses to remove a queue that has jobs), and they see the new fleet."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": FLEET_LOCK_KEY})


def current_version(session: Session) -> str | None:
    """The content hash of the fleet in force (without loading the document), or None."""
    query = select(FleetVersionRow.version).order_by(FleetVersionRow.id.desc()).limit(1)
    return session.scalars(query).one_or_none()
