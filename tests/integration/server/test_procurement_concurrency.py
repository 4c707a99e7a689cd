"""Procurement steps at the same time take turns: concurrent awards each keep their contract and cluster in the
fleet (a step reads the fleet only once it holds the locks), and of several answers to one offer exactly one wins,
the others get 409. Meaningful on PostgreSQL (SQLite writers queue anyway)."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from integration.server.money_support import Money, money_harness
from stargate.server.auth import Principal, Role
from stargate.server.errors import ConflictError
from stargate.server.schemas_money import CapacityRequestIn, RespondIn
from stargate.server.services import procurement as service

THREADS = 6
ADMIN = Principal(token_id="t-admin", name="admin", team=None, role=Role.ADMIN)
ORACLE = Principal(token_id="t-oracle", name="oracle-bot", team=None, role=Role.PROVIDER, provider="oracle")


@pytest.fixture
def m(db_url: str, tmp_path: Path) -> Iterator[Money]:
    yield from money_harness(db_url, tmp_path / "home")


def test_concurrent_awards_each_keep_their_contract_and_cluster(m: Money) -> None:
    body = CapacityRequestIn.model_validate({"gpu_model": "H100-SXM", "gpus": 8, "start": "2027-01-01", "term_days": 1})

    def raise_one(_: int) -> str:
        with m.h.ctx.db.write() as session:
            step = service.raise_request(session, ADMIN, body, m.now)
        assert step.request.award is not None
        return step.request.award.contract_id

    with ThreadPoolExecutor(THREADS) as pool:
        contracts = set(pool.map(raise_one, range(THREADS)))

    fleet = m.ok("GET", "/fleet")["fleet"]
    assert len(contracts) == THREADS
    assert contracts <= {c["id"] for c in fleet["contracts"]}
    assert {f"{c}-h100-sxm" for c in contracts} <= {c["id"] for c in fleet["clusters"]}


def test_of_concurrent_answers_to_one_offer_exactly_one_wins(m: Money) -> None:
    offer = m.request()["request"]["offer"]

    def answer(n: int) -> str:
        body = RespondIn(answer="match" if n % 2 else "decline")
        try:
            with m.h.ctx.db.write() as session:
                service.respond(session, ORACLE, offer["id"], body, m.now)
        except ConflictError:
            return "409"
        return "ok"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = sorted(pool.map(answer, range(THREADS)))

    assert outcomes == ["409"] * (THREADS - 1) + ["ok"]
    kinds = [e["kind"] for e in m.ok("GET", f"/procurement/events?request_id={offer['request_id']}")["items"]]
    assert kinds.count("matched") + kinds.count("declined") == 1 and kinds.count("awarded") == 1
