"""Figures for fleet show: months, energised power by month, totals, the --json document."""

from datetime import date
from pathlib import Path

from stargate.fleetfile import load_fleet, loads_fleet
from stargate.fleetfile.summary import (
    MAX_DEFAULT_MONTHS,
    counts,
    default_months,
    energized_mw_by_month,
    month_end,
    month_range,
    show_document,
    totals,
)

FLEET = """\
name: t
providers: [{id: own, name: Own, kind: owned}, {id: cloud, name: Cloud, kind: cloud}]
sites:
  - {id: campus, provider: own, region: r, power_mw: 300, pue: 1.5}
  - {id: region, provider: cloud, region: r}
buildings:
  - {id: b1, site: campus, floor_area_sq_ft: 1, it_power_mw: 100, gpus: 100, gpu_model: B200, capex_usd: 1,
     planned_energization: 2025-03-15}
  - {id: b2, site: campus, floor_area_sq_ft: 1, it_power_mw: 100, gpus: 100, gpu_model: B200, capex_usd: 1,
     planned_energization: 2025-08-01, actual_energization: 2025-05-31}
clusters:
  - {id: c1, site: campus, building: b1, gpu_model: B200, gpus_per_node: 8, nodes: 10, price_per_gpu_hour_usd: 2}
  - {id: c2, site: region, gpu_model: H200, gpus_per_node: 8, nodes: 4, price_per_gpu_hour_usd: 3, contract: k}
contracts:
  - {id: k, provider: cloud, kind: reserved, gpus: 32, price_per_gpu_hour_usd: 3, start: 2025-01-01,
     end: 2026-01-01, value_usd: '1000.10'}
"""


def test_month_helpers() -> None:
    """Months run across year ends; a month ends on its last day."""
    assert month_range(date(2025, 11, 20), 3) == ["2025-11", "2025-12", "2026-01"]
    assert month_end("2024-02") == date(2024, 2, 29)


def test_default_months_span_the_energisation_dates() -> None:
    """From the earliest to the latest energisation (actual dates win), or from --from for --months."""
    fleet = loads_fleet(FLEET)
    assert default_months(fleet) == ["2025-03", "2025-04", "2025-05"]
    assert default_months(fleet, date(2025, 1, 1), 2) == ["2025-01", "2025-02"]


def test_default_months_are_capped_and_fall_back_to_as_of() -> None:
    """A long span is capped; a fleet without buildings shows its as_of month, or none."""
    long = FLEET.replace("actual_energization: 2025-05-31", "actual_energization: 2035-05-31")
    assert len(default_months(loads_fleet(long))) == MAX_DEFAULT_MONTHS
    assert default_months(loads_fleet("name: t\nas_of: 2025-06-09\n")) == ["2025-06"]
    assert default_months(loads_fleet("name: t\n")) == []


def test_energized_mw_by_month_is_facility_power_at_month_end() -> None:
    """IT MW of energised buildings × PUE, capped by the envelope; None where not power-limited."""
    fleet = loads_fleet(FLEET)
    months = ["2025-02", "2025-03", "2025-05"]
    assert energized_mw_by_month(fleet, "campus", months) == {"2025-02": 0.0, "2025-03": 150.0, "2025-05": 300.0}
    assert energized_mw_by_month(fleet, "region", months) == dict.fromkeys(months)


def test_totals_and_counts() -> None:
    """GPUs by model and provider; money summed exactly."""
    fleet = loads_fleet(FLEET)
    assert totals(fleet) == {
        "gpus": 112,
        "gpus_by_model": {"B200": 80, "H200": 32},
        "gpus_by_provider": {"cloud": 32, "own": 80},
        "contract_value_usd": "1000.10",
        "committed_spend_usd": "0",
    }
    assert counts(fleet)["gpus"] == 112 and counts(fleet)["buildings"] == 2


def test_show_document_adds_computed_fields() -> None:
    """The --json document is the model dump plus per-site, per-building, per-cluster and total figures."""
    doc = show_document(loads_fleet(FLEET), ["2025-03"])
    assert doc["sites"][0]["energized_mw_by_month"] == {"2025-03": 150.0}
    assert doc["buildings"][1]["energized_on"] == "2025-05-31"
    assert [c["gpus"] for c in doc["clusters"]] == [80, 32]
    assert doc["months"] == ["2025-03"] and doc["totals"]["gpus"] == 112
    assert doc["contracts"][0]["value_usd"] == "1000.10"


def test_example_abilene_power_grows_with_its_buildings() -> None:
    """In the bundled example, Abilene's energised power never falls and stays within its envelope."""
    fleet = load_fleet(Path("examples/stargate-2025"))
    series = [v for v in energized_mw_by_month(fleet, "abilene", default_months(fleet)).values() if v is not None]
    assert series == sorted(series) and series[-1] <= 1200
