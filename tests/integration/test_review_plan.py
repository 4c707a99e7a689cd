"""Review of capacity planning: defects found by attacking the plan engine and the plans API, each pinned by a
test that fails while the defect is there (``xfail(strict=True)``). Engine tests solve with the real HiGHS; server
tests run on SQLite and, with STARGATE_TEST_POSTGRES_URL, PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.server.money_support import Money, money_harness
from stargate.planning.highs import highs_solver
from stargate.planning.run import compute
from stargate.planning.scenario_file import load_scenario
from stargate.store.models import PlanRow
from stargate.store.repositories import plans as plan_repo

CLOUDS = """\
name: review
providers:
  - {id: alpha, name: Alpha, kind: cloud}
  - {id: beta, name: Beta, kind: cloud}
sites:
  - {id: alpha-1, provider: alpha, region: x}
  - {id: beta-1, provider: beta, region: x}
teams:
  - {id: t, name: T}
queues:
  - {id: q, team: t, quotas: [{gpu_model: "*", gpus: 8}]}
"""

SCENARIO = """\
name: review
fleet: fleet.yaml
start: 2027-01
months: 6
unmet_penalty_usd_per_gpu_hour: 100
demand:
  - id: d
    kind: training
    gpu_model: GB200
    growth: {start_value: 300, monthly_growth: 0}
"""


def _plan(tmp_path: Path, fleet: str, scenario: str) -> Any:
    (tmp_path / "fleet.yaml").write_text(fleet, encoding="utf-8")
    (tmp_path / "plan.yaml").write_text(scenario, encoding="utf-8")
    loaded = load_scenario(tmp_path / "plan.yaml")
    return compute(loaded.scenario, loaded.fleet, loaded.history, solver=highs_solver(time_limit_s=30.0)).plan


def test_review_first_refusal_holds_in_the_month_the_clause_and_the_quotes_start(tmp_path: Path) -> None:
    # Alpha holds first refusal from 2027-01-15; both quotes can only be taken from 2027-01-15, the same day. Any
    # signing made in January is therefore made while the clause is in force, and alpha's quote (no limit) is
    # available then: beta must not be signed in January.
    fleet = (
        CLOUDS
        + """\
contracts:
  - id: alpha-frame
    provider: alpha
    kind: on_demand
    start: 2027-01-01
    end: 2027-12-31
    price_per_gpu_hour_usd: 50
    right_of_first_refusal: {holder: alpha, response_window_days: 30, valid_from: 2027-01-15, valid_until: 2027-12-31}
procurement:
  price_book:
    - {provider: alpha, site: alpha-1, gpu_model: GB200, gpus_per_node: 4, price_per_gpu_hour_usd: 20,
       valid_from: 2027-01-15}
    - {provider: beta, site: beta-1, gpu_model: GB200, gpus_per_node: 4, price_per_gpu_hour_usd: 2,
       valid_from: 2027-01-15}
"""
    )
    scenario = SCENARIO + "market:\n  from_price_book: true\n  min_term_months: 6\n"
    plan = _plan(tmp_path, fleet, scenario)
    assert plan.status == "optimal"
    january_non_holder = [a for a in plan.actions if a.kind == "sign" and a.month == 0 and a.provider != "alpha"]
    assert january_non_holder == []


def test_review_the_actions_of_a_plan_fit_a_hard_budget(tmp_path: Path) -> None:
    # Horizon 2027-01..06 = 4,344 h. One option at 1 USD per GPU-hour for 6 months: a GPU costs 4,344 USD. The
    # budget (hard) is 10.9 GPUs' worth: the plan can afford 10 whole GPUs, never 11.
    envelope = 4_344 * 10.9
    fleet = CLOUDS + (
        f"budget: {{initial_usd: {envelope}, ceiling_usd: {envelope}, start: 2027-01-01, end: 2027-12-31}}\n"
    )
    scenario = SCENARIO + (
        "market:\n  from_price_book: false\n  options:\n"
        "    - {id: a, provider: alpha, gpu_model: GB200, price_per_gpu_hour_usd: 1, min_term_months: 6}\n"
    )
    plan = _plan(tmp_path, fleet, scenario)
    assert plan.status == "optimal"
    signs = [a for a in plan.actions if a.kind == "sign"]
    assert signs and all(a.term_months == 6 and a.month == 0 for a in signs)  # every payment inside the horizon
    assert sum(a.cost_usd for a in signs) <= envelope + 0.01


@pytest.fixture
def m(db_url: str, tmp_path: Path) -> Iterator[Money]:
    yield from money_harness(db_url, tmp_path / "home")


def _h100_sign(online: str) -> dict[str, Any]:
    return {
        "kind": "sign",
        "option": "pricebook-coreweave-H100-SXM-1",
        "provider": "coreweave",
        "site": "coreweave-us",
        "gpu_model": "H100-SXM",
        "month": online,
        "online_month": online,
        "gpus": 8,
        "buildings": 0,
        "term_months": 1,
        "price_usd_per_gpu_hour": 3.0,
        "cost_usd": 17_856.0,
    }


def test_review_apply_never_moves_a_signing_to_other_months(m: Money) -> None:
    # The clock is 2026-12-01. Two H100 signings of one month each (H100 is outside Oracle's clause: the market
    # awards them at once): one online 2026-06, already past, and one online 2027-03.
    actions = [_h100_sign("2026-06"), _h100_sign("2027-03")]
    result = {"scenario": {"name": "crafted"}, "plan": {"actions": actions, "unmet_gpu_hours": 0.0}, "risk": None}
    with m.h.ctx.db.write() as session:
        plan_repo.add(
            session,
            PlanRow(
                id="p-review0001",
                created_at=m.now,
                created_by="token:admin",
                fleet_version="v",
                scenario="crafted",
                scenario_yaml="name: crafted\n",
                scenarios=0,
                seed=0,
                status="computed",
                result=result,
                first_shortfall_month=None,
                unmet_gpu_hours=0.0,
            ),
        )
    response = m.call("POST", "/plans/p-review0001/apply")
    assert response.status_code in (200, 409, 422), response.text
    if response.status_code != 200:
        return  # refusing a plan whose months are past is a correct answer
    out = response.json()
    for item in out["requests"]:
        action = actions[item["action"]]
        award = item["request"]["award"]
        if award is not None:  # what is bought starts when the plan said, or the action is not applied
            assert award["start"] == f"{action['online_month']}-01", (action["online_month"], award["start"])
