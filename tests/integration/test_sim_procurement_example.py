"""``stargate simulate`` on the bundled stargate-2025 example and its workload, run as a user runs it (a subprocess):
the example's own contracts take its draws past the budget's ceiling on 2027-01-01, so its one capacity request waits
over budget (a simulation has no admin to override); with the ceiling lifted, capacity requests go to the
first-refusal holder (Azure) while its clause is valid and straight to the market after 2025-10-28; the same seed
gives the same JSON; ``--no-rofr`` sends everything to the market; bad flags exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = (
    "--fleet",
    "examples/stargate-2025",
    "--trace",
    "examples/stargate-2025/workload.csv",
    "--trace-format",
    "native",
)
ROFR_ENDS = "2025-10-28"
CEILING = "ceiling_usd: 500_000_000_000"
TIMING = ("wall_s", "events_per_s", "jobs_per_s", "peak_rss_mb")


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "stargate", "simulate", *BASE, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def lifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example fleet with its budget's ceiling lifted from 500 B to 1,000 B USD (above its 2027 draws)."""
    fleet = tmp_path_factory.mktemp("fleet") / "stargate-2025"
    shutil.copytree(ROOT / "examples/stargate-2025", fleet, ignore=shutil.ignore_patterns("*.csv"))
    main = fleet / "00-fleet.yaml"
    text = main.read_text(encoding="utf-8")
    assert text.count(CEILING) == 1
    main.write_text(text.replace(CEILING, "ceiling_usd: 1_000_000_000_000"), encoding="utf-8")
    return fleet


def test_the_examples_one_request_waits_over_budget_because_its_own_contracts_pass_the_ceiling() -> None:
    p = _json()["procurement"]
    assert p["budget_conflicts"][0]["day"] == "2027-01-01" and p["budget_headroom_usd"] < -116e9
    assert p["requests"] == p["over_budget"] == 1 and p["awards"] == 0  # an open request: pressure raises no other
    (only,) = p["requests_detail"]
    assert (only["first_step"], only["holder"], only["offer"]) == ("holder", "azure", "matched")
    assert (only["outcome"], only["via"]) == ("over_budget", None)


@cache
def _json(*args: str) -> dict[str, Any]:
    done = _simulate("--json", *args)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_requests_go_to_the_holder_first_while_the_clause_is_valid_and_to_the_market_after(lifted: Path) -> None:
    done = _simulate("--json", "--fleet", str(lifted))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    p = out["procurement"]
    assert p["enabled"] and p["rofr"] and out["jobs_finished"] == out["jobs_total"]
    requests = p["requests_detail"]
    before = [r for r in requests if r["raised_day"] <= ROFR_ENDS]
    after = [r for r in requests if r["raised_day"] > ROFR_ENDS]
    assert before and after
    assert all(r["first_step"] == "holder" and r["holder"] == "azure" for r in before)
    assert all(r["first_step"] == "market" and r["offer"] is None for r in after)
    assert all(r["outcome"] == "awarded" for r in requests)
    assert {r["via"] for r in before} <= {"holder", "market"} and {r["via"] for r in after} == {"market"}
    assert p["offers"] == len(before) == p["matches"] + p["declines"] + p["expiries"] + p["not_matched"]
    assert p["awards_by_via"]["holder"] == sum(r["via"] == "holder" for r in requests)
    # the trace starts under the clause: trace time 0 is its first submission, not the fleet's as_of (2026-04-17)
    assert min(r["raised_day"] for r in requests) < "2025-08-01"
    # money: the ledger agrees with the run's cost; Oracle's 2027 commitment is unused; under 1,000 B USD, no conflict
    assert sum(p["spend_by_provider"].values()) == pytest.approx(out["cost_usd"], abs=1.0)
    assert p["commitment_shortfall"]["oracle-2027"]["shortfall_usd"] == 300e9
    assert p["budget_conflicts"] == [] and p["budget_headroom_usd"] > 0


def test_the_same_seed_gives_the_same_json() -> None:
    a, b = (
        dict(_json("--until", "100d", "--seed", "7")),
        json.loads(_simulate("--json", "--until", "100d", "--seed", "7").stdout),
    )
    for out in (a, b):
        for key in TIMING:
            out.pop(key)
    assert a == b
    assert a["procurement"]["requests"] >= 1


def test_no_rofr_sends_every_request_to_the_market() -> None:
    out = _json("--until", "100d", "--no-rofr")
    p = out["procurement"]
    assert not p["rofr"] and p["offers"] == 0 and p["requests"] >= 1
    assert all(r["first_step"] == "market" and r["raised_day"] <= ROFR_ENDS for r in p["requests_detail"])


def test_no_procurement_buys_nothing() -> None:
    p = _json("--until", "100d", "--no-procurement")["procurement"]
    assert not p["enabled"] and p["requests"] == 0 and p["status"] == "off (--no-procurement)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--holder-match-probability", "1.5"], "error: --holder-match-probability: found '1.5'; expected a number "),
        (["--holder-match-probability", "nan"], "--holder-match-probability: found 'nan'; expected a number from 0"),
        (["--holder-match-probability", "often"], "--holder-match-probability: found 'often'; expected a number"),
        (["--holder-response-days", "-1"], "--holder-response-days: found '-1'; expected a number from 0 to 365 days"),
        (["--holder-response-days", "inf"], "--holder-response-days: found 'inf'; expected a number from 0 to 365"),
    ],
)
def test_a_bad_holder_flag_exits_2_with_a_clear_message(args: list[str], message: str) -> None:
    done = _simulate("--json", *args)
    assert done.returncode == 2 and message in done.stderr and done.stdout == ""
    assert "Traceback" not in done.stderr
