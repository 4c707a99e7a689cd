"""The scheduling policy over HTTP: the fleet's section under ``stargate up --policy/--set``, shown, checked at plan
and apply, and used by the scheduler."""

import copy
from pathlib import Path
from typing import Any

from integration.server.stargate_harness import Harness, build_harness
from stargate.engine import Override

FLEET = "/api/v1/fleet"


def _plan(h: Harness, fleet: dict[str, Any]) -> Any:
    return h.client.post(f"{FLEET}/plan", json={"fleet": fleet}, headers=h.headers())


def test_the_policy_in_force_is_shown_with_every_setting(harness: Harness) -> None:
    got = harness.client.get(FLEET, headers=harness.headers()).json()["scheduling"]
    assert got["policy"] == "stargate" and got["override"] is None and got["changed"] == {}
    assert got["settings"]["runtime_weight"] == 1.0 and got["settings"]["backfill_window_s"] == "inf"
    viewer = harness.client.get(f"{FLEET}/scheduling", headers=harness.headers("viewer", "alpha"))
    assert viewer.status_code == 200 and viewer.json() == got


def test_a_fleet_section_is_validated_at_plan_and_takes_effect_at_apply(harness: Harness) -> None:
    fleet = copy.deepcopy(harness.client.get(FLEET, headers=harness.headers()).json()["fleet"])
    bad = copy.deepcopy(fleet)
    bad["scheduling"] = {"policy": "srtf", "settings": {"runtime_weight": 2, "scan_depth": 0}}
    refused = _plan(harness, bad)
    assert refused.status_code == 422
    assert "body.fleet.scheduling.settings.runtime_weight: found 'runtime_weight', expected a setting of policy" in (
        refused.text
    )
    assert "body.fleet.scheduling.settings.scan_depth: found 0, expected a whole number >= 1" in refused.text
    fleet["scheduling"] = {"policy": "stargate", "settings": {"runtime_weight": 2, "burst_after_s": "inf"}}
    plan = _plan(harness, fleet)
    assert plan.status_code == 200, plan.text
    assert {"kind": "change", "entity": "fleet", "id": "fleet", "fields": ["scheduling"]} in plan.json()["changes"]
    applied = harness.client.post(f"{FLEET}/apply", json={"plan_id": plan.json()["plan_id"]}, headers=harness.headers())
    assert applied.status_code == 200, applied.text
    assert applied.json()["scheduling"]["changed"] == {"runtime_weight": 2.0, "burst_after_s": "inf"}
    with harness.ctx.db.read() as session:
        _, in_force = harness.ctx.fleet.get(session)
    assert harness.ctx.policy_for(in_force).runtime_weight == 2  # what the scheduler loop decides with


def test_server_options_override_the_section_and_a_fleet_they_do_not_fit_is_refused(
    db_url: str, tmp_path: Path
) -> None:
    h = build_harness(db_url, tmp_path / "home", scheduling=Override(settings={"runtime_weight": 3.0}))
    try:
        got = h.client.get(f"{FLEET}/scheduling", headers=h.headers()).json()
        assert got["override"] == "--set runtime_weight=3.0" and got["changed"] == {"runtime_weight": 3.0}
        fleet = copy.deepcopy(h.client.get(FLEET, headers=h.headers()).json()["fleet"])
        fleet["scheduling"] = {"policy": "srtf"}  # srtf has no runtime_weight: the server's --set would not fit
        refused = _plan(h, fleet)
        assert refused.status_code == 422
        assert "fleet.scheduling.settings.runtime_weight: found 'runtime_weight'" in refused.text
        assert "(with stargate up --set runtime_weight=3.0)" in refused.text
    finally:
        h.client.close()
        h.ctx.db.close()
