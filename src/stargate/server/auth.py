"""Who is calling: bearer tokens, roles (admin, member, viewer, provider) and team isolation rules."""

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from stargate.server.errors import ForbiddenError, UnauthorizedError
from stargate.store import fit_actor
from stargate.store.repositories import tokens as token_repo

TOKEN_PREFIX = token_repo.WIRE_PREFIX


class Role(StrEnum):
    """``admin``: everything; ``member``: its own team's jobs (submit, see, cancel), read fleet and queues;
    ``viewer``: read-only, its own team's jobs; ``provider``: speaks for one provider: reads that provider's contracts
    and the offers made to it and answers them, nothing else."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"
    PROVIDER = "provider"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    token_id: str
    name: str
    team: str | None
    role: Role
    expires_at: datetime | None = None
    """When the token expires (None: never); the token cache keeps it no longer than that."""
    provider: str | None = None
    """The provider a ``provider`` token speaks for; None for the other roles."""

    @property
    def actor(self) -> str:
        """How the caller appears in event rows: ``token:<name>``, cut to fit an actor column (see
        :func:`stargate.store.fit_actor`)."""
        return fit_actor(f"token:{self.name}")

    @property
    def is_admin(self) -> bool:
        """True for the admin role."""
        return self.role is Role.ADMIN

    def require_admin(self) -> None:
        """Raise 403 unless the caller is an admin."""
        if not self.is_admin:
            raise ForbiddenError(f"this needs the 'admin' role; token '{self.name}' has role '{self.role.value}'")

    def require_not_provider(self) -> None:
        """Raise 403 for a ``provider`` token (it may only read its contracts and offers and answer offers)."""
        if self.role is Role.PROVIDER:
            raise ForbiddenError(
                f"token '{self.name}' has role 'provider' (provider '{self.provider}'), which may only read its "
                "contracts and offers and answer its offers"
            )

    def require_write(self, team: str) -> None:
        """Raise 403 unless the caller may change jobs of ``team`` (admin, or a member of that team)."""
        if self.is_admin:
            return
        self.require_not_provider()
        if self.role is Role.VIEWER:
            raise ForbiddenError(f"token '{self.name}' has role 'viewer', which is read-only")
        if self.team != team:
            raise ForbiddenError(f"token '{self.name}' belongs to team '{self.team}', not to team '{team}'")


def new_token() -> tuple[str, str, str]:
    """A fresh token: (row id, secret, wire form ``sgt_<id>_<secret>``); the secret holds 256 random bits."""
    token_id = f"t-{secrets.token_hex(8)}"
    secret = secrets.token_urlsafe(32)
    return token_id, secret, f"{TOKEN_PREFIX}{token_id}_{secret}"


def bearer_secret(authorization: str | None) -> str:
    """The token in an ``Authorization: Bearer <token>`` header; 401 when missing or malformed."""
    if not authorization:
        raise UnauthorizedError("missing 'Authorization: Bearer <token>' header")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise UnauthorizedError("expected 'Authorization: Bearer <token>'")
    return secret


def authenticate(session: Session, authorization: str | None, now: datetime) -> Principal:
    """The principal behind an ``Authorization: Bearer <token>`` header; 401 when missing, unknown, revoked or
    expired at ``now``."""
    secret = bearer_secret(authorization)
    row = token_repo.find(session, secret, now)
    if row is None:
        raise UnauthorizedError("unknown, revoked or expired token")
    return Principal(
        token_id=row.id,
        name=row.name,
        team=row.team_id,
        role=Role(row.role),
        expires_at=row.expires_at,
        provider=row.provider,
    )


TOKEN_CACHE_TTL_S = 2.0
"""How long a verified token is trusted without asking the database again, s: a token revoked through another
process (another replica, ``stargate admin token revoke``) keeps working here for at most this long (the process
that revoked it forgets it at once). One token lookup per token every 2 s is all it costs."""


@dataclass
class TokenCache:
    """Verified tokens in memory: the SHA-256 of the secret → its principal, for ``ttl_s`` seconds (or until the
    token expires, if sooner).

    Only tokens found valid are kept (an unknown token is looked up every time). Keyed by the hash, so no secret
    is held. :meth:`clear` drops everything; the server calls it whenever it creates or changes a token. A lookup
    that read the database before a clear cannot put its (possibly revoked) principal back after it: :meth:`put`
    checks the :attr:`generation` read before the lookup.
    """

    ttl_s: float = TOKEN_CACHE_TTL_S
    max_entries: int = 10_000
    _entries: dict[str, tuple[Principal, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _generation: int = 0

    def get(self, digest: str) -> Principal | None:
        """The principal of this token hash if verified less than ``ttl_s`` ago."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if time.monotonic() >= entry[1]:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return entry[0]

    @property
    def generation(self) -> int:
        """How many times the cache was cleared: read it BEFORE looking a token up, and pass it to :meth:`put`."""
        return self._generation

    def put(self, digest: str, who: Principal, generation: int | None = None) -> None:
        """Remember a token just verified against the database (not past its expiry).

        ``generation``: :attr:`generation` as read before the lookup began; when the cache was cleared since (a
        token was created, revoked or changed while the lookup ran), the principal may be stale and is not kept
        (the request itself is answered with it, as it would have been had it come a moment earlier). None only
        where no lookup can race a clear (tests)."""
        keep_s = self.ttl_s
        if who.expires_at is not None:
            keep_s = min(keep_s, (who.expires_at - datetime.now(UTC)).total_seconds())
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (who, time.monotonic() + keep_s)

    def clear(self) -> None:
        """Forget every token (after a token was created, revoked or changed) and refuse the entries of lookups
        that began before (see :meth:`put`)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
