"""Bounded, strict input: every count and size has an upper bound, numbers are strict and finite, text is printable.

The last tests are the fleet half of the attack suite: Hypothesis fleets mutated with out-of-range values give a
located FleetFileError or a fleet, and every fleet accepted builds the engine's index.
"""

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stargate.domain import (
    Building,
    Cluster,
    Fleet,
    GpuModel,
    JobSpec,
    PriorityClass,
    Provider,
    Queue,
    Quota,
    Site,
    limits,
)
from stargate.domain.base import text_problem
from stargate.domain.limits import (
    MAX_CLUSTER_GPUS,
    MAX_COMMAND_BYTES,
    MAX_ENV_ENTRIES,
    MAX_ENV_TOTAL_BYTES,
    MAX_ENV_VALUE_BYTES,
    MAX_FLEET_GPUS,
    MAX_GPUS_PER_NODE,
    MAX_NODES_PER_CLUSTER,
    MAX_SMALL_LIST,
)
from stargate.engine.index import FleetIndex
from stargate.fleetfile import FleetFileError, dump_fleet, loads_fleet
from unit.fleetfile.fleet_strategies import fleets

CLUSTER = {"id": "c", "site": "s", "gpu_model": "H100-SXM", "gpus_per_node": 8, "nodes": 1, "price_per_gpu_hour_usd": 2}
BUILDING = {"id": "b", "site": "s", "floor_area_sq_ft": 1, "it_power_mw": 1.0, "gpus": 1, "gpu_model": "H100-SXM",
            "capex_usd": 1, "planned_energization": "2025-01-01"}  # fmt: skip
JOB = {"name": "j", "queue": "q", "gpus": 1, "command": "true"}


def _refused(model: type, data: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value.errors()


# -- counts and sizes -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "most"),
    [("gpus_per_node", MAX_GPUS_PER_NODE), ("nodes", MAX_NODES_PER_CLUSTER)],
)
def test_cluster_counts_have_an_upper_bound(field: str, most: int) -> None:
    """The bound itself is accepted, one more is not; 2^64 (the finding) is refused, not an OverflowError later."""
    base = {**CLUSTER, "gpus_per_node": 1, "nodes": 1}
    assert getattr(Cluster.model_validate({**base, field: most}), field) == most
    for too_many in (most + 1, 2**64, 10**30):
        [err] = _refused(Cluster, {**base, field: too_many})
        assert (err["loc"], err["type"]) == ((field,), "less_than_equal")


def test_a_cluster_holds_at_most_ten_million_gpus() -> None:
    """GPUs per node × nodes is bounded too, with both factors in the message."""
    assert Cluster.model_validate({**CLUSTER, "gpus_per_node": 1_000, "nodes": 10_000}).gpus == MAX_CLUSTER_GPUS
    [err] = _refused(Cluster, {**CLUSTER, "gpus_per_node": 1_000, "nodes": 10_001})
    assert str(err["ctx"]["error"]) == (
        "found 10,001,000 GPUs (1,000 GPUs per node × 10,001 nodes), expected at most 10,000,000 GPUs in one cluster"
    )


def test_a_fleet_holds_at_most_one_hundred_million_gpus() -> None:
    """The whole fleet is bounded, so its totals fit int64 and float64 exactly."""
    big = {**CLUSTER, "gpus_per_node": 1_000, "nodes": 10_000}
    clusters = [{**big, "id": f"c{i}"} for i in range(11)]
    [err] = _refused(Fleet, {"name": "f", "clusters": clusters})
    assert "found 110,000,000 GPUs in 11 clusters, expected at most 100,000,000 GPUs" in str(err["ctx"]["error"])
    assert Fleet.model_validate({"name": "f", "clusters": clusters[:10]}).total_gpus() == MAX_FLEET_GPUS


@pytest.mark.parametrize(
    ("model", "data", "loc"),
    [
        (Site, {"id": "s", "provider": "p", "region": "r", "power_mw": 100_001.0}, ("power_mw",)),
        (Building, {**BUILDING, "floor_area_sq_ft": 10**9}, ("floor_area_sq_ft",)),
        (Building, {**BUILDING, "gpus": 10**7 + 1}, ("gpus",)),
        (Building, {**BUILDING, "it_power_mw": 1e5 + 1}, ("it_power_mw",)),
        (GpuModel, {"name": "X1", "bf16_dense_tflops": 1e7, "hbm_gib": 1, "tdp_w": 1}, ("bf16_dense_tflops",)),
        (GpuModel, {"name": "X1", "bf16_dense_tflops": 1, "hbm_gib": 1, "tdp_w": 1e6}, ("tdp_w",)),
        (Provider, {"id": "p", "name": "P", "kind": "cloud", "capacity_limit_gpus": 10**8 + 1},
         ("capacity_limit_gpus",)),
        (Quota, {"gpu_model": "*", "gpus": 10**8 + 1}, ("gpus",)),
        (Cluster, {**CLUSTER, "price_per_gpu_hour_usd": "100000.000001"}, ("price_per_gpu_hour_usd",)),
        (Queue, {"id": "q", "team": "t", "quotas": [{"gpu_model": "*", "gpus": 1}] * (MAX_SMALL_LIST + 1)},
         ("quotas",)),
    ],
)  # fmt: skip
def test_every_quantity_has_an_upper_bound(model: type, data: dict[str, Any], loc: tuple[str, ...]) -> None:
    """Power, area, GPUs, compute, memory, prices and list lengths: each refused past its bound, at its field."""
    assert [e["loc"] for e in _refused(model, data)] == [loc]


def test_money_is_bounded_in_size_and_decimal_places() -> None:
    """USD is at most 10^14 with at most 6 decimal places; NaN and infinity are not amounts."""
    budget = {"initial_usd": 1, "ceiling_usd": 1, "start": "2025-01-01", "end": "2026-01-01"}
    fleet = {"name": "f", "budget": budget}
    assert Fleet.model_validate({**fleet, "budget": {**budget, "ceiling_usd": 10**14}}).budget is not None
    for bad in (10**14 + 1, "1.0000001", "NaN", "Infinity", float("inf"), True):
        errors = _refused(Fleet, {**fleet, "budget": {**budget, "ceiling_usd": bad}})
        assert [e["loc"] for e in errors] == [("budget", "ceiling_usd")], bad


# -- strict numbers and booleans --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "data", "loc"),
    [
        (Cluster, {**CLUSTER, "nodes": True}, ("nodes",)),
        (Cluster, {**CLUSTER, "gpus_per_node": 8.0}, ("gpus_per_node",)),
        (Cluster, {**CLUSTER, "nodes": "4"}, ("nodes",)),
        (Site, {"id": "s", "provider": "p", "region": "r", "pue": True}, ("pue",)),
        (Site, {"id": "s", "provider": "p", "region": "r", "power_mw": float("nan")}, ("power_mw",)),
        (Site, {"id": "s", "provider": "p", "region": "r", "power_mw": float("inf")}, ("power_mw",)),
        (PriorityClass, {"name": "p", "value": 1, "preempts_lower": 1}, ("preempts_lower",)),
        (PriorityClass, {"name": "p", "value": 1, "preempts_lower": "yes"}, ("preempts_lower",)),
        (JobSpec, {**JOB, "gpus": False}, ("gpus",)),
        (JobSpec, {**JOB, "preemptible": 0}, ("preemptible",)),
        (JobSpec, {**JOB, "estimated_duration_s": "nan"}, ("estimated_duration_s",)),
        (JobSpec, {**JOB, "estimated_duration_s": float("inf")}, ("estimated_duration_s",)),
        (JobSpec, {**JOB, "checkpoint_interval_s": 4e9}, ("checkpoint_interval_s",)),
    ],
)
def test_a_boolean_is_not_a_number_and_no_number_is_infinite(
    model: type, data: dict[str, Any], loc: tuple[str, ...]
) -> None:
    """Strict numbers and booleans: no coercion from bool, float, or text; no NaN or infinity."""
    assert [e["loc"] for e in _refused(model, data)] == [loc]


@pytest.mark.parametrize("field", ["estimated_duration_s", "checkpoint_interval_s"])
@pytest.mark.parametrize("value", [5e-324, 1e-9, 0.999, 0, -1])
def test_job_durations_are_at_least_one_second(field: str, value: float) -> None:
    """A tiny interval (5e-324 s) once stopped the scheduler for every team: durations start at 1 s."""
    errors = _refused(JobSpec, {**JOB, field: value})
    assert [e["loc"] for e in errors] == [(field,)]
    assert JobSpec.model_validate({**JOB, field: 1}).model_dump()[field] == 1.0


def test_an_integer_is_a_number_for_a_float_field() -> None:
    """Strictness refuses booleans and text, not integers where a real number is expected."""
    site = Site.model_validate({"id": "s", "provider": "p", "region": "r", "power_mw": 300, "pue": 1})
    assert (site.power_mw, site.pue) == (300.0, 1.0)


# -- dates ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("day", ["1969-12-31", "2201-01-01", "0001-01-01", "9999-12-31"])
def test_dates_lie_between_1970_and_2200(day: str) -> None:
    """A date outside 1970–2200 is refused with the range in the message."""
    [err] = _refused(Cluster, {**CLUSTER, "online_from": day})
    assert err["loc"] == ("online_from",)
    assert "expected a date from 1970-01-01 to 2200-12-31" in str(err["ctx"]["error"])


def test_a_number_is_not_a_date() -> None:
    """Pydantic would read 0 as 1970-01-01 (Unix time); a date must be written as a date."""
    [err] = _refused(Cluster, {**CLUSTER, "online_from": 0})
    assert str(err["ctx"]["error"]).startswith("found the number 0, expected an ISO 8601 date")
    assert Cluster.model_validate({**CLUSTER, "online_until": "2200-12-31"}).online_until == date(2200, 12, 31)


def test_a_deadline_is_checked_in_utc() -> None:
    """2200-12-31T23:00-05:00 is already 2201 in UTC: refused; the same instant a day earlier is accepted."""
    _refused(JobSpec, {**JOB, "deadline": "2200-12-31T23:00:00-05:00"})
    spec = JobSpec.model_validate({**JOB, "deadline": "2200-12-30T23:00:00-05:00"})
    assert spec.deadline == datetime(2200, 12, 31, 4, tzinfo=UTC)


# -- text -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a\x00b", "a NUL character (U+0000) at character 2"),
        ("\x1b[31mred", "the character U+001B at character 1"),
        ("tab\tname", "the character U+0009 at character 4"),
        ("abc\u202edef", "the character U+202E (right-to-left override) at character 4"),
        ("x\u2066", "the character U+2066 (left-to-right isolate) at character 2"),
        ("\u200bhidden", "the character U+200B (zero width space) at character 1"),
        ("bom\ufeff", "the character U+FEFF (zero width no-break space) at character 4"),
        ("a\u2028b", "the character U+2028 (line separator) at character 2"),
        ("plain", None),
        ("résumé 東京", None),
        ("👩\u200d💻 and \u200c", None),  # joiners are allowed: scripts and emoji need them
    ],
)
def test_names_are_printable_text(text: str, problem: str | None) -> None:
    """Control, bidirectional and invisible characters are refused in one-line names; joiners are not."""
    assert text_problem(text) == problem


def test_every_name_and_text_field_refuses_control_and_bidi_characters() -> None:
    """Display names, regions, descriptions, sources, labels and job names all use the printable types."""
    cases = [
        (Provider, {"id": "p", "name": "Az\u202eure", "kind": "cloud"}, ("name",)),
        (Site, {"id": "s", "provider": "p", "region": "us\x07south"}, ("region",)),
        (Fleet, {"name": "f", "description": "line one\nline two\x1b"}, ("description",)),
        (GpuModel, {"name": "X1", "bf16_dense_tflops": 1, "hbm_gib": 1, "tdp_w": 1, "source": "\u2067"}, ("source",)),
        (Cluster, {**CLUSTER, "interconnect": "ib\u200b"}, ("interconnect",)),
        (JobSpec, {**JOB, "name": "\u202ejob"}, ("name",)),
        (JobSpec, {**JOB, "allowed_regions": ["us\x00"]}, ("allowed_regions", 0)),
        (JobSpec, {**JOB, "image": "ubuntu\n:22.04"}, ("image",)),
    ]
    for model, data, loc in cases:
        assert [e["loc"] for e in _refused(model, data)] == [loc], data
    assert Fleet.model_validate({"name": "f", "description": "line one\n\tline two"}).description.endswith("two")


# -- job spec sizes ---------------------------------------------------------------------------------------------
def test_the_command_is_bounded_in_bytes_and_refuses_nul_and_bidi() -> None:
    """64 KiB of UTF-8 (not characters: 'é' is 2 bytes); NUL and bidi overrides refused, tabs and newlines kept."""
    assert JobSpec.model_validate({**JOB, "command": "x" * MAX_COMMAND_BYTES}).command is not None
    [err] = _refused(JobSpec, {**JOB, "command": "é" * (MAX_COMMAND_BYTES // 2 + 1)})
    assert str(err["ctx"]["error"]) == "found 65,538 bytes, expected at most 65,536 bytes of UTF-8"
    assert _refused(JobSpec, {**JOB, "command": "echo \x00"})[0]["loc"] == ("command",)
    assert _refused(JobSpec, {**JOB, "command": "echo \u202e"})[0]["loc"] == ("command",)
    assert JobSpec.model_validate({**JOB, "command": "printf 'a\\tb'\n\techo \x1b[0m"}).command is not None


@pytest.mark.parametrize("name", ["", "A=B", "1ABC", "A B", "A-B", "É", "A\x00", "A" * 257])
def test_environment_names_are_posix_names(name: str) -> None:
    """[A-Za-z_][A-Za-z0-9_]*, at most 256 characters: no '=', never empty, no NUL."""
    errors = _refused(JobSpec, {**JOB, "environment": {name: "v"}})
    assert errors[0]["loc"][:2] == ("environment", name)


def test_environment_size_is_bounded() -> None:
    """At most 256 entries, 32 KiB per value, 256 KiB in all; a NUL in a value is refused, a bidi character kept."""
    ok = JobSpec.model_validate({**JOB, "environment": {f"K{i}": "v" for i in range(MAX_ENV_ENTRIES)}})
    assert len(ok.environment) == MAX_ENV_ENTRIES
    assert _refused(JobSpec, {**JOB, "environment": {f"K{i}": "v" for i in range(257)}})[0]["type"] == "too_long"
    assert _refused(JobSpec, {**JOB, "environment": {"K": "v" * (MAX_ENV_VALUE_BYTES + 1)}})[0]["loc"] == (
        "environment",
        "K",
    )
    big = {f"K{i}": "v" * MAX_ENV_VALUE_BYTES for i in range(MAX_ENV_TOTAL_BYTES // MAX_ENV_VALUE_BYTES)}
    [err] = _refused(JobSpec, {**JOB, "environment": big})
    assert err["loc"] == ("environment",)
    assert str(err["ctx"]["error"]).endswith("expected at most 262,144 bytes")
    assert _refused(JobSpec, {**JOB, "environment": {"K": "a\x00"}})[0]["loc"] == ("environment", "K")
    assert JobSpec.model_validate({**JOB, "environment": {"K": "\u202e"}}).environment == {"K": "\u202e"}


def test_every_list_of_a_job_spec_is_bounded() -> None:
    """GPU models, providers and regions: at most 1,000 each."""
    for key, item in (("gpu_models", "H100-SXM"), ("allowed_providers", "p"), ("allowed_regions", "r")):
        JobSpec.model_validate({**JOB, key: [item] * MAX_SMALL_LIST})
        assert _refused(JobSpec, {**JOB, key: [item] * (MAX_SMALL_LIST + 1)})[0]["type"] == "too_long"


# -- the fleet half of the attack suite -------------------------------------------------------------------------
HOSTILE = st.sampled_from(
    [2**63, 2**64, -(2**63) - 1, 10**30, 10**8 + 1, 10**7 + 1, 1_025, -1, 0, True, False, None, 1e308, -1e308,
     float("inf"), float("nan"), 1e-300, "1e999", "NaN", "0001-01-01", "9999-12-31", "1969-12-31", "2201-01-01",
     "a\x00b", "\u202eevil", "x" * 10_001, "", [], {}, "100000.0000001"]
)  # fmt: skip


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _set(document: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        document = document[part]
    document[path[-1]] = value


@st.composite
def mutated_fleets(draw: st.DrawFn) -> str:
    """A valid fleet as YAML with one to three leaves replaced by hostile values."""
    document = yaml.safe_load(dump_fleet(draw(fleets())))
    leaves = [p for p in _leaves(document) if p]
    for _ in range(draw(st.integers(1, 3))):
        _set(document, draw(st.sampled_from(leaves)), draw(HOSTILE))
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


@given(text=mutated_fleets())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_mutated_fleets_load_or_fail_located_and_accepted_ones_index(text: str) -> None:
    """Only a Fleet or a FleetFileError with located problems; every accepted fleet builds the engine's index."""
    try:
        fleet = loads_fleet(text, "mutated.yaml")
    except FleetFileError as exc:
        event("refused")
        assert exc.problems
        for p in exc.problems:
            assert p.file == "mutated.yaml" and p.line >= 1 and p.column >= 1 and p.found and p.expected, p
            assert "\x00" not in str(p) and "\u202e" not in str(p)
        return
    event("accepted")
    _assert_schedulable(fleet)


def _assert_schedulable(fleet: Fleet) -> None:
    index = FleetIndex.from_fleet(fleet, datetime(2025, 1, 1, tzinfo=UTC))
    assert int(index.total.sum(dtype=np.int64)) == fleet.total_gpus() <= MAX_FLEET_GPUS
    for t in [-1e12, 0.0, *index.change_times[:5], 1e10]:
        caps = index.power_cap_w(t)
        assert not np.isnan(caps).any()
        _, _, rank = index.prices(t)
        assert np.isfinite(rank).all()
    assert all(math.isfinite(t) for t in index.change_times)


def test_the_largest_values_accepted_still_index() -> None:
    """A fleet at every bound at once (10 clusters of 10,000,000 GPUs, 100 GW, top prices, 2200) is schedulable."""
    clusters = [
        {**CLUSTER, "id": f"c{i}", "gpus_per_node": 1_000, "nodes": 10_000, "price_per_gpu_hour_usd": "100000",
         "online_from": "1970-01-01", "online_until": "2200-12-31"}
        for i in range(10)
    ]  # fmt: skip
    fleet = Fleet.model_validate(
        {
            "name": "max",
            "providers": [{"id": "p", "name": "P", "kind": "owned", "capacity_limit_gpus": MAX_FLEET_GPUS}],
            "sites": [{"id": "s", "provider": "p", "region": "r", "power_mw": 100_000.0, "pue": 3.0}],
            "clusters": clusters,
            "budget": {"initial_usd": 10**14, "ceiling_usd": 10**14, "start": "1970-01-01", "end": "2200-12-31"},
            "queues": [{"id": "q", "team": "t", "quotas": [{"gpu_model": "*", "gpus": MAX_FLEET_GPUS}]}],
        }
    )
    assert fleet.budget is not None and fleet.budget.ceiling_usd == Decimal(10**14)
    _assert_schedulable(fleet)


def test_every_limit_is_documented() -> None:
    """Each constant of stargate.domain.limits appears, written for people, in the fleet-file or job spec reference."""
    docs = Path("docs/reference/fleet-file.md").read_text() + Path("docs/reference/job-spec.md").read_text()
    for name, value in vars(limits).items():
        if not name.startswith(("MAX_", "MIN_")):
            continue
        if isinstance(value, date):
            shown = [value.isoformat()]
        else:
            number = int(value)
            shown = [f"{number:,}", f"10^{len(str(number)) - 1}"]
        assert any(s in docs for s in shown), (name, shown)
