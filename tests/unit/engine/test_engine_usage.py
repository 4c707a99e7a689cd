"""The fleet's use over time (stargate.engine.usage), on hand-computed cases: sample instants, GPUs held at each
instant (start counted, end not, unknown after now), IT power energised by day."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from stargate.domain import Building, Fleet, Provider, Site
from stargate.engine.usage import Held, energised_mw, gpus_held, micros, sample_instants, step_seconds

T = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
HOURLY = [T + i * H for i in range(5)]  # T, T+1h, ..., T+4h


def run(cluster: str, gpus: int, start: datetime, end: datetime | None) -> Held:
    """A run as the repository gives it: times in microseconds since 1970."""
    return cluster, gpus, micros(start), None if end is None else micros(end)


def test_instants_are_evenly_spaced_and_end_on_until() -> None:
    assert sample_instants(T, T + 4 * H, 5) == HOURLY
    assert step_seconds(T, T + 4 * H, 5) == 3600.0
    thirds = sample_instants(T, T + timedelta(seconds=1), 4)  # 1/3 s is no whole number of microseconds
    assert thirds == [
        T,
        T + timedelta(microseconds=333333),
        T + timedelta(microseconds=666667),
        T + timedelta(seconds=1),
    ]
    with pytest.raises(ValueError, match="expected at least 2"):
        sample_instants(T, T, 5)


def test_a_run_counts_from_its_start_and_not_at_its_end() -> None:
    runs = [
        run("a", 4, T + 0.5 * H, T + 2 * H),  # held at T+1h only: T+2h is its end
        run("a", 2, T + H, None),  # placed at T+1h exactly, still running
        run("b", 8, T + 3 * H, T + 3 * H),  # no time held at all
        run("gone", 1, T - H, T + H),  # a cluster no longer in the fleet: held at T only
        run("b", 16, T - 10 * H, T - 5 * H),  # over before the window
        run("b", 16, T + 5 * H, None),  # after the window
    ]
    got = gpus_held(runs, HOURLY, ["a", "b", "c"], known_until=T + 4 * H)
    assert got == {
        "a": [0, 6, 2, 2, 2],
        "b": [0, 0, 0, 0, 0],
        "c": [0, 0, 0, 0, 0],
        "gone": [1, 0, 0, 0, 0],
    }
    assert list(got) == ["a", "b", "c", "gone"]  # the fleet's order, then the others by id


def test_instants_after_now_are_unknown() -> None:
    runs = [run("a", 3, T, None)]
    assert gpus_held(runs, HOURLY, ["a"], known_until=T + 2 * H) == {"a": [3, 3, 3, None, None]}
    assert gpus_held(runs, HOURLY, ["a"], known_until=T + 2.5 * H) == {"a": [3, 3, 3, None, None]}
    assert gpus_held([], HOURLY, ["a"], known_until=T - H) == {"a": [None] * 5}


def test_runs_a_microsecond_apart_from_an_instant_are_told_apart() -> None:
    """Exact to the microsecond, even in year 9999 (a float timestamp there cannot tell a microsecond)."""
    assert micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005
    assert micros(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)) == -1_000_000
    late = datetime(9999, 12, 31, 20, tzinfo=UTC)
    at = [late, late + H]
    us = timedelta(microseconds=1)
    runs = [run("a", 1, late + us, None), run("a", 10, late - H, late + us), run("a", 100, late - H, late)]
    assert gpus_held(runs, at, ["a"], known_until=late + H) == {"a": [10, 1]}


def _fleet() -> Fleet:
    """Site 'camp' (owned; 100 MW at PUE 1.25: 80 MW IT) with buildings of 40 MW (energised 2026-01-01, planned a
    month earlier) and 30 MW (planned 2026-03-01); site 'cloud' (60 MW at PUE 1.2: 50 MW IT) without buildings;
    site 'open' with neither."""

    def building(bid: str, mw: float, planned: date, actual: date | None = None) -> Building:
        return Building(
            id=bid,
            site="camp",
            floor_area_sq_ft=1000,
            it_power_mw=mw,
            gpus=1000,
            gpu_model="H100-SXM",
            capex_usd=Decimal(1),
            planned_energization=planned,
            actual_energization=actual,
        )

    return Fleet(
        name="power",
        providers=[Provider(id="own", name="Own", kind="owned"), Provider(id="cl", name="Cloud", kind="cloud")],
        sites=[
            Site(id="camp", provider="own", region="r", power_mw=100, pue=1.25),
            Site(id="cloud", provider="cl", region="r", power_mw=60, pue=1.2),
            Site(id="open", provider="cl", region="r"),
        ],
        buildings=[
            building("b2", 30, date(2026, 3, 1)),
            building("b1", 40, date(2025, 12, 1), actual=date(2026, 1, 1)),
        ],
    )


def test_energised_power_steps_up_at_00_utc_of_each_buildings_day() -> None:
    at = [
        datetime(2025, 12, 15, tzinfo=UTC),  # after b1's planned day, before its actual one: nothing
        datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),  # b1's actual day
        datetime(2026, 2, 28, 23, tzinfo=UTC),
        datetime(2026, 3, 1, 12, tzinfo=UTC),  # b2's planned day
    ]
    got = energised_mw(_fleet(), at)
    assert got == {"camp": [0.0, 0.0, 40.0, 40.0, 70.0], "cloud": [50.0] * 5}  # 'open' is left out
