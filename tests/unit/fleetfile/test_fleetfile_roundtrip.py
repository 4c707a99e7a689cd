"""Property: any valid fleet survives dump → load unchanged, and dumping is stable."""

from pathlib import Path

from fleet_strategies import fleets
from hypothesis import HealthCheck, given, settings

from stargate.domain import Fleet, fleet_problems
from stargate.fleetfile import dump_fleet, load_fleet, loads_fleet


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_dump_then_load_gives_the_same_fleet(fleet: Fleet) -> None:
    """load(dump(fleet)) == fleet, and dumping the loaded fleet gives the same text."""
    assert fleet_problems(fleet) == []  # the strategy only builds sound fleets
    text = dump_fleet(fleet)
    again = loads_fleet(text)
    assert again == fleet
    assert dump_fleet(again) == text


def test_example_round_trips_through_a_file(tmp_path: Path) -> None:
    """The bundled example, dumped to one file and loaded back, is equal to the directory it came from."""
    fleet = load_fleet(Path("examples/stargate-2025"))
    path = tmp_path / "fleet.yaml"
    path.write_text(dump_fleet(fleet), encoding="utf-8")
    assert load_fleet(path) == fleet


def test_dump_leaves_out_defaults_and_writes_dates_and_money_plainly() -> None:
    """Defaults are omitted; dates are ISO; money keeps every digit as a plain number, written or quoted."""
    fleet = loads_fleet(
        "name: t\nproviders: [{id: c, name: C, kind: cloud}]\n"
        "budget: {initial_usd: 12345678901234.123456, ceiling_usd: '2.5e13', start: 2025-01-21, end: 2029-01-20}\n"
    )
    assert fleet.budget is not None and str(fleet.budget.initial_usd) == "12345678901234.123456"
    text = dump_fleet(fleet)
    assert "executor" not in text and "priority_classes" not in text
    assert "initial_usd: 12345678901234.123456\n" in text
    assert "ceiling_usd: 25000000000000\n" in text
    assert "start: 2025-01-21\n" in text
    assert loads_fleet(text) == fleet
