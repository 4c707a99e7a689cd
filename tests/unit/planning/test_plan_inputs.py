"""How a fleet and a scenario become the plan's inputs: each kind of cluster and contract, exclusivity, first
refusal, site power and the budget envelope (figures worked out by hand in the comments)."""

from datetime import date
from typing import Any

import pytest

from stargate.domain.fleet import Fleet
from stargate.domain.planning import PlanScenario
from stargate.engine.plan_inputs import build_inputs, envelope, first_month, last_month
from stargate.engine.plan_types import DemandLine, PlanInputs

START = date(2025, 1, 1)
MONTHS = 14


def _fleet(**extra: Any) -> Fleet:
    data: dict[str, Any] = {
        "name": "t",
        "providers": [
            {"id": "own", "name": "Own", "kind": "owned"},
            {"id": "ca", "name": "Cloud A", "kind": "cloud"},
            {"id": "cb", "name": "Cloud B", "kind": "cloud"},
        ],
        "sites": [
            {"id": "campus", "provider": "own", "region": "x", "power_mw": 120, "pue": 1.2, "energy_usd_per_mwh": 50},
            {"id": "ra", "provider": "ca", "region": "x"},
            {"id": "rb", "provider": "cb", "region": "x"},
        ],
        "buildings": [
            {
                "id": "b1",
                "site": "campus",
                "floor_area_sq_ft": 1000,
                "it_power_mw": 50,
                "gpus": 40_000,
                "gpu_model": "GB200",
                "capex_usd": 1_200_000_000,
                "planned_energization": "2025-03-15",
            }
        ],
        "clusters": [
            # 43,200 GPUs, but the building holds 40,000 and its 50 MW feed floor(50e6 / (1200 W × 1.2)) = 34,722.
            _cluster("own-gb200", "campus", "GB200", 72, 600, 1.5, building="b1"),
            _cluster("ca-h100", "ra", "H100-SXM", 8, 100, 9.0, contract="k-res"),
            _cluster("ca-gb200", "ra", "GB200", 4, 250, 12.0, contract="k-com"),
            _cluster("cb-h100", "rb", "H100-SXM", 8, 50, 7.0, online_from="2025-06-15", online_until="2025-09-30"),
            _cluster("cb-spot", "rb", "H100-SXM", 8, 10, 7.0, contract="k-spot"),
        ],
        "contracts": [
            {
                "id": "k-res",
                "provider": "ca",
                "kind": "reserved",
                "start": "2025-02-01",
                "end": "2025-07-31",
                "gpus": 800,
                "price_per_gpu_hour_usd": 2,
            },
            {
                "id": "k-com",
                "provider": "ca",
                "kind": "commitment",
                "start": "2025-01-01",
                "end": "2025-12-31",
                "committed_spend_usd": 12_000_000,
                "price_per_gpu_hour_usd": 5,
                "right_of_first_refusal": {
                    "holder": "ca",
                    "response_window_days": 30,
                    "valid_from": "2025-02-15",
                    "valid_until": "2025-05-01",
                },
                "exclusivity": {"gpu_models": ["GB200"], "until": "2025-03-31"},
            },
            {
                "id": "k-spot",
                "provider": "cb",
                "kind": "spot",
                "start": "2025-01-01",
                "end": "2026-12-31",
                "price_per_gpu_hour_usd": 3,
            },
            {
                "id": "k-lone",
                "provider": "cb",
                "kind": "reserved",
                "start": "2025-01-01",
                "end": "2025-12-31",
                "gpus": 100,
                "gpu_model": "H100-SXM",
                "value_usd": 1_200_000,
            },
            {
                "id": "k-lone-com",
                "provider": "cb",
                "kind": "commitment",
                "start": "2025-01-01",
                "end": "2025-04-30",
                "committed_spend_usd": 400_000,
            },
        ],
        "budget": {
            "initial_usd": 1_000_000_000,
            "ceiling_usd": 2_000_000_000,
            "start": "2025-01-01",
            "end": "2025-12-31",
        },
        "procurement": {
            "price_book": [
                {
                    "provider": "cb",
                    "site": "rb",
                    "gpu_model": "GB200",
                    "gpus_per_node": 4,
                    "price_per_gpu_hour_usd": 8,
                    "lead_time_days": 45,
                    "valid_from": "2025-01-20",
                    "valid_until": "2025-10-10",
                    "max_gpus": 1000,
                },
                {
                    "provider": "ca",
                    "site": "ra",
                    "gpu_model": "GB200",
                    "gpus_per_node": 4,
                    "price_per_gpu_hour_usd": 11,
                    "valid_from": "2025-01-01",
                },
            ]
        },
    }
    data.update(extra)
    return Fleet.model_validate(data)


def _cluster(cid: str, site: str, model: str, per_node: int, nodes: int, price: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "site": site,
        "gpu_model": model,
        "gpus_per_node": per_node,
        "nodes": nodes,
        "price_per_gpu_hour_usd": price,
        **extra,
    }


def _scenario(**extra: Any) -> PlanScenario:
    data: dict[str, Any] = {
        "name": "t",
        "start": "2025-01",
        "months": MONTHS,
        "existing_build_months": 4,
        "demand": [
            {"id": "g", "kind": "training", "gpu_model": "GB200", "growth": {"start_value": 1000, "monthly_growth": 0}},
            {
                "id": "h",
                "kind": "inference",
                "gpu_model": "H100-SXM",
                "growth": {"start_value": 10, "monthly_growth": 0},
            },
        ],
        "market": {
            "min_term_months": 6,
            "options": [
                {
                    "id": "opt-a",
                    "provider": "ca",
                    "gpu_model": "GB200",
                    "price_per_gpu_hour_usd": 9,
                    "available_from": "2025-03",
                    "available_until": "2025-05",
                },
            ],
        },
        "build": [
            {
                "id": "new",
                "site": "campus",
                "gpu_model": "GB200",
                "it_power_mw": 20,
                "capex_usd_per_mw": 10_000_000,
                "build_months": 6,
                "max_buildings": 3,
                "earliest_start": "2025-02",
            },
        ],
    }
    data.update(extra)
    return PlanScenario.model_validate(data)


def _demand() -> tuple[DemandLine, ...]:
    return (
        DemandLine("g", "training", "GB200", (1000.0,) * MONTHS),
        DemandLine("h", "inference", "H100-SXM", (10.0,) * MONTHS),
    )


@pytest.fixture
def inputs() -> PlanInputs:
    return build_inputs(_fleet(), _scenario(), _demand())


def _supply(inputs: PlanInputs, sid: str) -> Any:
    return next(s for s in inputs.supplies if s.id == sid)


def test_month_rules_are_conservative() -> None:
    assert first_month(START, date(2025, 6, 1)) == 5
    assert first_month(START, date(2025, 6, 15)) == 6
    assert last_month(START, date(2025, 9, 30)) == 8
    assert last_month(START, date(2025, 9, 29)) == 7


def test_owned_cluster_in_a_building(inputs: PlanInputs) -> None:
    s = _supply(inputs, "own-gb200")
    assert s.kind == "owned"
    assert s.marginal_usd_per_gpu_hour == pytest.approx(1200 * 1.2 * 50 / 1e6)  # 0.072 USD per GPU-hour
    assert s.capacity[:3] == (0.0, 0.0, 0.0)  # energised 2025-03-15: counts from April
    assert s.capacity[3] == 34_722.0 and s.capacity[-1] == 34_722.0
    assert s.online_month == 3  # not yet a fact: the risk model delays it
    assert s.building == "b1" and s.site == "campus"


def test_owned_cluster_without_energy_price_costs_its_list_price() -> None:
    fleet = _fleet()
    sites = [s.model_copy(update={"energy_usd_per_mwh": None}) if s.id == "campus" else s for s in fleet.sites]
    inputs = build_inputs(fleet.model_copy(update={"sites": sites}), _scenario(), _demand())
    assert _supply(inputs, "own-gb200").marginal_usd_per_gpu_hour == 1.5


def test_reserved_cluster_and_its_payment(inputs: PlanInputs) -> None:
    s = _supply(inputs, "ca-h100")
    assert (s.kind, s.marginal_usd_per_gpu_hour, s.contract) == ("reserved", 0.0, "k-res")
    assert s.capacity[:8] == (0.0, 800.0, 800.0, 800.0, 800.0, 800.0, 800.0, 0.0)  # Feb..Jul, the term
    pay = next(f for f in inputs.fixed if f.ref == "k-res")
    total = 800 * 2 * 181 * 24  # GPUs × price × term hours (181 days)
    assert pay.kind == "reserved"
    assert pay.usd[1:7] == pytest.approx((total / 6,) * 6)
    assert pay.usd[0] == 0 and pay.usd[7] == 0


def test_commitment_cluster_and_its_floor(inputs: PlanInputs) -> None:
    s = _supply(inputs, "ca-gb200")
    assert (s.kind, s.marginal_usd_per_gpu_hour) == ("commitment", 5.0)
    assert s.capacity[11] == 1000.0 and s.capacity[12] == 0.0  # only inside the term
    c = next(c for c in inputs.commitments if c.id == "k-com")
    assert c.sources == ("ca-gb200",)
    assert c.floor_usd[:12] == pytest.approx((1_000_000.0,) * 12) and c.floor_usd[12] == 0
    lone = next(c for c in inputs.commitments if c.id == "k-lone-com")
    assert lone.sources == () and lone.floor_usd[:5] == pytest.approx((100_000.0,) * 4 + (0.0,))


def test_on_demand_and_spot_clusters(inputs: PlanInputs) -> None:
    cb = _supply(inputs, "cb-h100")
    assert (cb.kind, cb.marginal_usd_per_gpu_hour) == ("on_demand", 7.0)
    assert [t for t, v in enumerate(cb.capacity) if v] == [6, 7, 8]  # 2025-06-15 → July; 2025-09-30 → through Sep
    spot = _supply(inputs, "cb-spot")
    assert (spot.kind, spot.marginal_usd_per_gpu_hour) == ("on_demand", 3.0)


def test_reserved_contract_no_cluster_names_is_its_own_supply(inputs: PlanInputs) -> None:
    s = _supply(inputs, "k-lone")
    assert (s.kind, s.provider, s.gpu_model) == ("reserved", "cb", "H100-SXM")
    assert s.capacity[:12] == (100.0,) * 12 and s.capacity[12] == 0
    pay = next(f for f in inputs.fixed if f.ref == "k-lone")
    assert pay.usd[:12] == pytest.approx((100_000.0,) * 12)


def test_building_capex_before_energisation(inputs: PlanInputs) -> None:
    capex = next(f for f in inputs.fixed if f.ref == "b1")
    # Energised in month 2 (March); 4 months before: Nov, Dec (sunk), Jan, Feb.
    assert capex.kind == "capex" and capex.provider == "own"
    assert capex.usd[:3] == pytest.approx((300_000_000.0, 300_000_000.0, 0.0))


def test_market_choices_exclusivity_and_lead(inputs: PlanInputs) -> None:
    book_b = next(m for m in inputs.markets if m.id == "pricebook-cb-GB200-0")
    assert book_b.lead_months == 2 and book_b.term_months == 6 and book_b.max_gpus_per_month == 1000
    assert book_b.site == "rb"
    # Valid 2025-01-20 .. 2025-10-10 (months 0..9); ca's GB200 exclusivity from 2025-01-01 to 2025-03-31 blocks
    # months whose first day lies inside it: Jan, Feb, Mar.
    assert [t for t, ok in enumerate(book_b.can_sign) if ok] == [3, 4, 5, 6, 7, 8, 9]
    book_a = next(m for m in inputs.markets if m.id == "pricebook-ca-GB200-1")
    assert all(book_a.can_sign) and book_a.max_gpus_per_month is None  # the exclusive provider itself
    option = next(m for m in inputs.markets if m.id == "opt-a")
    assert [t for t, ok in enumerate(option.can_sign) if ok] == [2, 3, 4]


def test_first_refusal_months_per_model(inputs: PlanInputs) -> None:
    rules = {r.gpu_model: r for r in inputs.rofr}
    assert set(rules) == {"GB200", "H100-SXM"}  # empty scope: every model with demand
    assert rules["GB200"].holder == "ca" and rules["GB200"].contract == "k-com"
    assert rules["GB200"].months == (1, 2, 3, 4)  # months 02 to 05 overlap [02-15, 05-01]


def test_build_choice_and_site_power(inputs: PlanInputs) -> None:
    (b,) = inputs.builds
    assert b.gpus_per_building == 13_888  # floor(20e6 / (1200 × 1.2))
    assert b.capex_usd_per_building == 200_000_000
    assert (b.earliest_month, b.build_months, b.max_buildings, b.provider) == (1, 6, 3, "own")
    (power,) = inputs.site_power
    assert power.site == "campus" and power.headroom_mw == pytest.approx(120 / 1.2 - 50)


def test_budget_envelope(inputs: PlanInputs) -> None:
    env = inputs.envelope_usd
    assert env[0] == pytest.approx(1e9 + 1e9 * 31 / 365)
    assert env[5] == pytest.approx(1e9 + 1e9 * 181 / 365)
    assert env[11] == pytest.approx(2e9)
    assert env[12] is None and env[13] is None  # months after the period: no constraint
    assert envelope(None, inputs.months) == (None,) * MONTHS


def test_envelope_before_the_budget_starts_is_the_initial_amount() -> None:
    fleet = _fleet()
    assert fleet.budget is not None
    budget = fleet.budget.model_copy(update={"start": date(2025, 3, 10)})
    env = envelope(budget, [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)])
    assert env[:2] == (1e9, 1e9) and env[2] is not None and env[2] > 1e9


def test_demand_past_the_limit_is_refused() -> None:
    bad = (DemandLine("g", "training", "GB200", (2e8,) * MONTHS),)
    with pytest.raises(ValueError, match="expected 0 to 100,000,000 GPUs"):
        build_inputs(_fleet(), _scenario(), bad)


def test_price_book_left_out_when_not_asked() -> None:
    scenario = _scenario(market={"from_price_book": False, "options": []})
    assert build_inputs(_fleet(), scenario, _demand()).markets == ()
