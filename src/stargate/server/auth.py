"""Who is calling: bearer tokens, roles (admin, member, viewer) and team isolation rules."""

import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from stargate.server.errors import ForbiddenError, UnauthorizedError
from stargate.store.repositories import tokens as token_repo

TOKEN_PREFIX = "sgt_"


class Role(StrEnum):
    """``admin``: everything; ``member``: its own team's jobs (submit, see, cancel), read fleet and queues;
    ``viewer``: read-only, its own team's jobs."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    token_id: str
    name: str
    team: str | None
    role: Role

    @property
    def actor(self) -> str:
        """How the caller appears in event rows: ``token:<name>``."""
        return f"token:{self.name}"

    @property
    def is_admin(self) -> bool:
        """True for the admin role."""
        return self.role is Role.ADMIN

    def require_admin(self) -> None:
        """Raise 403 unless the caller is an admin."""
        if not self.is_admin:
            raise ForbiddenError(f"this needs the 'admin' role; token '{self.name}' has role '{self.role.value}'")

    def require_write(self, team: str) -> None:
        """Raise 403 unless the caller may change jobs of ``team`` (admin, or a member of that team)."""
        if self.is_admin:
            return
        if self.role is Role.VIEWER:
            raise ForbiddenError(f"token '{self.name}' has role 'viewer', which is read-only")
        if self.team != team:
            raise ForbiddenError(f"token '{self.name}' belongs to team '{self.team}', not to team '{team}'")


def new_secret() -> str:
    """A fresh random token: ``sgt_`` and 43 URL-safe characters (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def authenticate(session: Session, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization: Bearer <token>`` header; 401 when missing or unknown."""
    if not authorization:
        raise UnauthorizedError("missing 'Authorization: Bearer <token>' header")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise UnauthorizedError("expected 'Authorization: Bearer <token>'")
    row = token_repo.find(session, secret)
    if row is None:
        raise UnauthorizedError("unknown or revoked token")
    return Principal(token_id=row.id, name=row.name, team=row.team_id, role=Role(row.role))
