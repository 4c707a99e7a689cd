"""Checks of a plan scenario against its fleet: each problem with its path in the scenario, found and expected."""

from datetime import date
from typing import Any

from stargate.domain.planning import PlanScenario
from stargate.engine.plan_checks import scenario_problems
from stargate.fleetfile import loads_fleet

FLEET = loads_fleet(
    """
name: t
providers:
  - {id: own, name: Own, kind: owned}
  - {id: cloud, name: Cloud, kind: cloud}
sites:
  - {id: campus, provider: own, region: r, power_mw: 120}
  - {id: region, provider: cloud, region: r}
"""
)

GOOD: dict[str, Any] = {
    "name": "s",
    "start": "2025-01",
    "months": 24,
    "demand": [
        {"id": "d", "kind": "training", "gpu_model": "GB200", "growth": {"start_value": 10, "monthly_growth": 0.1}}
    ],
    "market": {"options": [{"id": "m", "provider": "cloud", "gpu_model": "GB200", "price_per_gpu_hour_usd": 5}]},
    "build": [
        {
            "id": "b",
            "site": "campus",
            "gpu_model": "GB200",
            "it_power_mw": 50,
            "capex_usd_per_mw": 1e7,
            "build_months": 12,
        }
    ],
}


def _problems(**changes: Any) -> list[tuple[tuple[str | int, ...], str, str]]:
    doc = {**GOOD, **changes}
    return [(p.path, p.found, p.expected) for p in scenario_problems(PlanScenario.model_validate(doc), FLEET)]


def _option(**changes: Any) -> dict[str, Any]:
    return {"options": [{**GOOD["market"]["options"][0], **changes}]}


def _build(**changes: Any) -> list[dict[str, Any]]:
    return [{**GOOD["build"][0], **changes}]


def test_a_good_scenario_has_no_problem() -> None:
    assert _problems() == []


def test_unknown_gpu_models_providers_and_sites_are_located() -> None:
    demand = [{**GOOD["demand"][0], "gpu_model": "TPU-v9"}]
    got = _problems(demand=demand, market=_option(provider="aws", gpu_model="X1"), build=_build(site="nowhere"))
    paths = [p for p, _, _ in got]
    assert paths == [
        ("demand", 0, "gpu_model"),
        ("market", "options", 0, "provider"),
        ("market", "options", 0, "gpu_model"),
        ("build", 0, "site"),
    ]
    assert got[0][1] == "'TPU-v9'" and "GB200" in got[0][2]
    assert got[1][1] == "'aws'" and got[1][2] == "a provider of the fleet: cloud, own"
    assert got[3][2] == "a site of the fleet: campus, region"


def test_a_build_site_must_belong_to_an_owned_provider() -> None:
    ((path, found, expected),) = _problems(build=_build(site="region"))
    assert path == ("build", 0, "site")
    assert "'region'" in found and "'cloud'" in found
    assert expected == "a site of an owned provider: campus"


def test_months_the_horizon_cannot_use() -> None:
    points = [{"month": "2024-11", "value": 5}, {"month": "2025-02", "value": 6}]
    demand = [{"id": "d", "kind": "training", "gpu_model": "GB200", "points": points}]
    got = _problems(
        demand=demand,
        market={
            "options": [
                {**GOOD["market"]["options"][0], "available_until": "2024-12"},
                {**GOOD["market"]["options"][0], "id": "n", "available_from": "2027-01"},
                {**GOOD["market"]["options"][0], "id": "o", "available_from": "2025-06", "available_until": "2025-05"},
            ]
        },
        build=_build(earliest_start="2027-01"),
    )
    assert [p for p, _, _ in got] == [
        ("demand", 0, "points", 0, "month"),
        ("market", "options", 0, "available_until"),
        ("market", "options", 1, "available_from"),
        ("market", "options", 2, "available_until"),
        ("build", 0, "earliest_start"),
    ]
    assert got[0][1:] == ("2024-11", "a month from 2025-01 on (the horizon's start)")
    assert got[3][2] == "a month from available_from (2025-06) on"
    assert got[4][2] == "a month up to 2026-12 (the horizon's last)"


def test_demand_past_the_fleet_bound_is_refused_once_with_the_month() -> None:
    demand = [
        {"id": "d", "kind": "training", "gpu_model": "GB200", "growth": {"start_value": 1e6, "monthly_growth": 1}}
    ]
    ((path, found, expected),) = _problems(demand=demand)
    assert path == ("demand", 0)
    assert found == "128,000,000 GPUs of GB200 in 2025-08"
    assert expected.startswith("at most 100,000,000 GPUs in a month")


def test_pflop_days_are_bounded_after_conversion() -> None:
    """10^12 PFLOP-days a month is ~10^10 GB200 (2,500 TFLOP/s): past the bound."""
    demand = [
        {
            "id": "d",
            "kind": "training",
            "gpu_model": "GB200",
            "unit": "pflop_days",
            "points": [{"month": "2025-01", "value": 1e12}],
        }
    ]
    ((path, found, _),) = _problems(demand=demand)
    assert path == ("demand", 0) and "GPUs of GB200 in 2025-01" in found


def test_fit_series_are_checked_only_with_their_history() -> None:
    demand = [{"id": "h", "kind": "training", "gpu_model": "GB200", "fit": {}}]
    scenario = PlanScenario.model_validate({**GOOD, "demand": demand})
    assert scenario_problems(scenario, FLEET) == []  # the server supplies the history later
    thin = {"h": [(date(2024, 1, 1), 5.0)]}
    ((problem),) = scenario_problems(scenario, FLEET, thin)
    assert problem.path == ("demand", 0, "fit")
    assert "1 month with use" in problem.found and "at least 2" in problem.expected
    huge = {"h": [(date(2024, 1, 1), 1e7), (date(2024, 2, 1), 1e8)]}
    ((problem),) = scenario_problems(scenario, FLEET, huge)
    assert problem.path == ("demand", 0) and "GPUs of GB200" in problem.found


BUILT = loads_fleet(
    """
name: t
providers:
  - {id: own, name: Own, kind: owned}
sites:
  - {id: campus, provider: own, region: r, power_mw: 120}
  - {id: open, provider: own, region: r}
buildings:
  - {id: b1, site: campus, floor_area_sq_ft: 1000, it_power_mw: 30, gpus: 100, gpu_model: GB200, capex_usd: 1,
     planned_energization: 2024-01-01}
"""
)


def _build_problems(fleet: Any, **changes: Any) -> list[tuple[tuple[str | int, ...], str, str]]:
    doc = {**GOOD, "market": {"options": []}, "build": _build(**changes)}
    return [(p.path, p.found, p.expected) for p in scenario_problems(PlanScenario.model_validate(doc), fleet)]


def test_a_building_larger_than_its_sites_headroom_can_never_be_built() -> None:
    # campus: 120 MW ÷ PUE 1.2 = 100 MW of IT power; the fleet's building uses 30 MW: 70 MW are left.
    assert _build_problems(FLEET, it_power_mw=100) == []
    ((path, found, expected),) = _build_problems(FLEET, it_power_mw=100.5)
    assert path == ("build", 0, "it_power_mw") and found == "100.5 MW for one building"
    assert expected.startswith("at most 100.0 MW, the IT power headroom of the site 'campus': 120 MW ÷ PUE 1.2")
    assert _build_problems(BUILT, it_power_mw=70) == []
    ((path, found, expected),) = _build_problems(BUILT, it_power_mw=71)
    assert path == ("build", 0, "it_power_mw")
    assert "at most 70.0 MW" in expected and "− 30 MW of its buildings" in expected
    assert _build_problems(BUILT, site="open", it_power_mw=5_000) == []  # no power envelope: unlimited


def test_a_building_whose_power_feeds_no_gpu_can_never_be_built() -> None:
    ((path, found, expected),) = _build_problems(FLEET, it_power_mw=0.001)  # 1 kW: not one GB200 at PUE 1.2
    assert path == ("build", 0, "it_power_mw")
    assert found.startswith("0.001 MW, which feeds 0 GPUs of GB200 (")
    assert expected.startswith("at least 0.00") and expected.endswith("MW (one GPU), or `gpus` given")
    assert _build_problems(FLEET, it_power_mw=0.001, gpus=1) == []  # GPUs given: not derived from power
