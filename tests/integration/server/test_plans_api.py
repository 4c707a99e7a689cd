"""Capacity plans through the API: a scenario is computed against the server's fleet and stored; listed and shown;
a bad scenario (located problems) or an infeasible one (the diagnosis) stores nothing; applying raises one capacity
request per 'sign' action (raised_by 'plan'), offered to the first-refusal holder first, all or none, once; only
admins apply. Runs on SQLite and, with STARGATE_TEST_POSTGRES_URL, PostgreSQL."""

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from integration.server.money_support import Money, money_harness
from stargate.server.auth import Principal, Role
from stargate.server.errors import ConflictError
from stargate.server.services import plans as plan_service
from stargate.server.services.plans import ledger_history, request_for
from stargate.store.models import PlanRow, RunRow, parse_job_id
from stargate.store.repositories import plans as plan_repo

GROWTH = """\
name: gb200-growth
start: 2027-01
months: 12
unmet_penalty_usd_per_gpu_hour: 100
over_budget_penalty: 0.0
demand:
  - id: training
    kind: training
    gpu_model: GB200
    growth: {start_value: 20, monthly_growth: 0.0}
market:
  from_price_book: true
  min_term_months: 6
"""
"""20 GB200 a month against the lab's 4: the plan signs the price book's CoreWeave GB200 (Oracle, the first-refusal
holder, offers nothing in the scenario, so others are free to sign)."""

INFEASIBLE = GROWTH.replace("unmet_penalty_usd_per_gpu_hour: 100\n", "")
"""Demand must be met, but the price book's 30-day lead leaves the first month short."""


@pytest.fixture
def m(db_url: str, tmp_path: Path) -> Iterator[Money]:
    yield from money_harness(db_url, tmp_path / "home")


def _plans(m: Money) -> int:
    with m.h.ctx.db.read() as session:
        return plan_repo.count(session)


def _submit(m: Money, text: str = GROWTH, **body: Any) -> Any:
    return m.call("POST", "/plans", json={"scenario_yaml": text, **body})


def _stored(m: Money, actions: list[dict[str, Any]], plan_id: str = "p-crafted01") -> str:
    """Store a plan with these actions directly (apply is tested apart from what the solver chooses)."""
    result = {"scenario": {"name": "crafted"}, "plan": {"actions": actions, "unmet_gpu_hours": 0.0}, "risk": None}
    with m.h.ctx.db.write() as session:
        plan_repo.add(
            session,
            PlanRow(
                id=plan_id,
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
    return plan_id


def _sign(model: str = "GB200", gpus: int = 16, online: str = "2027-02", provider: str = "coreweave") -> dict[str, Any]:
    return {
        "kind": "sign",
        "option": f"pricebook-{provider}-{model}-0",
        "provider": provider,
        "site": None,
        "gpu_model": model,
        "month": "2027-01",
        "online_month": online,
        "gpus": gpus,
        "buildings": 0,
        "term_months": 6,
        "price_usd_per_gpu_hour": 10.0,
        "cost_usd": 1.0,
    }


BUILD = {
    "kind": "build",
    "option": "lab-build",
    "provider": "lab",
    "site": "lab-1",
    "gpu_model": "GB200",
    "month": "2027-01",
    "online_month": "2027-07",
    "gpus": 100,
    "buildings": 1,
    "term_months": None,
    "price_usd_per_gpu_hour": None,
    "cost_usd": 5.0,
}


def test_a_plan_is_computed_against_the_servers_fleet_and_stored(m: Money) -> None:
    version = m.ok("GET", "/fleet")["version"]
    response = _submit(m, scenarios=20, seed=7)
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["id"].startswith("p-") and stored["status"] == "computed" and not stored["applied"]
    assert stored["fleet_version"] == version and stored["scenario"] == "gb200-growth"
    assert stored["created_by"] == "token:admin" and stored["scenarios"] == 20 and stored["seed"] == 7
    plan = stored["result"]["plan"]
    assert len(plan["months"]) == 12
    signs = [a for a in plan["actions"] if a["kind"] == "sign"]
    assert signs and all(a["provider"] == "coreweave" and a["gpu_model"] == "GB200" for a in signs)
    assert stored["first_shortfall_month"] == plan["first_shortfall_month"] == "2027-01"  # the 30-day lead
    assert stored["unmet_gpu_hours"] == pytest.approx(plan["unmet_gpu_hours"]) and plan["unmet_gpu_hours"] > 0
    assert stored["result"]["risk"]["scenarios"] == 20 and stored["result"]["risk"]["seed"] == 7
    assert _plans(m) == 1


def test_plans_are_listed_newest_first_and_shown_whole(m: Money) -> None:
    first = _submit(m).json()
    m.tick(hours=1)
    second = _submit(m, scenarios=0).json()
    listed = m.ok("GET", "/plans", m.h.headers("viewer", "alpha"))  # viewers read plans
    assert [p["id"] for p in listed] == [second["id"], first["id"]]
    assert set(listed[0]) >= {"id", "created_at", "scenario", "status", "first_shortfall_month", "unmet_gpu_hours"}
    assert "result" not in listed[0] and listed[0]["applied"] is False
    assert [p["id"] for p in m.ok("GET", "/plans?limit=1")] == [second["id"]]
    shown = m.ok("GET", f"/plans/{first['id']}")
    assert shown["scenario_yaml"] == GROWTH and shown["result"] == first["result"]
    assert second["result"]["risk"] is None
    missing = m.call("GET", "/plans/p-nope")
    assert missing.status_code == 404 and "no plan 'p-nope'" in missing.json()["detail"]


def test_a_bad_scenario_is_refused_with_located_problems_and_nothing_is_stored(m: Money) -> None:
    bad = GROWTH.replace("gpu_model: GB200", "gpu_model: TPU-v9").replace("months: 12", "months: -3")
    response = _submit(m, bad)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("invalid scenario: scenario:")
    assert "scenario:3:1: months: found -3; expected" in detail  # file 'scenario', line 3, the field, found, expected
    not_yaml = _submit(m, "name: [unclosed\n")
    assert not_yaml.status_code == 422 and not_yaml.json()["detail"].startswith("invalid scenario: scenario:1:")
    trace = GROWTH.replace("growth: {start_value: 20, monthly_growth: 0.0}", "fit: {trace: /etc/passwd}")
    refused = _submit(m, trace)
    assert refused.status_code == 422 and "demand[0].fit.trace" in refused.json()["detail"]
    assert _submit(m, scenarios=1001).status_code == 422
    assert _submit(m, seed=-1).status_code == 422
    assert _plans(m) == 0


def test_an_infeasible_scenario_is_refused_with_the_diagnosis_in_words(m: Money) -> None:
    response = _submit(m, INFEASIBLE)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("infeasible plan: ") and "demand" in detail
    assert _plans(m) == 0


def test_who_may_compute_and_read_plans(m: Money) -> None:
    assert _submit(m).status_code == 201
    member = m.call("POST", "/plans", m.h.headers("member", "alpha"), json={"scenario_yaml": GROWTH})
    assert member.status_code == 201, member.text
    viewer = m.call("POST", "/plans", m.h.headers("viewer", "alpha"), json={"scenario_yaml": GROWTH})
    assert viewer.status_code == 403 and "'admin' or 'member'" in viewer.json()["detail"]
    provider = m.call("GET", "/plans", m.provider("oracle"))
    assert provider.status_code == 403
    assert m.h.client.get("/api/v1/plans").status_code == 401


def test_apply_raises_one_request_per_sign_action_offered_to_the_holder_first(m: Money) -> None:
    plan = _submit(m).json()
    actions = plan["result"]["plan"]["actions"]
    signs = [n for n, a in enumerate(actions) if a["kind"] == "sign"]
    assert signs

    out = m.ok("POST", f"/plans/{plan['id']}/apply", json={})

    assert [r["action"] for r in out["requests"]] == signs
    assert out["warnings"] == []  # computed on the fleet in force
    requests = {r["id"]: r for r in m.ok("GET", "/procurement/requests")}
    assert len(requests) == len(signs)
    for item in out["requests"]:
        action, req = actions[item["action"]], requests[item["request"]["id"]]
        assert req["raised_by"] == "plan" and req["actor"] == "token:admin"
        assert req["gpu_model"] == "GB200" and req["gpus"] == action["gpus"]
        assert req["start"] == f"{action['online_month']}-01"
        assert req["reason"].startswith(f"plan {plan['id']} action {item['action']}: sign ")
        assert f"(coreweave option {action['option']})" in req["reason"]
        # Oracle's first refusal covers GB200: the request is offered to the holder before any market step
        assert req["state"] == "offered" and req["offer"]["holder"] == "oracle"
    assert [e["kind"] for e in out["events"]] == ["raised", "offered"] * len(signs)
    shown = m.ok("GET", f"/plans/{plan['id']}")
    assert shown["status"] == "applied" and shown["applied_by"] == "token:admin"
    assert shown["applied_requests"] == {str(r["action"]): r["request"]["id"] for r in out["requests"]}
    assert m.ok("GET", "/plans")[0]["applied"] is True


def test_request_terms_of_a_sign_action() -> None:
    req = request_for("p-1", 3, _sign(gpus=1_000, online="2027-11") | {"term_months": 18})
    assert req.start == date(2027, 11, 1) and req.term_days == (date(2029, 5, 1) - date(2027, 11, 1)).days
    assert req.raised_by == "plan" and req.gpus == 1_000
    assert req.reason == (
        "plan p-1 action 3: sign 1,000 GPUs of GB200 from 2027-11 for 18 months "
        "(coreweave option pricebook-coreweave-GB200-0)"
    )


def test_a_request_outside_the_holders_clause_goes_to_the_market_and_builds_are_not_applicable(m: Money) -> None:
    plan_id = _stored(m, [BUILD, _sign(model="H100-SXM", gpus=8)])
    out = m.ok("POST", f"/plans/{plan_id}/apply")
    assert [(s["action"], s["kind"]) for s in out["not_applicable"]] == [(0, "build")]
    assert "not a purchase" in out["not_applicable"][0]["reason"]
    (item,) = out["requests"]
    assert item["action"] == 1 and item["request"]["offer"] is None
    assert item["request"]["state"] in {"awarded", "over_budget", "market"}
    kinds = [e["kind"] for e in out["events"]]
    assert kinds[:2] == ["raised", "market"] and "offered" not in kinds


def test_signings_whose_month_has_passed_are_not_applicable(m: Money) -> None:
    # The server's clock is 2026-12-01: a signing of 2026-10 (online 2026-11) has passed, one of 2026-12 has not.
    past = _sign(online="2026-11") | {"month": "2026-10"}
    now = _sign(online="2027-02") | {"month": "2026-12"}
    plan_id = _stored(m, [past, now, BUILD])
    out = m.ok("POST", f"/plans/{plan_id}/apply")
    assert [(s["action"], s["kind"]) for s in out["not_applicable"]] == [(0, "sign"), (2, "build")]
    assert out["not_applicable"][0]["reason"] == "its month 2026-10 has passed; plan again from today"
    (item,) = out["requests"]
    assert item["action"] == 1 and item["request"]["start"] == "2027-02-01"
    (warning,) = out["warnings"]  # stored on fleet version 'v', not the one in force: applied, with a warning
    assert f"plan {plan_id} was computed on fleet version v, the fleet in force is version" in warning
    assert m.ok("GET", f"/plans/{plan_id}")["applied_requests"] == {"1": item["request"]["id"]}


def test_a_plan_with_no_signing_left_is_refused_and_raises_nothing(m: Money) -> None:
    before = m.rows()
    online_past = _sign(online="2026-11") | {"month": "2026-11"}
    plan_id = _stored(m, [online_past, BUILD, _sign(online="2027-02") | {"month": "2027-01"}])
    refused = m.call("POST", f"/plans/{plan_id}/apply", json={"actions": [0, 1]})
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert detail.startswith(f"plan {plan_id}: found no action left to apply (action 0: its month 2026-11 has passed")
    assert detail.endswith("nothing was raised; plan again from today")
    assert m.rows() == before and m.ok("GET", f"/plans/{plan_id}")["status"] == "computed"
    m.tick(days=62)  # 2027-02-01: every signing of the plan has passed
    again = m.call("POST", f"/plans/{plan_id}/apply")
    assert again.status_code == 409 and "action 2: its month 2027-01 has passed" in again.json()["detail"]
    assert m.ok("GET", "/procurement/requests") == []


def test_selected_actions_only_and_indices_are_checked(m: Money) -> None:
    plan_id = _stored(m, [_sign(gpus=8), _sign(gpus=16), BUILD])
    assert m.call("POST", f"/plans/{plan_id}/apply", json={"actions": [3]}).status_code == 422
    twice = m.call("POST", f"/plans/{plan_id}/apply", json={"actions": [1, 1]})
    assert twice.status_code == 422 and "body.actions[1]" in twice.json()["detail"]
    only_build = m.call("POST", f"/plans/{plan_id}/apply", json={"actions": [2]})
    assert only_build.status_code == 422 and "no 'sign' action" in only_build.json()["detail"]
    out = m.ok("POST", f"/plans/{plan_id}/apply", json={"actions": [1]})
    assert [(r["action"], r["request"]["gpus"]) for r in out["requests"]] == [(1, 16)]
    assert len(m.ok("GET", "/procurement/requests")) == 1


def test_a_plan_is_applied_once(m: Money) -> None:
    plan_id = _stored(m, [_sign()])
    m.ok("POST", f"/plans/{plan_id}/apply")
    again = m.call("POST", f"/plans/{plan_id}/apply")
    assert again.status_code == 409
    assert "applied at 2026-12-01T12:00:00Z by token:admin" in again.json()["detail"]
    assert len(m.ok("GET", "/procurement/requests")) == 1


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_admins_apply(m: Money, role: str) -> None:
    plan_id = _stored(m, [_sign()])
    response = m.call("POST", f"/plans/{plan_id}/apply", m.h.headers(role, "alpha"))
    assert response.status_code == 403
    assert m.call("POST", f"/plans/{plan_id}/apply", m.provider("oracle")).status_code == 403
    assert m.ok("GET", "/procurement/requests") == [] and m.ok("GET", f"/plans/{plan_id}")["status"] == "computed"


def test_apply_is_all_or_nothing(m: Money) -> None:
    before = m.rows()
    # the second action names a GPU model the fleet does not have: the procurement step refuses it
    plan_id = _stored(m, [_sign(gpus=8), _sign(model="TPU-v9", gpus=8)])
    response = m.call("POST", f"/plans/{plan_id}/apply")
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"plan {plan_id} action 1: body.gpu_model: found 'TPU-v9'")
    assert detail.endswith("(nothing was raised)")
    assert m.rows() == before  # the first request, its offer and events were rolled back with the second
    assert m.ok("GET", "/procurement/requests") == []
    assert m.ok("GET", f"/plans/{plan_id}")["status"] == "computed"
    too_many = _stored(m, [_sign(gpus=8), _sign(gpus=20_000_000)], plan_id="p-crafted02")
    refused = m.call("POST", f"/plans/{too_many}/apply")
    assert refused.status_code == 422 and "action 1: gpus: found 20000000" in refused.json()["detail"]
    assert m.rows() == before


def test_ledger_history_is_monthly_gpu_averages_of_recorded_runs() -> None:
    now = datetime(2027, 3, 16, tzinfo=UTC)
    spans = [
        (8, datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)),  # 8 GPUs all January
        (4, datetime(2027, 1, 31, 12, tzinfo=UTC), None),  # 4 GPUs from 31 January 12:00, still running
    ]
    history = dict(ledger_history(spans, now))
    assert history[date(2027, 1, 1)] == pytest.approx(8 + 4 * 12 / (31 * 24))
    assert history[date(2027, 2, 1)] == pytest.approx(4.0)
    assert history[date(2027, 3, 1)] == pytest.approx(4.0)  # the current month: over the hours so far
    assert ledger_history([], now) == []


def _gb200_run(m: Money, gpus: int, start: datetime, end: datetime) -> None:
    job = m.h.submit(team="alpha", queue="alpha-q")
    row_id = parse_job_id(str(job["id"]))
    with m.h.ctx.db.write() as session:
        session.add(
            RunRow(
                job_id=row_id,
                attempt=0,
                executor="local",
                cluster="lab-gb200",
                created_at=start,
                ended=True,
                ended_at=end,
                gpus=gpus,
                price_usd_per_gpu_hour=Decimal("6.25"),
                list_price_usd_per_gpu_hour=Decimal("6.25"),
                provider="lab",
                gpu_model="GB200",
                region="local",
                started_at=start,
            )
        )


def test_a_fit_without_a_trace_is_fitted_to_the_servers_ledger(m: Money) -> None:
    fitted = GROWTH.replace("growth: {start_value: 20, monthly_growth: 0.0}", "fit: {scale: 1.0}")
    empty = _submit(m, fitted)
    assert empty.status_code == 422  # no runs recorded yet
    assert "demand[0].fit: found 0 months with GB200 runs in the server's ledger" in empty.json()["detail"]
    # 2 GB200 busy all September, 4 all October, 8 all November 2026: doubling every month
    for gpus, month in ((2, 9), (4, 10), (8, 11)):
        _gb200_run(m, gpus, datetime(2026, month, 1, tzinfo=UTC), datetime(2026, month + 1, 1, tzinfo=UTC))
    response = _submit(m, fitted)
    assert response.status_code == 201, response.text
    demand = [row["demand_gpus"]["GB200"] for row in response.json()["result"]["plan"]["months"]]
    assert demand[0] == pytest.approx(32, rel=1e-3) and demand[1] == pytest.approx(64, rel=1e-3)  # 2027-01, -02


def test_a_third_plan_at_once_is_told_to_come_back(m: Money, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_service, "_computing", threading.BoundedSemaphore(1))
    assert plan_service._computing.acquire(blocking=False)  # another plan is being computed
    busy = _submit(m)
    assert busy.status_code == 503 and "being computed already" in busy.json()["detail"]
    plan_service._computing.release()
    assert _submit(m).status_code == 201 and _plans(m) == 1


def test_concurrent_applies_raise_the_requests_once(m: Money) -> None:
    plan_id = _stored(m, [_sign(gpus=8), _sign(gpus=16)])
    admin = Principal(token_id="t-admin", name="admin", team=None, role=Role.ADMIN)
    outcomes: list[str] = []

    def apply() -> None:
        try:
            with m.h.ctx.db.write() as session:
                plan_service.apply(session, admin, plan_id, None, m.now)
            outcomes.append("applied")
        except ConflictError:
            outcomes.append("409")

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["409", "applied"]
    assert len(m.ok("GET", "/procurement/requests")) == 2
