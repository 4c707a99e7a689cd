"""Role × endpoint matrix of the money routes, with the ``provider`` role (a token of Oracle, the holder of the
money fleet's right of first refusal, and one of CoreWeave): providers read their contracts and offers and answer
their own offers, nothing else; only admins raise requests, add quotes, override and reconcile; members and viewers
read requests, quotes, events, the budget and their team's costs."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from integration.server.money_support import Money, money_harness

ROLES = ("admin", "member", "viewer", "holder", "other")


@dataclass(frozen=True)
class Row:
    """One request and the status each role gets (in :data:`ROLES` order)."""

    method: str
    path: str
    statuses: tuple[int, int, int, int, int]
    body: dict[str, object] | None = None


REQUEST = {"gpu_model": "H100-SXM", "gpus": 8, "start": "2027-01-01", "term_days": 30}
QUOTE = {
    "provider": "coreweave",
    "site": "coreweave-us",
    "gpu_model": "B200",
    "gpus_per_node": 8,
    "price_per_gpu_hour_usd": "4",
    "valid_from": "2026-01-01",
}
MATRIX = [
    Row("GET", "/contracts", (200, 200, 200, 200, 200)),
    Row("GET", "/procurement/requests", (200, 200, 200, 403, 403)),
    Row("GET", "/procurement/requests/{rid}", (200, 200, 200, 403, 403)),
    Row("POST", "/procurement/requests", (201, 403, 403, 403, 403), REQUEST),
    Row("GET", "/procurement/offers", (200, 200, 200, 200, 200)),
    Row("POST", "/procurement/offers/{oid}/respond", (403, 403, 403, 200, 403), {"answer": "decline"}),
    Row("GET", "/procurement/quotes", (200, 200, 200, 403, 403)),
    Row("POST", "/procurement/quotes", (201, 403, 403, 403, 403), QUOTE),
    Row("POST", "/procurement/requests/{rid}/override", (409, 403, 403, 403, 403), {"reason": "x"}),
    Row("GET", "/procurement/events", (200, 200, 200, 200, 200)),
    Row("GET", "/budget", (200, 200, 200, 403, 403)),
    Row("GET", "/costs", (200, 200, 200, 403, 403)),
    Row("GET", "/costs/focus", (200, 200, 200, 403, 403)),
    Row("POST", "/costs/reconcile", (422, 403, 403, 403, 403)),
    Row("GET", "/jobs", (200, 200, 200, 403, 403)),
    Row("GET", "/fleet", (200, 200, 200, 403, 403)),
    Row("GET", "/tokens", (200, 403, 403, 403, 403)),
    Row("GET", "/whoami", (200, 200, 200, 200, 200)),
]


@pytest.fixture
def m(db_url: str, tmp_path: Path) -> Iterator[Money]:
    yield from money_harness(db_url, tmp_path / "home")


@pytest.mark.parametrize("role", ROLES)
def test_every_money_route_answers_each_role_as_the_matrix_says(m: Money, role: str) -> None:
    headers = {
        "admin": m.h.headers(),
        "member": m.h.headers("member", "alpha"),
        "viewer": m.h.headers("viewer", "alpha"),
        "holder": m.provider("oracle"),
        "other": m.provider("coreweave"),
    }[role]
    wrong = []
    for row in MATRIX:
        offer = m.request()["request"]["offer"]  # a fresh open offer to Oracle for every row
        path = row.path.format(rid=offer["request_id"], oid=offer["id"])
        response = m.call(row.method, path, headers, json=row.body)
        expected = row.statuses[ROLES.index(role)]
        if response.status_code != expected:
            wrong.append(f"{row.method} {row.path}: {response.status_code}, expected {expected}: {response.text[:120]}")
    assert wrong == []


def test_a_provider_token_needs_a_provider_of_the_fleet(m: Money) -> None:
    for body, words in (
        ({"name": "p", "role": "provider"}, "provider: found nothing"),
        ({"name": "p", "role": "provider", "provider": "nope"}, "provider: found 'nope'"),
        ({"name": "p", "role": "provider", "provider": "oracle", "team": "alpha"}, "team: found 'alpha'"),
        ({"name": "p", "role": "member", "team": "alpha", "provider": "oracle"}, "provider: found 'oracle'"),
    ):
        response = m.call("POST", "/tokens", json=body)
        assert response.status_code == 422 and response.json()["detail"].startswith(words), response.text
    made = m.ok("POST", "/tokens", json={"name": "p", "role": "provider", "provider": "oracle"})
    listed = {t["id"]: t for t in m.ok("GET", "/tokens")}
    assert (listed[made["id"]]["role"], listed[made["id"]]["provider"]) == ("provider", "oracle")
