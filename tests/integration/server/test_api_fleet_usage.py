"""``GET /api/v1/fleet/usage`` over HTTP: jobs placed and run by the real scheduler cycle show their GPUs at the
samples inside the time they held them and not outside (a cancelled job's up to its cancellation, unknown after
now), buildings' power from their day on, the same answer for every role but ``provider`` (403), located 422s."""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from integration.server.stargate_harness import TINY_FLEET, Harness, build_harness
from stargate.server.auth import Role
from stargate.server.deps import utc_now
from stargate.server.scheduling.loop import run_cycle
from stargate.server.services import tokens as token_service
from stargate.store import RunRow, parse_job_id
from stargate.store.models import FleetVersionRow

USAGE = "/api/v1/fleet/usage"
H = timedelta(hours=1)
OWNED = """
  - id: campus
    name: Own campus
    kind: owned
"""
SITES = """
  - id: camp-1
    provider: campus
    region: Abilene, TX
    power_mw: 100
    pue: 1.25
  - id: cloud-1
    provider: lab
    region: elsewhere
    power_mw: 60
    pue: 1.2
"""
BUILDINGS = """
buildings:
  - id: b-late
    site: camp-1
    floor_area_sq_ft: 1000
    it_power_mw: 30
    gpus: 500
    gpu_model: GB200
    capex_usd: 1000000
    planned_energization: "2027-01-01"
  - id: b-on
    site: camp-1
    floor_area_sq_ft: 1000
    it_power_mw: 40
    gpus: 500
    gpu_model: GB200
    capex_usd: 1000000
    planned_energization: "2025-12-01"
    actual_energization: "2026-01-10"
"""


def _fleet_file(tmp_path: Path) -> Path:
    """The tiny fleet (lab-h100: 2 × 4 H100-SXM, lab-gb200: 1 × 4 GB200 at site lab-1, no power declared) plus an
    owned campus (100 MW at PUE 1.25) with a 40 MW building energised on 2026-01-10 (planned 2025-12-01) and a 30 MW
    one planned for 2027-01-01, and a cloud site of 60 MW at PUE 1.2 without buildings."""
    text = TINY_FLEET.read_text(encoding="utf-8")
    text = text.replace("    executor: local\n", "    executor: local\n" + OWNED, 1)
    text = text.replace("    region: local\n", "    region: local\n" + SITES, 1)
    path = tmp_path / "usage-fleet.yaml"
    path.write_text(text + BUILDINGS, encoding="utf-8")
    return path


class Clock:
    """The time the API reads (``NowDep``)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)


@pytest.fixture
def h(db_url: str, tmp_path: Path) -> Iterator[tuple[Harness, Clock]]:
    harness = build_harness(db_url, tmp_path / "home", _fleet_file(tmp_path))
    clock = Clock()
    harness.app.dependency_overrides[utc_now] = lambda: clock.now
    try:
        yield harness, clock
    finally:
        harness.client.close()
        harness.ctx.db.close()


def _usage(harness: Harness, headers: dict[str, str] | None = None, **params: object) -> dict[str, Any]:
    response = harness.client.get(USAGE, params=params, headers=headers or harness.headers())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _job(harness: Harness, job_id: object) -> dict[str, Any]:
    data: dict[str, Any] = harness.client.get(f"/api/v1/jobs/{job_id}", headers=harness.headers()).json()
    return data


def _run_ended(harness: Harness, job_id: object) -> bool:
    with harness.ctx.db.read() as session:
        run = session.scalars(select(RunRow).where(RunRow.job_id == parse_job_id(str(job_id)))).one()
        return run.ended


def _cycle_until(harness: Harness, at: datetime, done: Callable[[], bool]) -> None:
    """Scheduler cycles at ``at`` until ``done`` (the executor runs the jobs in real time meanwhile)."""
    deadline = time.monotonic() + 15.0
    while not done():
        assert time.monotonic() < deadline, "timed out"
        run_cycle(harness.ctx, at)
        time.sleep(0.05)


def test_a_job_shows_its_gpus_while_placed_or_running_and_not_outside(h: tuple[Harness, Clock]) -> None:
    harness, clock = h
    short = harness.submit(gpus=4, gpu_models=["GB200"], command="true")["id"]
    long = harness.submit(gpus=2, gpu_models=["H100-SXM"], command="sleep 60")["id"]
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    assert run_cycle(harness.ctx, t0).placed == 2  # both runs placed at t0
    _cycle_until(harness, t0 + H, lambda: _job(harness, short)["status"] == "succeeded")  # its run ends at t0 + 1 h
    assert _job(harness, short)["finished_at"] == _iso(t0 + H)
    assert _job(harness, long)["status"] == "running"

    clock.now = t0 + 2 * H
    got = _usage(harness, since=_iso(t0 - H), until=_iso(t0 + 3 * H), points=9)  # every 30 min
    assert got["at"] == [_iso(t0 - H + i * H / 2) for i in range(9)]
    assert (got["since"], got["until"], got["now"], got["step_s"]) == (
        _iso(t0 - H),
        _iso(t0 + 3 * H),
        _iso(t0 + 2 * H),
        1800.0,
    )
    #                              t0-1h  -30m  t0  +30m  +1h  +1h30  +2h (now)  +2h30  +3h
    assert got["gpus_in_use"] == {
        "lab-h100": [0, 0, 2, 2, 2, 2, 2, None, None],
        "lab-gb200": [0, 0, 4, 4, 0, 0, 0, None, None],
    }
    assert got["gpus_total"] == {"lab-h100": 8, "lab-gb200": 4}
    assert got["energised_mw"] == {"camp-1": [40.0] * 9, "cloud-1": [50.0] * 9}  # lab-1 declares no power
    for role, team in (("member", "alpha"), ("viewer", "beta")):  # fleet-level figures: the same for every role
        assert _usage(harness, harness.headers(role, team), since=_iso(t0 - H), until=_iso(t0 + 3 * H), points=9) == got

    cancelled = harness.client.post(f"/api/v1/jobs/{long}/cancel", headers=harness.headers())  # at t0 + 2 h
    assert cancelled.status_code == 200, cancelled.text
    _cycle_until(harness, t0 + 5 * H, lambda: _run_ended(harness, long))  # its run is stopped at t0 + 5 h
    clock.now = t0 + 6 * H
    later = _usage(harness, since=_iso(t0), until=_iso(t0 + 6 * H), points=7)  # hourly
    assert later["gpus_in_use"]["lab-h100"] == [2, 2, 0, 0, 0, 0, 0]  # up to its cancellation, not its run's end


def test_buildings_count_from_their_day_and_the_buildout_lists_the_future(h: tuple[Harness, Clock]) -> None:
    harness, clock = h
    clock.now = datetime(2026, 1, 11, 12, tzinfo=UTC)
    got = _usage(harness, since="2026-01-09T00:00:00Z", until="2026-01-11T00:00:00Z", points=5)  # every 12 h
    assert got["energised_mw"]["camp-1"] == [0.0, 0.0, 40.0, 40.0, 40.0]  # b-on from 2026-01-10T00:00Z
    assert got["energised_mw"]["cloud-1"] == [50.0] * 5  # no buildings: 60 MW ÷ PUE 1.2
    assert got["gpus_in_use"] == {"lab-h100": [0] * 5, "lab-gb200": [0] * 5}
    ahead = _usage(harness, since="2026-12-31T00:00:00+02:00", until="2027-01-01T00:00:00-02:00", points=3)
    assert ahead["at"] == ["2026-12-30T22:00:00Z", "2026-12-31T12:00:00Z", "2027-01-01T02:00:00Z"]  # in UTC
    assert ahead["energised_mw"]["camp-1"] == [40.0, 40.0, 70.0]  # b-late from 2027-01-01T00:00Z
    assert ahead["gpus_in_use"]["lab-h100"] == [None] * 3  # after now: not known
    assert got["buildout"] == [
        {"building": "b-on", "site": "camp-1", "it_power_mw": 40.0, "gpus": 500, "energised_on": "2026-01-10"}
        | {"actual": True},
        {"building": "b-late", "site": "camp-1", "it_power_mw": 30.0, "gpus": 500, "energised_on": "2027-01-01"}
        | {"actual": False},
    ]


def test_the_default_window_is_the_last_24_hours(h: tuple[Harness, Clock]) -> None:
    harness, clock = h
    clock.now = datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    got = _usage(harness)
    assert (got["since"], got["until"]) == ("2026-04-30T12:00:00.250000Z", "2026-05-01T12:00:00.250000Z")
    assert len(got["at"]) == 200 and got["step_s"] == pytest.approx(86_400 / 199)
    only_until = _usage(harness, until="2026-03-01T00:00:00Z", points=2)
    assert only_until["at"] == ["2026-02-28T00:00:00Z", "2026-03-01T00:00:00Z"]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (
            {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "query.until: found '2026-01-01T00:00:00Z', expected a time after since (2026-01-02T00:00:00Z)",
        ),
        (
            {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "query.until: found '2026-01-01T00:00:00Z', expected a time after since (2026-01-01T00:00:00Z)",
        ),
        (
            {"since": "2026-06-01T00:00:00Z"},
            "query.since: found '2026-06-01T00:00:00Z', expected a time before until (now, 2026-05-01T00:00:00Z)",
        ),
        (
            {"since": "2025-01-01T00:00:00Z", "until": "2026-01-03T00:00:00Z"},
            "query.since: found '2025-01-01T00:00:00Z', 367.0 days before until (2026-01-03T00:00:00Z), expected a "
            "window of at most 366 days",
        ),
        ({"points": "1"}, "query.points: found '1', expected greater than or equal to 2"),
        ({"points": "1001"}, "query.points: found '1001', expected less than or equal to 1000"),
        ({"points": "many"}, "query.points: found 'many', expected a valid integer"),
        ({"since": "2026-01-01T00:00:00"}, "query.since: found '2026-01-01T00:00:00', expected"),
        ({"until": "tomorrow"}, "query.until: found 'tomorrow', expected a valid datetime"),
        (
            {"until": "0001-01-01T10:00:00Z"},
            "query.until: found '0001-01-01T10:00:00Z', expected a time at least 24 h after 0001-01-01T00:00:00Z",
        ),
        (
            {"until": "9999-12-31T23:00:00-05:00"},
            "query.until: found '9999-12-31T23:00:00-05:00', expected a time from 0001-01-01 to 9999-12-31 in UTC",
        ),
    ],
)
def test_bad_windows_get_a_located_422(h: tuple[Harness, Clock], params: dict[str, str], detail: str) -> None:
    harness, clock = h
    clock.now = datetime(2026, 5, 1, tzinfo=UTC)
    response = harness.client.get(USAGE, params=params, headers=harness.headers())
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail)
    if params.get("since") == "2026-01-01T00:00:00":  # a time without a zone is refused, as everywhere in the API
        assert "timezone" in response.json()["detail"]


def test_a_provider_token_is_refused_and_no_token_is_401(h: tuple[Harness, Clock]) -> None:
    harness, _ = h
    with harness.ctx.db.write() as session:
        _, secret = token_service.create(session, "lab-bot", None, Role.PROVIDER, datetime.now(UTC), provider="lab")
    refused = harness.client.get(USAGE, headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 403 and "role 'provider'" in refused.json()["detail"]
    assert harness.client.get(USAGE).status_code == 401


def test_a_fresh_database_without_a_fleet_is_404(db_url: str, tmp_path: Path) -> None:
    harness = build_harness(db_url, tmp_path / "home")
    try:
        with harness.ctx.db.write() as session:
            session.query(FleetVersionRow).delete()
        response = harness.client.get(USAGE, headers=harness.headers())
        assert response.status_code == 404 and response.json()["detail"] == "no fleet has been applied yet"
    finally:
        harness.client.close()
        harness.ctx.db.close()
