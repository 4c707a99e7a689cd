"""Cross-entity rules of a fleet: one test per rule, asserting the exact path, found and expected."""

import copy
from collections.abc import Callable
from typing import Any

import pytest

from stargate.domain import Fleet, Problem, fleet_problems

BASE: dict[str, Any] = {
    "name": "t",
    "providers": [{"id": "own", "name": "Own", "kind": "owned"}, {"id": "cloud", "name": "Cloud", "kind": "cloud"}],
    "sites": [
        {"id": "campus", "provider": "own", "region": "r", "power_mw": 300, "pue": 1.5},
        {"id": "region", "provider": "cloud", "region": "r"},
    ],
    "buildings": [
        {"id": "b1", "site": "campus", "floor_area_sq_ft": 1, "it_power_mw": 100, "gpus": 1000, "gpu_model": "B200",
         "capex_usd": 1, "planned_energization": "2025-03-01"},
    ],
    "clusters": [
        {"id": "c1", "site": "campus", "building": "b1", "gpu_model": "B200", "gpus_per_node": 8, "nodes": 10,
         "price_per_gpu_hour_usd": 2},
        {"id": "c2", "site": "region", "gpu_model": "H200", "gpus_per_node": 8, "nodes": 4,
         "price_per_gpu_hour_usd": 3, "contract": "k"},
    ],
    "contracts": [
        {"id": "k", "provider": "cloud", "kind": "reserved", "gpus": 32, "price_per_gpu_hour_usd": 3,
         "start": "2025-01-01", "end": "2025-12-31",
         "right_of_first_refusal": {"holder": "cloud", "response_window_days": 30, "valid_from": "2025-01-01",
                                    "valid_until": "2025-06-30"},
         "exclusivity": {"until": "2025-12-31"}},
    ],
    "budget": {"initial_usd": 10, "ceiling_usd": 20, "start": "2025-01-01", "end": "2029-01-01"},
    "teams": [{"id": "research", "name": "Research"}],
    "queues": [{"id": "q", "team": "research",
                "quotas": [{"gpu_model": "B200", "gpus": 8}, {"gpu_model": "*", "gpus": 8}],
                "priority_classes": ["normal", "high"], "default_priority_class": "normal"}],
}  # fmt: skip

Mutation = Callable[[dict[str, Any]], None]


def _problems(change: Mutation) -> list[Problem]:
    data = copy.deepcopy(BASE)
    change(data)
    return fleet_problems(Fleet.model_validate(data))


def test_base_fleet_is_sound() -> None:
    """The fixture itself has no problem (so each case below shows exactly its rule)."""
    assert fleet_problems(Fleet.model_validate(BASE)) == []


def _set(path: tuple[str | int, ...], value: Any) -> Mutation:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _append(section: str, item: dict[str, Any]) -> Mutation:
    return lambda data: data[section].append(item)


CASES: dict[str, tuple[Mutation, Problem]] = {
    "duplicate provider id": (
        _append("providers", {"id": "own", "name": "Again", "kind": "owned"}),
        Problem(("providers", 2, "id"), "'own'", "an id not used by another entry of 'providers'"),
    ),
    "site names unknown provider": (
        _set(("sites", 1, "provider"), "azure"),
        Problem(("sites", 1, "provider"), "'azure'", "the id of a provider (cloud, own)"),
    ),
    "building on unknown site": (
        _set(("buildings", 0, "site"), "nowhere"),
        Problem(("buildings", 0, "site"), "'nowhere'", "the id of a site (campus, region)"),
    ),
    "building on a cloud site": (
        lambda d: (_set(("buildings", 0, "site"), "region")(d), _set(("clusters", 0, "site"), "region")(d)),
        Problem(("buildings", 0, "site"), "'region' (a cloud provider's site)", "a site of an owned provider"),
    ),
    "cluster GPU model not in catalogue": (
        _set(("clusters", 1, "gpu_model"), "A100"),
        Problem(("clusters", 1, "gpu_model"), "'A100'",
                "the id of a GPU model in the catalogue (B200, GB200, H100-SXM, H200, MI300X)"),
    ),
    "cluster in a building of another site": (
        lambda d: d["buildings"].append({**d["buildings"][0], "id": "b2", "site": "campus"}) or
        d["sites"].append({"id": "campus2", "provider": "own", "region": "r"}) or
        _set(("clusters", 0, "site"), "campus2")(d),
        Problem(("clusters", 0, "building"), "'b1' (at site 'campus')", "a building at site 'campus2'"),
    ),
    "cluster model differs from its building": (
        _set(("clusters", 0, "gpu_model"), "GB200"),
        Problem(("clusters", 0, "gpu_model"), "'GB200'", "'B200', the model building 'b1' holds"),
    ),
    "contract with unknown provider": (
        lambda d: d["contracts"].append({**d["contracts"][0], "id": "k2", "provider": "nobody"}),
        Problem(("contracts", 1, "provider"), "'nobody'", "the id of a provider (cloud, own)"),
    ),
    "clause holder unknown": (
        _set(("contracts", 0, "right_of_first_refusal", "holder"), "msft"),
        Problem(("contracts", 0, "right_of_first_refusal", "holder"), "'msft'", "the id of a provider (cloud, own)"),
    ),
    "queue names unknown priority class": (
        _set(("queues", 0, "priority_classes"), ["normal", "urgent"]),
        Problem(("queues", 0, "priority_classes", 1), "'urgent'", "the id of a priority class (high, low, normal)"),
    ),
    "default priority class outside the queue's own": (
        _set(("queues", 0, "default_priority_class"), "low"),
        Problem(("queues", 0, "default_priority_class"), "'low'", "one of the queue's own priority_classes"),
    ),
    "two quotas for one model": (
        lambda d: d["queues"][0]["quotas"].append({"gpu_model": "B200", "gpus": 1}),
        Problem(("queues", 0, "quotas", 2, "gpu_model"), "'B200' again", "one quota per GPU model"),
    ),
    "buildings exceed the site envelope": (
        _set(("sites", 0, "power_mw"), 120),
        Problem(("sites", 0, "power_mw"), "120 MW, but its buildings draw 150.0 MW (100.0 MW IT × PUE 1.5)",
                "at least 150.0 MW, or buildings that fit the envelope"),
    ),
    "clusters hold more GPUs than the building": (
        _set(("buildings", 0, "gpus"), 50),
        Problem(("buildings", 0, "gpus"), "50 GPUs, but its clusters hold 80 GPUs", "at least 80 GPUs"),
    ),
    "building GPUs draw more than its IT power": (
        _set(("buildings", 0, "it_power_mw"), 0.5),
        Problem(("buildings", 0, "it_power_mw"), "0.5 MW, but 1,000 B200 GPUs × 1000 W draw 1.0 MW",
                "at least 1.0 MW of IT power, or fewer GPUs"),
    ),
    "loose clusters exceed the site envelope": (
        _set(("sites", 1, "power_mw"), 0.01),
        Problem(("sites", 1, "power_mw"),
                "0.01 MW, but its clusters and buildings draw 0.0269 MW (0.0224 MW IT × PUE 1.2)",
                "at least 0.0269 MW, or fewer GPUs at the site"),
    ),
    "cluster under another provider's contract": (
        lambda d: d["clusters"].append({**d["clusters"][0], "id": "c3", "building": None, "contract": "k"})
        or _set(("contracts", 0, "gpus"), 200)(d),
        Problem(("clusters", 2, "contract"), "'k' (a contract with 'cloud')",
                "a contract with 'own', the provider of site 'campus'"),
    ),
    "cluster model differs from its contract": (
        _set(("contracts", 0, "gpu_model"), "GB200"),
        Problem(("clusters", 1, "gpu_model"), "'H200'", "'GB200', the model contract 'k' covers"),
    ),
    "cluster online outside its contract's term": (
        _set(("clusters", 1, "online_until"), "2026-06-30"),
        Problem(("clusters", 1, "online_until"), "2026-06-30",
                "a date inside contract 'k' term 2025-01-01 → 2025-12-31"),
    ),
    "reserved GPUs fewer than the clusters under it": (
        _set(("contracts", 0, "gpus"), 16),
        Problem(("contracts", 0, "gpus"), "16 GPUs, but clusters under it hold 32 GPUs", "at least 32 GPUs reserved"),
    ),
    "cluster online before its building": (
        _set(("clusters", 0, "online_from"), "2025-01-01"),
        Problem(("clusters", 0, "online_from"), "2025-01-01, before building 'b1' is energised (2025-03-01)",
                "a date on or after its building's energisation"),
    ),
    "cluster online window reversed": (
        lambda d: d["clusters"][1].update(online_from="2025-06-01", online_until="2025-05-01"),
        Problem(("clusters", 1, "online_until"), "online_until 2025-05-01 before online_from 2025-06-01",
                "online_until on or after online_from"),
    ),
    "budget ceiling below initial": (
        _set(("budget", "ceiling_usd"), 5),
        Problem(("budget", "ceiling_usd"), "5 USD, below initial_usd 10 USD",
                "a ceiling at least the initial envelope"),
    ),
    "clause starts before the term": (
        _set(("contracts", 0, "right_of_first_refusal", "valid_from"), "2024-12-01"),
        Problem(("contracts", 0, "right_of_first_refusal", "valid_from"), "2024-12-01",
                "a date inside the contract's term 2025-01-01 → 2025-12-31"),
    ),
    "exclusivity past the term": (
        _set(("contracts", 0, "exclusivity", "until"), "2026-01-01"),
        Problem(("contracts", 0, "exclusivity", "until"), "2026-01-01",
                "a date inside the contract's term 2025-01-01 → 2025-12-31"),
    ),
    "commitment without spend": (
        _set(("contracts", 0, "kind"), "commitment"),
        Problem(("contracts", 0, "committed_spend_usd"), "nothing",
                "the minimum spend in USD (a 'commitment' contract)"),
    ),
    "spot without a price": (
        lambda d: d["contracts"].append({"id": "s", "provider": "cloud", "kind": "spot", "start": "2025-01-01",
                                         "end": "2025-02-01"}),
        Problem(("contracts", 1, "price_per_gpu_hour_usd"), "nothing",
                "a price per GPU-hour in USD (a 'spot' contract)"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_rule_reports_exact_problem(case: tuple[Mutation, Problem]) -> None:
    """Breaking one rule gives exactly that rule's problem."""
    change, expected = case
    assert _problems(change) == [expected]


def test_problem_dotted_path() -> None:
    """Paths print as clusters[3].gpu_model; the empty path is the document."""
    assert Problem(("clusters", 3, "gpu_model"), "", "").dotted() == "clusters[3].gpu_model"
    assert Problem((), "", "").dotted() == "(document)"
