"""API tokens: found by their non-secret id, checked against a salted hash of the secret (never stored)."""

import hashlib
import hmac
import re
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stargate.store.models import TokenRow

WIRE_PREFIX = "sgt_"
"""Every token starts with this, then its row id (``t-`` and hex digits), ``_`` and the secret."""
_WIRE = re.compile(r"^sgt_(t-[0-9a-f]{8,32})_([A-Za-z0-9_-]{43,128})$")


def split(wire: str) -> tuple[str, str] | None:
    """(row id, secret) of a token in its wire form ``sgt_<id>_<secret>``, or None when it is not one."""
    found = _WIRE.match(wire)
    return (found.group(1), found.group(2)) if found else None


def hash_secret(salt: str, secret: str) -> str:
    """The stored form of a secret: hex HMAC-SHA-256 keyed with the row's salt (hex)."""
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def cache_key(wire: str) -> str:
    """A key for an in-memory cache of verified tokens (a plain SHA-256: never stored, never logged)."""
    return hashlib.sha256(wire.encode()).hexdigest()


def add(session: Session, token: TokenRow) -> TokenRow:
    """Insert a token row."""
    session.add(token)
    session.flush()
    return token


def get(session: Session, token_id: str) -> TokenRow | None:
    """The token row ``token_id`` (revoked or expired ones included), or None."""
    return session.get(TokenRow, token_id)


def find(session: Session, wire: str, now: datetime) -> TokenRow | None:
    """The token whose wire form is ``wire`` if it is live at ``now`` (not revoked, not expired); the secret is
    compared in constant time."""
    parts = split(wire)
    if parts is None:
        return None
    row = session.get(TokenRow, parts[0])
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return row if hmac.compare_digest(row.secret_hash, hash_secret(row.salt, parts[1])) else None


def get_for_update(session: Session, token_id: str) -> TokenRow | None:
    """The token row ``token_id``, locked until the transaction ends (PostgreSQL; SQLite writers are serial)."""
    query = select(TokenRow).where(TokenRow.id == token_id).with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def is_live(row: TokenRow, now: datetime) -> bool:
    """Whether ``row`` is accepted at ``now``: not revoked and not expired."""
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > now)


def live_admins(session: Session, now: datetime) -> list[tuple[str, datetime | None]]:
    """(id, expiry) of the admin tokens live at ``now``, locked until the transaction ends (so two revocations of
    the last two admin tokens cannot both pass on PostgreSQL: the second re-reads the first's change)."""
    query = (
        select(TokenRow.id, TokenRow.expires_at)
        .where(
            TokenRow.role == "admin",
            TokenRow.revoked_at.is_(None),
            (TokenRow.expires_at.is_(None)) | (TokenRow.expires_at > now),
        )
        .order_by(TokenRow.id)
        .with_for_update()
    )
    return [(token_id, _aware(expires_at)) for token_id, expires_at in session.execute(query)]


def _aware(value: datetime | None) -> datetime | None:
    """A stored time as UTC-aware (SQLite returns naive UTC)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def list_all(session: Session) -> list[TokenRow]:
    """Every token, oldest first (revoked and expired ones included)."""
    return list(session.scalars(select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)))


def count(session: Session) -> int:
    """How many tokens exist (revoked ones included)."""
    return int(session.scalar(select(func.count()).select_from(TokenRow)) or 0)
