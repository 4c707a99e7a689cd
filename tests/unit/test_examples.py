"""The bundled example fleets load, pass every cross-entity check and hold the facts they cite.

Each test reads an example under examples/ with the real loader and checks counts, dates and values against the
figures named in the files' comments (../shared/data/facts/stargate_facts.md and the Philly trace README).
"""

import csv
import io
import re
import runpy
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from stargate.domain import ContractKind, Fleet, MatchRule, ProviderKind, fleet_problems
from stargate.fleetfile import load_fleet
from stargate.traces import read_trace

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PHILLY_CSV = ROOT.parent / "shared" / "data" / "traces" / "philly" / "philly.csv"

PHILLY_VC_NODES = {
    "6214e9": 64,
    "7f04ca": 32,
    "11cb48": 16,
    "b436b2": 64,
    "ee9e8c": 64,
    "e13805": 16,
    "6c71a0": 32,
    "2869ce": 16,
    "ed69ec": 8,
    "103959": 8,
    "0e4a51": 32,
}
"""VC sizes in 8-GPU nodes from the Philly trace README (352 nodes)."""

PHILLY_UNSIZED_VCS = ("23dbec", "51b7ef", "925e2b", "795a4c")
"""VCs in the trace with no published size."""


@cache
def _fleet(name: str) -> Fleet:
    return load_fleet(EXAMPLES / name)


@cache
def _philly_jobs() -> tuple[tuple[datetime, float, int, str], ...]:
    with PHILLY_CSV.open(newline="") as f:
        return tuple(
            (datetime.fromisoformat(r["timestamp"]), float(r["duration"]), int(float(r["num_gpus"])), r["cluster"])
            for r in csv.DictReader(f)
        )


def _peak_gpus_at_once() -> int:
    """GPUs the trace asks for at once if every job started on submission (an upper bound on demand)."""
    events = sorted(ev for t, d, g, _ in _philly_jobs() for ev in ((t, g), (t + timedelta(seconds=d), -g)))
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def _hours(start: date, end: date) -> int:
    return ((end - start).days + 1) * 24


# --------------------------------------------------------------------------------------------- every example


@pytest.mark.parametrize("name", ["stargate-2025", "philly", "philly-burst"])
def test_example_loads_without_problems(name: str) -> None:
    fleet = _fleet(name)
    assert fleet.name == name
    assert fleet_problems(fleet) == []
    assert fleet.total_gpus() > 0


@pytest.mark.parametrize("name", ["stargate-2025", "philly", "philly-burst"])
def test_every_cluster_is_whole_nodes_and_names_a_known_gpu_model(name: str) -> None:
    fleet = _fleet(name)
    for c in fleet.clusters:
        assert c.gpus == c.nodes * c.gpus_per_node
        assert c.gpu_model in fleet.catalogue()


def test_every_number_in_the_stargate_files_carries_a_comment() -> None:
    number = re.compile(r"^\s*-?\s*[a-z_]+:\s*[0-9]")
    for path in sorted((EXAMPLES / "stargate-2025").glob("*.yaml")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if number.match(line):
                previous = lines[i - 1].strip() if i else ""
                assert "#" in line or previous.startswith("#"), f"{path.name}:{i + 1}: {line.strip()} has no source"


# --------------------------------------------------------------------------------------------- stargate-2025


def test_stargate_providers_and_budget() -> None:
    fleet = _fleet("stargate-2025")
    kinds = {p.id: p.kind for p in fleet.providers}
    assert kinds == {
        "stargate": ProviderKind.OWNED,
        "azure": ProviderKind.CLOUD,
        "coreweave": ProviderKind.CLOUD,
        "oci": ProviderKind.CLOUD,
    }
    assert fleet.as_of == date(2026, 4, 17)
    assert fleet.budget is not None
    assert fleet.budget.initial_usd == Decimal("100e9")
    assert fleet.budget.ceiling_usd == Decimal("500e9")
    assert (fleet.budget.start, fleet.budget.end) == (date(2025, 1, 21), date(2029, 1, 20))
    classes = {p.name: (p.value, p.preempts_lower) for p in fleet.priority_classes}
    assert classes == {"batch": (100, False), "research": (500, True), "production": (1000, True)}


def test_stargate_abilene_power_fits_the_envelope_and_holds_its_gpus() -> None:
    fleet = _fleet("stargate-2025")
    site = next(s for s in fleet.sites if s.id == "abilene")
    assert (site.provider, site.power_mw, site.pue) == ("stargate", 1200, 1.2)
    envelope_mw = site.power_mw
    assert envelope_mw is not None
    buildings = [b for b in fleet.buildings if b.site == "abilene"]
    assert len(buildings) == 8
    facility_mw = sum(b.it_power_mw for b in buildings) * site.pue
    assert 0.99 * envelope_mw < facility_mw <= envelope_mw  # the 8 buildings fill the 1.2 GW envelope
    tdp_w = fleet.catalogue()["GB200"].tdp_w
    for b in buildings:
        assert b.gpu_model == "GB200" and b.gpus == 50_000
        assert b.gpus * tdp_w / 1e6 <= b.it_power_mw
        assert 99.99 <= b.it_power_mw * site.pue <= 166.67  # facility MW per building: 100 (Phase 1) to 166.7 (Phase 2)
    assert sum(b.floor_area_sq_ft for b in buildings) == pytest.approx(4_000_000, rel=0.01)


def test_stargate_abilene_capex_is_the_financing_plus_rack_hardware() -> None:
    buildings = [b for b in _fleet("stargate-2025").buildings if b.site == "abilene"]
    racks_usd = Decimal(694) * Decimal("3.4e6")
    facility = sum((b.capex_usd - racks_usd for b in buildings), Decimal(0))
    assert abs(facility - Decimal("15e9")) < 1  # §3.4: 15 B USD debt + equity for 1.2 GW
    assert abs(sum(b.capex_usd for b in buildings) - Decimal("33876800000")) < 1


def test_stargate_abilene_timeline() -> None:
    buildings = sorted((b for b in _fleet("stargate-2025").buildings if b.site == "abilene"), key=lambda b: b.id)
    planned = Counter(b.planned_energization for b in buildings)
    assert planned == {date(2025, 6, 30): 2, date(2026, 6, 30): 6}
    actual = [b.actual_energization for b in buildings]
    assert actual[0] == date(2025, 6, 1)  # first racks June 2025
    assert sum(d is not None and d <= date(2026, 4, 17) for d in actual) == 4  # 4 of 8 by April 2026
    assert all(d is None for d in actual[4:])


def test_stargate_one_nvl72_cluster_per_building() -> None:
    fleet = _fleet("stargate-2025")
    for b in (b for b in fleet.buildings if b.site == "abilene"):
        (cluster,) = [c for c in fleet.clusters if c.building == b.id]
        assert (cluster.gpus_per_node, cluster.interconnect) == (72, "nvlink-nvl72")
        assert cluster.nodes == b.gpus // 72 == 694
        assert cluster.price_per_gpu_hour_usd == pytest.approx(
            b.capex_usd / (cluster.gpus * Decimal(_hours(date(2025, 1, 1), date(2029, 12, 31)))), abs=Decimal("1e-4")
        )
    assert sum(c.gpus for c in fleet.clusters if c.site == "abilene") == 399_744


def test_stargate_azure_commitment_carries_the_right_of_first_refusal() -> None:
    fleet = _fleet("stargate-2025")
    contracts = {c.id: c for c in fleet.contracts if c.provider == "azure"}
    first = contracts["azure-2025-01"]
    assert first.kind is ContractKind.COMMITMENT and first.committed_spend_usd is not None
    rofr = first.right_of_first_refusal
    assert rofr is not None
    assert (rofr.holder, rofr.valid_from, rofr.valid_until) == ("azure", date(2025, 1, 21), date(2025, 10, 28))
    assert rofr.match_rule is MatchRule.MATCH_PRICE_AND_DATE and rofr.gpu_models == []
    assert first.covers(rofr.valid_from) and first.covers(rofr.valid_until)
    assert first.end == date(2030, 12, 31)
    second = contracts["azure-2025-10"]
    assert (second.start, second.committed_spend_usd) == (date(2025, 10, 28), Decimal("250e9"))
    per_node = {c.gpu_model: c.gpus_per_node for c in fleet.clusters if c.site == "azure-us"}
    assert per_node == {"H100-SXM": 8, "GB200": 4}


def test_stargate_azure_gb200_pool_is_derived_from_the_250b_commitment() -> None:
    fleet = _fleet("stargate-2025")
    contract = next(c for c in fleet.contracts if c.id == "azure-2025-10")
    cluster = next(c for c in fleet.clusters if c.contract == "azure-2025-10")
    assert contract.price_per_gpu_hour_usd is not None and contract.committed_spend_usd is not None
    exact = contract.committed_spend_usd / (contract.price_per_gpu_hour_usd * _hours(contract.start, contract.end))
    assert cluster.gpus == int(exact) // 72 * 72 == 146_880
    assert cluster.online_from == contract.start


@pytest.mark.parametrize(
    ("contract_id", "value", "start", "per_unit"),
    [
        ("coreweave-2025-03", Decimal("11.9e9"), date(2025, 3, 7), 8),
        ("coreweave-2025-05", Decimal("4e9"), date(2025, 5, 1), 72),
        ("coreweave-2025-09", Decimal("6.5e9"), date(2025, 9, 25), 72),
    ],
)
def test_stargate_coreweave_tranche_gpus_follow_from_value_and_price(
    contract_id: str, value: Decimal, start: date, per_unit: int
) -> None:
    fleet = _fleet("stargate-2025")
    contract = next(c for c in fleet.contracts if c.id == contract_id)
    assert (contract.kind, contract.value_usd, contract.start) == (ContractKind.RESERVED, value, start)
    assert contract.end == date(start.year + 5, start.month, start.day) - timedelta(days=1)
    assert contract.price_per_gpu_hour_usd is not None and contract.gpus is not None
    exact = value / (contract.price_per_gpu_hour_usd * _hours(contract.start, contract.end))
    assert contract.gpus == int(exact) // per_unit * per_unit  # whole nodes (H100) or whole NVL72 racks (GB200)
    (cluster,) = [c for c in fleet.clusters if c.contract == contract_id]
    assert (cluster.gpus, cluster.gpu_model, cluster.online_from) == (contract.gpus, contract.gpu_model, start)
    assert cluster.online_until == contract.end


def test_stargate_coreweave_total_and_oci_list_prices() -> None:
    fleet = _fleet("stargate-2025")
    coreweave = [c for c in fleet.contracts if c.provider == "coreweave"]
    assert sum((c.value_usd or Decimal(0) for c in coreweave), Decimal(0)) == Decimal("22.4e9")
    oci = {c.gpu_model: c for c in fleet.contracts if c.provider == "oci" and c.kind is ContractKind.ON_DEMAND}
    assert {m: (c.kind, c.price_per_gpu_hour_usd) for m, c in oci.items()} == {
        "GB200": (ContractKind.ON_DEMAND, Decimal("16")),
        "H100-SXM": (ContractKind.ON_DEMAND, Decimal("10")),
    }


def test_stargate_total_gpus_and_queue_quotas_fit_the_fleet() -> None:
    fleet = _fleet("stargate-2025")
    by_model = Counter({m: 0 for m in ("GB200", "H100-SXM")})
    for c in fleet.clusters:
        by_model[c.gpu_model] += c.gpus
    assert fleet.total_gpus() == 2_976_256
    assert by_model == {"GB200": 2_823_984, "H100-SXM": 152_272}
    before_oracle = sum(c.gpus for c in fleet.clusters if c.gpu_model == "GB200" and c.contract != "oracle-2027")
    assert before_oracle == 573_984
    assert {q.team for q in fleet.queues} == {"research", "product", "eval"}
    assert {q.cohort for q in fleet.queues} == {"openai"}
    quota_sum: Counter[str] = Counter()
    for q in fleet.queues:
        for quota in q.quotas:
            quota_sum[quota.gpu_model] += quota.gpus
            assert quota.borrowing_limit_gpus is not None
    assert all(quota_sum[m] <= by_model[m] for m in quota_sum)
    assert quota_sum["GB200"] <= before_oracle
    research = next(q for q in fleet.queues if q.team == "research")
    assert max(research.quotas, key=lambda q: q.gpus).gpu_model == "GB200"


def test_stargate_oracle_commitment_and_its_4_5_gw_pool() -> None:
    fleet = _fleet("stargate-2025")
    (contract,) = [c for c in fleet.contracts if c.id == "oracle-2027"]
    assert (contract.provider, contract.kind, contract.committed_spend_usd) == (
        "oci",
        ContractKind.COMMITMENT,
        Decimal("300e9"),
    )
    assert (contract.start, contract.end) == (date(2027, 1, 1), date(2031, 12, 31))  # ~5 years from 2027 (§2.2)
    (cluster,) = [c for c in fleet.clusters if c.contract == "oracle-2027"]
    site = next(s for s in fleet.sites if s.id == cluster.site)
    assert (site.power_mw, site.pue) == (4500, 1.2)
    assert site.power_mw is not None
    racks = int(Decimal(site.power_mw) / Decimal(str(site.pue)) / Decimal("0.120"))  # 120 kW per NVL72 rack (§3.1)
    assert cluster.gpus == racks * 72 == 2_250_000
    assert cluster.gpus * fleet.catalogue()["GB200"].tdp_w / 1e6 * site.pue <= site.power_mw
    assert (cluster.online_from, cluster.online_until) == (contract.start, contract.end)
    assert contract.price_per_gpu_hour_usd == cluster.price_per_gpu_hour_usd
    assert contract.price_per_gpu_hour_usd is not None
    spend_at_price = contract.price_per_gpu_hour_usd * cluster.gpus * _hours(contract.start, contract.end)
    assert abs(spend_at_price - Decimal("300e9")) < Decimal("0.01e9")  # the price spends the commitment


def test_stargate_dated_draws_pass_the_ceiling_from_2027() -> None:
    """Commitments and reserved values on their start day, capex on the planned energisation day (the budget rule):
    616.3 B USD drawn from 2027-01-01 against the 500 B USD ceiling; within it the day before."""
    fleet = _fleet("stargate-2025")
    draws: list[tuple[date, Decimal]] = [
        (c.start, c.committed_spend_usd or c.value_usd or Decimal(0)) for c in fleet.contracts
    ]
    draws += [(b.planned_energization, b.capex_usd or Decimal(0)) for b in fleet.buildings]
    assert fleet.budget is not None

    def drawn_by(day: date) -> Decimal:
        return sum((v for d, v in draws if d <= day), Decimal(0))

    assert drawn_by(date(2026, 12, 31)) <= fleet.budget.ceiling_usd
    assert round(drawn_by(date(2027, 1, 1)) / Decimal("1e9"), 1) == Decimal("616.3")
    assert drawn_by(date(2027, 1, 1)) > fleet.budget.ceiling_usd


def test_stargate_price_book_matches_the_list_prices_of_the_fleet() -> None:
    """Every quote is a §4.1 list price the fleet already uses for that provider and GPU model, at a site of the
    provider; the simulated holder answers within its clause's window."""
    fleet = _fleet("stargate-2025")
    book = fleet.procurement.price_book
    assert {(q.provider, q.gpu_model) for q in book} == {
        (p, m) for p in ("azure", "coreweave", "oci") for m in ("GB200", "H100-SXM")
    }
    listed = {
        (s.provider, c.gpu_model, c.price_per_gpu_hour_usd)
        for c in fleet.clusters
        for s in fleet.sites
        if s.id == c.site
    }
    for q in book:
        assert (q.provider, q.gpu_model, q.price_per_gpu_hour_usd) in listed
        assert next(s.provider for s in fleet.sites if s.id == q.site) == q.provider
    pressure = fleet.procurement.pressure
    assert pressure is not None and pressure.block_gpus % 72 == 0  # whole NVL72 racks
    (rofr,) = [c.right_of_first_refusal for c in fleet.contracts if c.right_of_first_refusal is not None]
    assert fleet.procurement.holder_response.response_days < rofr.response_window_days


def test_stargate_workload_is_what_its_script_writes_and_reads_cleanly() -> None:
    """workload.csv is exactly make_workload.py's output, a native trace with no bad row; the fleet loader reads only
    the YAML files beside it."""
    folder = EXAMPLES / "stargate-2025"
    module = runpy.run_path(str(folder / "make_workload.py"), run_name="make_workload")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=module["COLUMNS"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(module["rows"]())
    assert (folder / "workload.csv").read_text(encoding="utf-8") == buffer.getvalue()
    trace = read_trace(folder / "workload.csv", "native")
    assert trace.bad_rows == [] and 100 <= len(trace.jobs) <= 3_000
    assert trace.start is not None and trace.start < datetime(2025, 10, 28, tzinfo=UTC)  # starts under the clause
    assert max(j.submit_s for j in trace.jobs) > (datetime(2025, 11, 15, tzinfo=UTC) - trace.start).total_seconds()
    models = {m for j in trace.jobs for m in j.gpu_models}
    assert models <= set(_fleet("stargate-2025").catalogue()) and all(len(j.gpu_models) == 1 for j in trace.jobs)


# --------------------------------------------------------------------------------------------- philly


def test_philly_has_a_queue_per_vc_in_the_trace_with_its_published_size() -> None:
    fleet = _fleet("philly")
    trace_vcs = {vc for *_, vc in _philly_jobs()}
    assert len(trace_vcs) == 15
    queues = {q.id: q for q in fleet.queues}
    assert set(queues) == {f"vc-{vc}" for vc in trace_vcs}
    assert {t.id for t in fleet.teams} == set(queues)
    assert {q.cohort for q in queues.values()} == {"philly"}
    for vc, nodes in PHILLY_VC_NODES.items():
        (quota,) = queues[f"vc-{vc}"].quotas
        assert (quota.gpu_model, quota.gpus, quota.borrowing_limit_gpus) == ("*", nodes * 8, None)
    for vc in PHILLY_UNSIZED_VCS:
        assert queues[f"vc-{vc}"].quotas[0].gpus == 8
    assert sum(PHILLY_VC_NODES.values()) == 352


def test_philly_clusters_hold_about_420_nodes_and_the_largest_job() -> None:
    fleet = _fleet("philly")
    assert [p.kind for p in fleet.providers] == [ProviderKind.OWNED]
    (site,) = fleet.sites
    assert site.power_mw is None
    assert sum(c.nodes for c in fleet.clusters) == 420
    assert all(c.gpus_per_node == 8 for c in fleet.clusters)
    assert len(fleet.clusters) < 50
    largest = max(g for _, _, g, _ in _philly_jobs())
    assert largest == 128
    assert any(c.gpus >= largest for c in fleet.clusters)
    memory = sorted(fleet.catalogue()[m].hbm_gib for m in {c.gpu_model for c in fleet.clusters})
    assert memory == [12, 24]


def test_philly_burst_is_one_owned_cluster_plus_an_effectively_unlimited_cloud() -> None:
    fleet = _fleet("philly-burst")
    kinds = {p.id: p.kind for p in fleet.providers}
    assert kinds == {"philly": ProviderKind.OWNED, "cloud": ProviderKind.CLOUD}
    owned = [c for c in fleet.clusters if c.site == "philly"]
    assert [(c.nodes, c.gpus_per_node) for c in owned] == [(64, 8)]
    (cloud,) = [c for c in fleet.clusters if c.site != "philly"]
    assert cloud.gpus == 80_000
    peak = _peak_gpus_at_once()
    assert cloud.gpus > 10 * peak
    (contract,) = fleet.contracts
    assert (contract.provider, contract.kind, contract.price_per_gpu_hour_usd) == (
        "cloud",
        ContractKind.ON_DEMAND,
        Decimal("6.16"),
    )
    assert {q.id for q in fleet.queues} == {q.id for q in _fleet("philly").queues}
    assert all(q.quotas[0].gpus >= peak for q in fleet.queues)
