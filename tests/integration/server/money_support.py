"""Helpers of the procurement and cost tests: a harness over the money fleet with a clock the API reads, provider
tokens, and row counts to check that a refused step wrote nothing.

Imported as ``integration.server.money_support``.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from integration.server.stargate_harness import Harness, build_harness
from stargate.server.auth import Role
from stargate.server.deps import utc_now
from stargate.server.services import tokens as token_service
from stargate.store.models import FleetVersionRow
from stargate.store.repositories import procurement as repo

MONEY_FLEET = Path(__file__).parent / "fleet" / "money.yaml"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class Money:
    """A harness over the money fleet, its clock (``now``, read by every API call) and helpers."""

    h: Harness
    now: datetime = START

    def tick(self, **delta: float) -> datetime:
        """Move the clock on."""
        self.now += timedelta(**delta)
        return self.now

    def provider(self, provider: str) -> dict[str, str]:
        """Authorization headers of a provider token for ``provider``."""
        key = ("provider", provider)
        if key not in self.h._tokens:
            with self.h.ctx.db.write() as session:
                _, self.h._tokens[key] = token_service.create(
                    session, f"{provider}-bot", None, Role.PROVIDER, datetime.now(UTC), provider=provider
                )
        return {"Authorization": f"Bearer {self.h._tokens[key]}"}

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """One API call (admin by default); the response."""
        return self.h.client.request(method, f"/api/v1{path}", headers=headers or self.h.headers(), **kwargs)

    def ok(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """One API call that must succeed; its JSON."""
        response = self.call(method, path, headers, **kwargs)
        assert response.is_success, response.text
        return response.json()

    def request(self, **body: Any) -> dict[str, Any]:
        """Raise a capacity request as admin (defaults: 8 GB200 from 2027-01-01 for 30 days); the step's JSON."""
        fields = {"gpu_model": "GB200", "gpus": 8, "start": "2027-01-01", "term_days": 30, "reason": "test"} | body
        step: dict[str, Any] = self.ok("POST", "/procurement/requests", json=fields)
        return step

    def rows(self) -> dict[str, int]:
        """Rows per procurement table and fleet versions."""
        with self.h.ctx.db.read() as session:
            counts = repo.counts(session)
            counts["fleet_versions"] = session.query(FleetVersionRow).count()
            return counts


def money_harness(db_url: str, home: Path) -> Iterator[Money]:
    """A :class:`Money` over a fresh database; closed afterwards."""
    h = build_harness(db_url, home, MONEY_FLEET)
    m = Money(h)
    h.app.dependency_overrides[utc_now] = lambda: m.now
    try:
        yield m
    finally:
        h.client.close()
        h.ctx.db.close()
