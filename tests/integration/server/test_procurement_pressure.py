"""The scheduler's procurement step: persistent queue pressure (the kept driver's waiting GPUs) raises a capacity
request once it has held ``sustain_hours``, the market awards it, and the award is a new fleet version; the
cooldown keeps a second request from being raised."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from integration.server.money_support import Money, money_harness
from stargate.domain import PressureSettings
from stargate.server.scheduling import procure
from stargate.server.services import fleet as fleet_service

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def m(db_url: str, tmp_path: Path) -> Iterator[Money]:
    yield from money_harness(db_url, tmp_path / "home")


class _Waiting:
    """A stand-in for the kept driver: how many GPUs wait, by model."""

    def __init__(self) -> None:
        self.gpus: dict[str, int] = {}
        self.asked: list[float] = []

    def waiting_gpus(self, now: float, min_wait_s: float) -> dict[str, int]:
        self.asked.append(min_wait_s)
        return dict(self.gpus)


def test_pressure_raises_a_request_that_the_market_awards(m: Money) -> None:
    pressure = PressureSettings(
        min_waiting_gpus=8, min_wait_hours=1, sustain_hours=2, block_gpus=8, term_days=30, lead_time_days=14
    )
    with m.h.ctx.db.write() as session:
        _, fleet = m.h.ctx.fleet.get(session)
        grown = fleet.model_copy(update={"procurement": fleet.procurement.model_copy(update={"pressure": pressure})})
        fleet_service.record(session, grown, "test", datetime.now(UTC))
    driver = _Waiting()
    m.h.ctx.loop.driver = cast(Any, SimpleNamespace(driver=driver, version=""))
    driver.gpus = {"H100-SXM": 12}

    assert procure.step(m.h.ctx, T0).raised == 0  # pressure begins
    assert driver.asked == [3600.0]
    assert procure.step(m.h.ctx, T0 + timedelta(hours=1)).raised == 0
    done = procure.step(m.h.ctx, T0 + timedelta(hours=2))

    assert (done.raised, done.awards) == (1, 1)
    (req,) = m.ok("GET", "/procurement/requests")
    assert (req["raised_by"], req["actor"], req["gpu_model"], req["gpus"]) == ("pressure", "pressure", "H100-SXM", 16)
    assert req["state"] == "awarded" and req["award"]["provider"] == "coreweave"
    assert req["start"] == "2026-12-15"  # raise day + lead time
    fleet_now = m.ok("GET", "/fleet")
    assert req["award"]["fleet_version"] == fleet_now["version"]
    assert any(c["id"] == f"award-{req['id']}-h100-sxm" for c in fleet_now["fleet"]["clusters"])
    assert procure.step(m.h.ctx, T0 + timedelta(hours=5)).raised == 0  # cooldown: no second request
    assert len(m.ok("GET", "/procurement/requests")) == 1


def test_no_pressure_settings_no_requests(m: Money) -> None:
    driver = _Waiting()
    driver.gpus = {"H100-SXM": 10_000}
    m.h.ctx.loop.driver = cast(Any, SimpleNamespace(driver=driver, version=""))
    for hours in range(0, 200, 50):
        assert procure.step(m.h.ctx, T0 + timedelta(hours=hours)).raised == 0
    assert driver.asked == [] and m.ok("GET", "/procurement/requests") == []
