"""Procurement in the simulator on a tiny fleet: queue pressure raises requests, the first-refusal holder answers
from the seeded generator, the market awards, awarded capacity comes online and is used, and nothing changes when
procurement is off or the fleet has no pressure trigger.

The fleet: 16 owned H100 GPUs; a commitment with holder 'holder' whose right of first refusal (10-day window) is
valid 2025-01-01 → 2025-03-01; a market quote at 2.00 USD per GPU-hour with 5 days of lead time. Four 16-GPU jobs
of 20 days, not preemptible, arrive at 2025-01-01 00:00 (one runs, 48 GPUs wait) and four more on 2025-03-12, after
the clause.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from stargate.fleetfile import loads_fleet
from stargate.sim import SimConfig, run_simulation
from stargate.traces import TraceJob

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86_400.0

FLEET = """
name: tiny-procurement
budget: {initial_usd: 1000000, ceiling_usd: 10000000, start: 2025-01-01, end: 2026-12-31}
providers:
  - {id: own, name: Own, kind: owned}
  - {id: holder, name: Holder, kind: cloud}
  - {id: market, name: Market, kind: cloud}
sites:
  - {id: own-site, provider: own, region: r}
  - {id: holder-site, provider: holder, region: r}
  - {id: market-site, provider: market, region: r}
clusters:
  - {id: own-h100, site: own-site, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 2, price_per_gpu_hour_usd: 1.0}
contracts:
  - id: holder-deal
    provider: holder
    kind: commitment
    start: 2025-01-01
    end: 2026-12-31
    committed_spend_usd: 1000
    right_of_first_refusal:
      holder: holder
      response_window_days: 10
      match_rule: match_price_and_date
      valid_from: 2025-01-01
      valid_until: 2025-03-01
teams: [{id: t, name: T}]
queues: [{id: q, team: t}]
"""

PROCUREMENT = """
procurement:
  price_book:
    - {provider: market, site: market-site, gpu_model: H100-SXM, gpus_per_node: 8, price_per_gpu_hour_usd: 2.0,
       lead_time_days: 5, valid_from: 2025-01-01}
  pressure: {min_waiting_gpus: 16, min_wait_hours: 1, sustain_hours: 2, block_gpus: 8, term_days: 30,
             lead_time_days: 0, cooldown_days: 10}
  holder_response: {match_probability: 0.5, response_days: 2}
"""

JOBS = [TraceJob(f"a{k}", 0.0, 20 * DAY, 16, "q", ("H100-SXM",), preemptible=False) for k in range(4)]
JOBS += [TraceJob(f"b{k}", 70 * DAY, 20 * DAY, 16, "q", ("H100-SXM",), preemptible=False) for k in range(4)]

TIMING = ("wall_s", "events_per_s", "jobs_per_s", "peak_rss_mb")


def _run(procurement: bool = True, **config: Any) -> dict[str, Any]:
    fleet = loads_fleet(FLEET + (PROCUREMENT if procurement else ""))
    out, _ = run_simulation(fleet, JOBS, SimConfig(**config), start=EPOCH)
    return out


def _requests(out: dict[str, Any]) -> list[dict[str, Any]]:
    return list(out["procurement"]["requests_detail"])


def test_the_holder_is_asked_first_while_its_clause_is_valid_and_the_market_after() -> None:
    out = _run(holder_match_probability=1.0)
    first, *rest = _requests(out)
    assert first["raised_day"] == "2025-01-01" and first["first_step"] == "holder"
    assert (first["offer"], first["via"], first["provider"]) == ("matched", "holder", "holder")
    assert first["gpus"] == 48 and first["price_usd_per_gpu_hour"] == "2.0"  # matched the market's benchmark
    later = [r for r in rest if r["raised_day"] > "2025-03-01"]
    assert later and all(r["first_step"] == "market" and r["holder"] is None for r in later)
    assert all(r["outcome"] == "awarded" and r["via"] == "market" for r in later)
    p = out["procurement"]
    assert p["enabled"] and p["offers"] == p["matches"] == 1 + sum(r["first_step"] == "holder" for r in rest)


def test_a_decline_sends_the_request_to_the_market_after_the_response_days() -> None:
    out = _run(holder_match_probability=0.0, holder_response_days=2.0)
    first = _requests(out)[0]
    assert (first["offer"], first["outcome"], first["via"], first["provider"]) == (
        "declined",
        "awarded",
        "market",
        "market",
    )
    # declined 2 days after the raise on 2025-01-01, then 5 days of lead time
    assert first["capacity_from"] == "2025-01-08" and first["days_to_capacity"] == 7
    assert out["procurement"]["declines"] >= 1 and out["procurement"]["matches"] == 0


def test_an_answer_after_the_window_lets_the_offer_expire() -> None:
    out = _run(holder_match_probability=1.0, holder_response_days=30.0)  # the window is 10 days
    first = _requests(out)[0]
    assert (first["offer"], first["via"]) == ("expired", "market")
    assert first["capacity_from"] == "2025-01-16"  # expired 2025-01-11 03:00 + 5 days of lead time
    assert out["procurement"]["expiries"] >= 1


def test_without_first_refusal_every_request_goes_to_the_market() -> None:
    out = _run(rofr=False, holder_match_probability=1.0)
    requests = _requests(out)
    assert requests and all(r["first_step"] == "market" and r["via"] == "market" for r in requests)
    assert out["procurement"]["offers"] == 0 and out["procurement"]["rofr"] is False


def test_awarded_capacity_comes_online_on_its_start_day_and_is_used() -> None:
    bought = _run(holder_match_probability=0.0)
    kept = _run(procurement=False)
    first = _requests(bought)[0]
    award_contract = f"award-{first['id']}"
    assert bought["procurement"]["spend_by_contract"][award_contract] > 0
    assert bought["procurement"]["spend_by_provider"]["market"] > 0
    assert bought["avg_jct_s"] < kept["avg_jct_s"]
    # the three waiting jobs started when the award came online (2025-01-08), not before
    assert bought["max_wait_s"] >= 7 * DAY
    assert date.fromisoformat(first["capacity_from"]) == date(2025, 1, 8)


def test_same_seed_same_summary_and_the_holder_draws_follow_the_seed() -> None:
    a, b = _run(seed=3), _run(seed=3)
    for out in (a, b):
        for key in TIMING:
            out.pop(key)
    assert a == b
    outcomes = {tuple(r["offer"] for r in _requests(_run(seed=s))) for s in range(8)}
    assert len(outcomes) > 1  # p = 0.5: some seeds match, some decline


def test_no_pressure_section_or_procurement_off_changes_nothing() -> None:
    plain = _run(procurement=False)
    fleet = loads_fleet(FLEET + PROCUREMENT)
    out, _ = run_simulation(fleet, JOBS, SimConfig(procurement=False), start=EPOCH)
    for summary in (plain, out):
        for key in TIMING:
            summary.pop(key)
    p_plain, p_off = plain.pop("procurement"), out.pop("procurement")
    assert plain == out
    assert not p_plain["enabled"] and p_plain["requests"] == 0 and "no procurement.pressure" in p_plain["status"]
    assert not p_off["enabled"] and p_off["requests"] == 0 and p_off["status"] == "off (--no-procurement)"


@pytest.mark.parametrize(
    ("field", "value"),
    [("holder_match_probability", 1.5), ("holder_match_probability", float("nan")), ("holder_response_days", -1.0)],
)
def test_bad_holder_settings_are_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"simulation setting {field}: found"):
        _run(**{field: value})


def test_the_ledger_spend_matches_the_cost_and_a_commitment_shortfall_is_reported() -> None:
    out = _run(holder_match_probability=1.0)
    p = out["procurement"]
    assert sum(p["spend_by_provider"].values()) == pytest.approx(out["cost_usd"], abs=0.05)
    short = p["commitment_shortfall"]["holder-deal"]
    assert short["committed_usd"] == 1000.0 and short["projected"] is True
    assert short["shortfall_usd"] == pytest.approx(max(0.0, 1000.0 - short["spent_at_term_end_usd"]), abs=0.01)
    assert p["budget_headroom_usd"] == pytest.approx(10_000_000 - 1000 - p["awarded_cost_usd"], abs=0.01)


def test_a_holder_answering_at_once_answers_at_the_raise_instant() -> None:
    out = _run(holder_match_probability=1.0, holder_response_days=0.0, record_log=True)
    first = _requests(out)[0]
    events = [e for e in out["procurement"]["events"] if e["request"] == first["id"]]
    assert [e["kind"] for e in events] == ["raised", "offered", "matched", "awarded"]
    assert {e["at"] for e in events} == {first["raised_at"]}
