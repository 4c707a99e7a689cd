"""Tokens: create (the wire form is returned once; only a salted hash is stored) and the first admin token."""

import secrets
from datetime import datetime

from sqlalchemy.orm import Session

from stargate.server.auth import Role, new_token
from stargate.server.errors import InvalidError
from stargate.store import TokenRow
from stargate.store.repositories import teams as team_repo
from stargate.store.repositories import tokens as token_repo


def create(
    session: Session,
    name: str,
    team: str | None,
    role: Role,
    now: datetime,
    *,
    created_by: str = "",
    expires_at: datetime | None = None,
) -> tuple[TokenRow, str]:
    """Store a new server-generated token and return its row with its wire form (shown once, never stored).

    Members and viewers need a team that exists in the fleet in force; an admin's team is optional.
    """
    if role is not Role.ADMIN:
        if team is None:
            raise InvalidError(f"team: found nothing, expected the team a '{role.value}' token belongs to")
        if team_repo.get_team(session, team) is None:
            known = ", ".join(t.id for t in team_repo.list_teams(session)[:10]) or "none: apply a fleet first"
            raise InvalidError(f"team: found '{team}', expected the id of a team ({known})")
    if expires_at is not None and expires_at <= now:
        raise InvalidError(f"expires_at: found {expires_at.isoformat()}, expected a time after {now.isoformat()}")
    token_id, secret, wire = new_token()
    salt = secrets.token_hex(16)
    row = TokenRow(
        id=token_id,
        name=name,
        team_id=team,
        role=role.value,
        salt=salt,
        secret_hash=token_repo.hash_secret(salt, secret),
        created_at=now,
        created_by=created_by,
        expires_at=expires_at,
    )
    token_repo.add(session, row)
    return row, wire


def bootstrap_admin(session: Session, now: datetime) -> str | None:
    """Create the first admin token when there is no token at all; its wire form, or None when tokens exist."""
    if token_repo.count(session) > 0:
        return None
    _, created = create(session, "admin", None, Role.ADMIN, now, created_by="stargate up")
    return created
