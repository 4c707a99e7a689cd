"""Tokens: create (the secret is returned once and stored hashed) and the first admin token at first start."""

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from stargate.server.auth import Role, new_secret
from stargate.server.errors import InvalidError
from stargate.store import TokenRow
from stargate.store.repositories import teams as team_repo
from stargate.store.repositories import tokens as token_repo

MIN_SECRET_LENGTH = 16


def create(
    session: Session, name: str, team: str | None, role: Role, now: datetime, secret: str | None = None
) -> tuple[TokenRow, str]:
    """Store a new token and return it with its secret (a fresh random one unless ``secret`` is given).

    Members and viewers need a team that exists in the fleet in force; an admin's team is optional.
    """
    if role is not Role.ADMIN:
        if team is None:
            raise InvalidError(f"team: found nothing, expected the team a '{role.value}' token belongs to")
        if team_repo.get_team(session, team) is None:
            known = ", ".join(t.id for t in team_repo.list_teams(session)[:10]) or "none: apply a fleet first"
            raise InvalidError(f"team: found '{team}', expected the id of a team ({known})")
    secret = secret if secret is not None else new_secret()
    _check_secret(secret)
    row = TokenRow(
        id=f"t-{uuid.uuid4().hex[:12]}",
        name=name,
        team_id=team,
        role=role.value,
        prefix=token_repo.prefix_of(secret),
        secret_sha256=token_repo.digest(secret),
        created_at=now,
    )
    token_repo.add(session, row)
    return row, secret


def _check_secret(secret: str) -> None:
    if len(secret) < MIN_SECRET_LENGTH or any(c.isspace() for c in secret) or not secret.isprintable():
        raise InvalidError(
            f"token: found {len(secret)} characters, expected at least {MIN_SECRET_LENGTH} printable characters "
            "without spaces"
        )


def bootstrap_admin(session: Session, now: datetime, secret: str | None) -> str | None:
    """Create the first admin token when there is no token at all; its secret, or None when tokens exist."""
    if token_repo.count(session) > 0:
        return None
    _, created = create(session, "admin", None, Role.ADMIN, now, secret)
    return created
