"""Tokens: create (the wire form is returned once; only a salted hash is stored), list, revoke, and the first
admin token."""

import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from stargate.fleetfile.describe import found_text
from stargate.server.auth import Role, new_token
from stargate.server.errors import ConflictError, InvalidError, NotFoundError
from stargate.server.schemas import TokenInfo
from stargate.store import TokenRow, fit_actor
from stargate.store.repositories import fleet_versions
from stargate.store.repositories import teams as team_repo
from stargate.store.repositories import tokens as token_repo

MAX_LIFETIME = timedelta(days=100 * 365)
"""Longest expiry a token may be given (no expiry at all is allowed)."""


def create(
    session: Session,
    name: str,
    team: str | None,
    role: Role,
    now: datetime,
    *,
    created_by: str = "",
    expires_at: datetime | None = None,
    provider: str | None = None,
) -> tuple[TokenRow, str]:
    """Store a new server-generated token and return its row with its wire form (shown once, never stored).

    Members and viewers need a team that exists in the fleet in force; an admin's team is optional. A ``provider``
    token needs ``provider``, a provider of the fleet in force, and no team; the other roles take no provider.
    """
    _check_provider(session, role, team, provider)
    if role not in (Role.ADMIN, Role.PROVIDER):
        if team is None:
            raise InvalidError(f"team: found nothing, expected the team a '{role.value}' token belongs to")
        if team_repo.get_team(session, team) is None:
            known = ", ".join(t.id for t in team_repo.list_teams(session)[:10]) or "none: apply a fleet first"
            raise InvalidError(f"team: found {found_text(team)}, expected the id of a team ({known})")
    if expires_at is not None and not timedelta(0) < expires_at - now <= MAX_LIFETIME:
        raise InvalidError(
            f"expires_at: found {expires_at.isoformat()}, expected a time after {now.isoformat()} and at most "
            f"{MAX_LIFETIME.days // 365} years ahead"
        )
    token_id, secret, wire = new_token()
    salt = secrets.token_hex(16)
    row = TokenRow(
        id=token_id,
        name=name,
        team_id=team,
        role=role.value,
        provider=provider,
        salt=salt,
        secret_hash=token_repo.hash_secret(salt, secret),
        created_at=now,
        created_by=created_by,
        expires_at=expires_at,
    )
    token_repo.add(session, row)
    return row, wire


def _check_provider(session: Session, role: Role, team: str | None, provider: str | None) -> None:
    """422 unless ``provider`` fits ``role``: a provider of the fleet in force for a ``provider`` token (which has no
    team), nothing for the other roles."""
    if role is not Role.PROVIDER:
        if provider is not None:
            raise InvalidError(
                f"provider: found {found_text(provider)}, expected nothing for a '{role.value}' token (only 'provider' "
                "tokens speak for a provider)"
            )
        return
    if team is not None:
        raise InvalidError(f"team: found {found_text(team)}, expected nothing for a 'provider' token")
    current = fleet_versions.current(session)
    known = [str(p.get("id")) for p in (current.document.get("providers") or [])] if current is not None else []
    if provider is None or provider not in known:
        shown = ", ".join(known[:10]) or "none: apply a fleet first"
        found = "nothing" if provider is None else found_text(provider)
        raise InvalidError(f"provider: found {found}, expected the id of a provider of the fleet in force ({shown})")


def bootstrap_admin(session: Session, now: datetime) -> str | None:
    """Create the first admin token when there is no token at all; its wire form, or None when tokens exist."""
    if token_repo.count(session) > 0:
        return None
    _, created = create(session, "admin", None, Role.ADMIN, now, created_by="stargate up")
    return created


def list_all(session: Session) -> list[TokenRow]:
    """Every token, oldest first, revoked and expired ones included (the caller shows no secret: none is stored)."""
    return token_repo.list_all(session)


def to_api(row: TokenRow, now: datetime) -> TokenInfo:
    """The API view of a token row (no secret, salt or hash), with its state at ``now``."""
    state = "revoked" if row.revoked_at is not None else "live" if token_repo.is_live(row, now) else "expired"
    return TokenInfo(
        id=row.id,
        name=row.name,
        team=row.team_id,
        role=Role(row.role),
        provider=row.provider,
        state=state,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


def actor(token_id: str, name: str) -> str:
    """How a token appears in ``created_by`` / ``revoked_by``: ``token <id> (<name>)`` (the id is unique), cut
    to fit the column by :func:`stargate.store.fit_actor`."""
    return fit_actor(f"token {token_id} ({name})")


def _outlived(row: TokenRow, live_admins: list[tuple[str, datetime | None]]) -> bool:
    """Whether another live admin token lasts at least as long as ``row``: never expires, or (when ``row``
    expires) expires no earlier. Revoking an admin token never shortens the time an admin can get in."""
    return any(
        other != row.id and (until is None or (row.expires_at is not None and until >= row.expires_at))
        for other, until in live_admins
    )


def revoke(session: Session, token_id: str, now: datetime, by: str) -> TokenRow:
    """Revoke token ``token_id`` at ``now`` (idempotent: a revoked token is returned as it is).

    404 for an unknown id; 409 when no other live admin token lasts as long as this one (for a token without
    expiry: no other admin token without expiry), so that nobody locks the admins out, at once or when an expiring
    admin token runs out (create another admin token first). Processes that cached the token stop accepting it
    within their cache's TTL.
    """
    found = token_repo.get(session, token_id)
    if found is None:
        raise NotFoundError(f"no token {found_text(token_id)}")
    # lock the live admin tokens first, then the row (one order for every revocation: no deadlock)
    live_admins = token_repo.live_admins(session, now) if found.role == Role.ADMIN.value else []
    row = token_repo.get_for_update(session, token_id)
    assert row is not None  # tokens are never deleted
    if row.revoked_at is not None:
        return row
    if row.role == Role.ADMIN.value and token_repo.is_live(row, now) and not _outlived(row, live_admins):
        until = "without expiry" if row.expires_at is None else f"until at least {row.expires_at.isoformat()}"
        raise ConflictError(
            f"token {row.id} ('{found_text(row.name)[1:-1]}') is the last live admin token {until}; revoking it "
            "would lock every admin out when the others expire: create another admin token first "
            "(`stargate admin token create --role admin`, without --expires)"
        )
    row.revoked_at, row.revoked_by = now, fit_actor(by)
    session.flush()
    return row
