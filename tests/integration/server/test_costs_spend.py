"""A driver the server builds from the database starts from what ended runs spent under each commitment (charged as
the ledger charges them), so the marginal price of a commitment does not restart at zero after a restart."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from integration.server.money_support import Money, money_harness
from stargate.domain import Contract, Fleet
from stargate.server.scheduling import run_cycle
from stargate.server.scheduling.snapshot import spent_by_contract
from stargate.server.services import fleet as fleet_service
from stargate.server.terms import engine_seconds
from stargate.store import RunRow, parse_job_id

T0 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)


@pytest.fixture
def m(db_url: str, tmp_path: Path) -> Iterator[Money]:
    yield from money_harness(db_url, tmp_path / "home")


def _with_commitment(m: Money) -> Fleet:
    with m.h.ctx.db.write() as session:
        _, fleet = m.h.ctx.fleet.get(session)
        commit = Contract.model_validate(
            {
                "id": "lab-commit",
                "provider": "lab",
                "kind": "commitment",
                "start": "2026-01-01",
                "end": "2027-12-31",
                "committed_spend_usd": "1000000",
                "price_per_gpu_hour_usd": "2.5",
            }
        )
        grown = fleet.model_copy(update={"contracts": [*fleet.contracts, commit]})
        fleet_service.record(session, grown, "test", datetime.now(UTC))
        return grown


def _ended_run(m: Money, contract: str | None, hours: float) -> None:
    job = m.h.submit(team="alpha")
    row_id = parse_job_id(str(job["id"]))
    run = {
        "job_id": row_id,
        "attempt": 0,
        "executor": "local",
        "cluster": "lab-h100",
        "created_at": T0,
        "ended": True,
        "ended_at": T0 + timedelta(hours=hours),
        "gpus": 4,
        "price_usd_per_gpu_hour": Decimal("2.5"),
        "contract": contract,
        "started_at": T0,
    }
    m.ok("POST", f"/jobs/{job['id']}/cancel")  # final, so the scheduler leaves it (and its run) alone
    with m.h.ctx.db.write() as session:
        session.add(RunRow(**run))


def test_a_rebuilt_driver_starts_from_the_spend_of_ended_runs(m: Money) -> None:
    fleet = _with_commitment(m)
    _ended_run(m, "lab-commit", 1.5)  # 4 GPUs × 2.5 USD × 1.5 h = 15 USD
    _ended_run(m, "oracle-frame", 2)  # not a commitment: not read
    _ended_run(m, None, 1)
    with m.h.ctx.db.read() as session:
        assert spent_by_contract(session, fleet) == {"lab-commit": Decimal("15")}
    now = datetime.now(UTC)
    run_cycle(m.h.ctx, now)
    kept = m.h.ctx.loop.driver
    assert kept is not None
    assert kept.driver.spent("lab-commit", engine_seconds(now)) == Decimal("15")
