"""API tokens: stored as the SHA-256 of the secret, found by the secret's first characters."""

import hashlib
import hmac

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stargate.store.models import TokenRow

PREFIX_LENGTH = 12
"""Characters of a token kept in clear to find its row (not enough to use it)."""


def digest(secret: str) -> str:
    """The hex SHA-256 of a token secret, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def prefix_of(secret: str) -> str:
    """The lookup prefix of a token secret."""
    return secret[:PREFIX_LENGTH]


def add(session: Session, token: TokenRow) -> TokenRow:
    """Insert a token row."""
    session.add(token)
    session.flush()
    return token


def find(session: Session, secret: str) -> TokenRow | None:
    """The live (not revoked) token whose secret is ``secret``, compared in constant time."""
    wanted = digest(secret)
    candidates = session.scalars(
        select(TokenRow).where(TokenRow.prefix == prefix_of(secret), TokenRow.revoked_at.is_(None))
    )
    for row in candidates:
        if hmac.compare_digest(row.secret_sha256, wanted):
            return row
    return None


def count(session: Session) -> int:
    """How many tokens exist (revoked ones included)."""
    return int(session.scalar(select(func.count()).select_from(TokenRow)) or 0)
