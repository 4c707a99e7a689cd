"""The domain models: field rules, defaults and the small behaviours they carry."""

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from stargate.domain import (
    Building,
    Cluster,
    ClusterStatus,
    Contract,
    ContractKind,
    Fleet,
    GpuModel,
    JobKind,
    JobSpec,
    Provider,
    Site,
)

BUILDING = {"id": "b", "site": "s", "floor_area_sq_ft": 1, "it_power_mw": 50, "gpus": 10, "gpu_model": "B200",
            "capex_usd": 1, "planned_energization": "2025-06-01"}  # fmt: skip


@pytest.mark.parametrize("ident", ["a", "abilene-b1", "coreweave-2025.03", "x_1", "9" * 63])
def test_valid_ids(ident: str) -> None:
    """Lowercase ids of 1–63 characters are accepted."""
    assert Provider(id=ident, name="P", kind="cloud").id == ident


@pytest.mark.parametrize("ident", ["", "Azure", "-a", "a b", "a" * 64, "é"])
def test_invalid_ids(ident: str) -> None:
    """Uppercase, leading punctuation, spaces, too long or non-ASCII ids are rejected."""
    with pytest.raises(ValidationError):
        Provider(id=ident, name="P", kind="cloud")


def test_models_are_frozen_and_strict_about_keys() -> None:
    """Models cannot be changed in place and refuse unknown keys."""
    p = Provider(id="a", name="A", kind="owned")
    with pytest.raises(ValidationError):
        p.name = "B"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Provider.model_validate({"id": "a", "name": "A", "kind": "owned", "colour": "red"})


def test_strings_are_stripped() -> None:
    """Surrounding whitespace is dropped."""
    assert Provider(id="a", name="  A  ", kind="owned").name == "A"


def test_cluster_gpus_and_status() -> None:
    """A cluster's GPUs are nodes × GPUs per node; only 'down' refuses work."""
    c = Cluster(id="c", site="s", gpu_model="B200", gpus_per_node=72, nodes=3, price_per_gpu_hour_usd=Decimal(2))
    assert c.gpus == 216
    assert [s.accepts_work() for s in ClusterStatus] == [True, True, False]


def test_building_energised_on_prefers_the_actual_date() -> None:
    """The actual energisation date counts when known."""
    assert Building.model_validate(BUILDING).energized_on() == date(2025, 6, 1)
    late = Building.model_validate({**BUILDING, "actual_energization": "2025-09-01"})
    assert late.energized_on() == date(2025, 9, 1)


def test_contract_covers_its_term_inclusive() -> None:
    """covers() is true from start to end, both included."""
    k = Contract(id="k", provider="p", kind="spot", start=date(2025, 1, 1), end=date(2025, 12, 31))
    assert k.covers(date(2025, 1, 1)) and k.covers(date(2025, 12, 31))
    assert not k.covers(date(2024, 12, 31)) and not k.covers(date(2026, 1, 1))


def test_prepaid_contract_kinds() -> None:
    """Reserved and commitment capacity is paid anyway; on-demand and spot are not."""
    assert [k.value for k in ContractKind if k.is_prepaid()] == ["reserved", "commitment"]


def test_money_is_exact_and_bounded() -> None:
    """Money is a Decimal, never negative, with at most 6 decimal places."""
    c = Contract(id="k", provider="p", kind="spot", start=date(2025, 1, 1), end=date(2025, 1, 2), value_usd="0.1")
    assert c.value_usd == Decimal("0.1")
    for bad in ("-1", "0.0000001"):
        with pytest.raises(ValidationError):
            Contract(id="k", provider="p", kind="spot", start=date(2025, 1, 1), end=date(2025, 1, 2), value_usd=bad)


def test_catalogue_adds_declared_models_to_builtins() -> None:
    """A fleet's catalogue is the built-in models plus its own."""
    fleet = Fleet(name="f", gpu_models=[GpuModel(name="X1", bf16_dense_tflops=1, hbm_gib=1, tdp_w=1)])
    assert {"H100-SXM", "H200", "B200", "GB200", "MI300X", "X1"} == set(fleet.catalogue())


def test_energized_it_mw_counts_buildings_by_date_and_caps_at_the_envelope() -> None:
    """Energised IT power: buildings energised by the day, capped at envelope / PUE; None when not limited."""
    fleet = Fleet(
        name="f",
        sites=[
            Site(id="s", provider="p", region="r", power_mw=90, pue=1.5),
            Site(id="cloud", provider="p", region="r"),
            Site(id="capped", provider="p", region="r", power_mw=60, pue=1.2),
        ],
        buildings=[
            Building.model_validate(BUILDING),
            Building.model_validate({**BUILDING, "id": "b2", "planned_energization": "2025-07-01"}),
        ],
    )
    assert fleet.energized_it_mw("s", date(2025, 5, 31)) == 0
    assert fleet.energized_it_mw("s", date(2025, 6, 1)) == 50
    assert fleet.energized_it_mw("s", date(2025, 7, 1)) == 60  # 100 MW of buildings, envelope 90 / 1.5
    assert fleet.energized_it_mw("cloud", date(2025, 7, 1)) is None
    assert fleet.energized_it_mw("capped", date(2025, 7, 1)) == pytest.approx(50)


def test_fleet_defaults() -> None:
    """A bare fleet has default priority classes and no GPUs."""
    fleet = Fleet(name="f")
    assert [(p.name, p.value) for p in fleet.priority_classes] == [("low", 100), ("normal", 500), ("high", 1000)]
    assert fleet.total_gpus() == 0 and fleet.budget is None


def test_job_spec_defaults_and_bounds() -> None:
    """A job spec defaults to a preemptible batch job; GPUs are bounded."""
    job = JobSpec(name="j", queue="q", gpus=8, command="true")
    assert job.kind is JobKind.BATCH and job.preemptible
    with pytest.raises(ValidationError):
        JobSpec(name="j", queue="q", gpus=-1, command="true")
    with pytest.raises(ValidationError, match="found neither 'command' nor 'image'"):
        JobSpec(name="j", queue="q", gpus=8)
