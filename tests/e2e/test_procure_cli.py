"""``stargate procure``, ``contracts``, ``budget`` and ``costs`` through a real server: an admin raises a request,
the holder's provider token (made with ``stargate token create --role provider``) answers it and the award shows
in the contracts; a run's cost is exported as FOCUS CSV (stdout and ``--output``) and reconciled (exit 0 when the
bill matches, 1 when it differs, 2 for a bill with an unknown column); bad input exits 2."""

import csv
import io
import json
import time
from pathlib import Path

from e2e_support import ServerFactory, child_environment, run_cli

from focus_validation import failures

MONEY_FLEET = Path(__file__).parents[1] / "integration" / "server" / "fleet" / "money.yaml"


def test_procure_and_costs_through_the_cli(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(MONEY_FLEET).start()
    base = {"STARGATE_CONFIG_DIR": str(tmp_path / "cfg"), "STARGATE_URL": server.url}

    def cli(*args: str, token: str | None = None):  # type: ignore[no-untyped-def]
        return run_cli(list(args), child_environment(base | {"STARGATE_TOKEN": token or server.admin_token}))

    with server.client() as http:
        job = http.post("/api/v1/jobs", json={"name": "paid", "queue": "alpha-q", "gpus": 2, "command": "sleep 0.5"})
        assert job.status_code == 201, job.text
        deadline = time.monotonic() + 30
        while http.get(f"/api/v1/jobs/{job.json()['id']}").json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.1)

    exported = cli("costs", "--export", "focus")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == 1 and rows[0]["SubAccountId"] == "alpha" and float(rows[0]["BilledCost"]) > 0
    bill = tmp_path / "bill.csv"
    written = cli("costs", "--export", "focus", "--output", str(bill))
    assert written.returncode == 0 and bill.read_text() == exported.stdout
    assert failures(bill, tmp_path) == {}  # what `stargate costs --export focus` writes is valid FOCUS 1.0
    by_team = json.loads(cli("costs", "--by", "team", "--json").stdout)
    assert [r["key"] for r in by_team["rows"]] == ["alpha"]
    matched = cli("costs", "--reconcile", str(bill))
    assert matched.returncode == 0, matched.stdout + matched.stderr
    assert "1 matched" in matched.stdout
    off = tmp_path / "off.csv"
    off.write_text(exported.stdout.replace(rows[0]["BilledCost"], "999.00", 1))
    differs = cli("costs", "--reconcile", str(off))
    assert differs.returncode == 1 and "amount_off" in differs.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text(exported.stdout.replace("BilledCost", "Colour", 1))
    refused = cli("costs", "--reconcile", str(bad))
    assert refused.returncode == 2 and refused.stderr.startswith(f"error: {bad}:1: column Colour: unknown column")
    assert cli("costs", "--by", "colour").returncode == 2

    raised = cli(
        "procure",
        "request",
        "--gpu-model",
        "GB200",
        "--gpus",
        "8",
        "--start",
        "2027-06-01",
        "--term-days",
        "30",
        "--json",
    )
    assert raised.returncode == 0, raised.stderr
    offer = json.loads(raised.stdout)["request"]["offer"]
    assert offer["holder"] == "oracle"
    made = cli("token", "create", "--role", "provider", "--provider", "oracle")
    assert made.returncode == 0, made.stderr
    assert "(provider, provider oracle, name provider-oracle" in made.stdout
    oracle = made.stdout.splitlines()[0].rsplit(" ", 1)[-1]
    direct = run_cli(["admin", "token", "create", "--role", "provider", "--provider", "coreweave"], server.env)
    assert direct.returncode == 0 and "(provider, provider coreweave, name provider-coreweave" in direct.stdout
    unknown = run_cli(["admin", "token", "create", "--role", "provider", "--provider", "nope"], server.env)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: --provider: found 'nope'")
    assert offer["id"] in cli("procure", "offers", token=oracle).stdout
    admin = cli("procure", "respond", offer["id"], "--match")
    assert admin.returncode == 1 and "403 forbidden: only a 'provider' token of provider 'oracle'" in admin.stderr
    assert cli("procure", "respond", offer["id"], "--match", "--price", "-1", token=oracle).returncode == 2
    answered = cli("procure", "respond", offer["id"], "--match", token=oracle)
    assert answered.returncode == 0, answered.stderr
    assert "awarded to oracle (holder)" in answered.stdout
    again = cli("procure", "respond", offer["id"], "--decline", token=oracle)
    assert again.returncode == 2 and "409 conflict" in again.stderr
    contracts = cli("contracts")
    assert contracts.returncode == 0 and f"award for {offer['request_id']}" in contracts.stdout
    budget = json.loads(cli("budget", "--json").stdout)
    assert any(d["kind"] == "award" for d in budget["draws"])
    events = cli("procure", "events", "--request", offer["request_id"])
    assert [line.split()[1] for line in events.stdout.splitlines()] == ["raised", "offered", "matched", "awarded"]
