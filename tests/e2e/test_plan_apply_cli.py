"""``stargate plan submit|list|show|apply`` through a real server: a scenario file is computed on the server against
its fleet and stored, listed and shown; applying it raises one capacity request per 'sign' action (raised_by
'plan'), offered first to the first-refusal holder; a second apply is refused; a bad scenario's problems are
located in the file given (exit 2), an infeasible one gives the diagnosis (exit 1)."""

import json
import subprocess
from pathlib import Path

from e2e_support import ServerFactory, child_environment, run_cli

MONEY_FLEET = Path(__file__).parents[1] / "integration" / "server" / "fleet" / "money.yaml"
SCENARIO = """\
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


def _plan_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``stargate plan ARGS`` as a user runs it."""
    return run_cli(["plan", *args], env, timeout_s=300)


def test_submit_list_show_and_apply_a_plan_through_the_cli(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(MONEY_FLEET).start()
    base = {"STARGATE_CONFIG_DIR": str(tmp_path / "cfg"), "STARGATE_URL": server.url}
    admin = child_environment(base | {"STARGATE_TOKEN": server.admin_token})
    scenario = tmp_path / "plan.yaml"
    scenario.write_text(SCENARIO)

    submitted = _plan_cli(["submit", "--scenario", str(scenario), "--scenarios", "10", "--seed", "3", "--json"], admin)
    assert submitted.returncode == 0, submitted.stderr
    stored = json.loads(submitted.stdout)
    plan_id = stored["id"]
    assert stored["scenario"] == "gb200-growth" and stored["result"]["risk"]["scenarios"] == 10
    signs = [n for n, a in enumerate(stored["result"]["plan"]["actions"]) if a["kind"] == "sign"]
    assert signs

    plain = _plan_cli(["submit", "--scenario", str(scenario)], admin)
    assert plain.returncode == 0, plain.stderr
    assert "scenario gb200-growth" in plain.stdout and "first shortfall 2027-01" in plain.stdout

    listed = _plan_cli(["list"], admin)
    assert listed.returncode == 0 and plan_id in listed.stdout and "computed" in listed.stdout
    shown = _plan_cli(["show", plan_id], admin)
    assert shown.returncode == 0 and "pricebook-coreweave-GB200-0" in shown.stdout

    member = server.create_token("alpha", "member", "alice")
    refused = _plan_cli(["apply", plan_id], child_environment(base | {"STARGATE_TOKEN": member}))
    assert refused.returncode == 1 and "403 forbidden" in refused.stderr

    applied = _plan_cli(["apply", plan_id], admin)
    assert applied.returncode == 0, applied.stderr
    assert f"plan {plan_id} applied: {len(signs)} capacity request" in applied.stdout
    assert applied.stdout.count("offered to oracle") == len(signs)  # Oracle's first refusal covers GB200
    requests = json.loads(run_cli(["procure", "requests", "--json"], admin).stdout)
    assert len(requests) == len(signs) and {r["raised_by"] for r in requests} == {"plan"}
    assert all(r["reason"].startswith(f"plan {plan_id} action ") for r in requests)
    again = _plan_cli(["apply", plan_id], admin)
    assert again.returncode == 2 and "409 conflict" in again.stderr
    assert "applied" in _plan_cli(["list"], admin).stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(SCENARIO.replace("months: 12", "months: -3"))
    invalid = _plan_cli(["submit", "--scenario", str(bad)], admin)
    assert invalid.returncode == 2
    assert invalid.stderr.startswith(f"error: 422 invalid: invalid scenario: {bad}:3:1: months: found -3")
    infeasible = tmp_path / "infeasible.yaml"
    infeasible.write_text(SCENARIO.replace("unmet_penalty_usd_per_gpu_hour: 100\n", ""))
    diagnosed = _plan_cli(["submit", "--scenario", str(infeasible)], admin)
    assert diagnosed.returncode == 1 and "infeasible plan: " in diagnosed.stderr
    assert _plan_cli(["submit", "--scenario", str(tmp_path / "missing.yaml")], admin).returncode == 2
    assert _plan_cli(["show", "p-nope"], admin).returncode == 1
