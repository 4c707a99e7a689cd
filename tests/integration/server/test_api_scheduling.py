"""The scheduling policy over HTTP: the fleet's section under ``stargate up --policy/--set``, shown, checked at plan
and apply, and used by the scheduler."""

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from integration.server.stargate_harness import TINY_FLEET, Harness, build_harness
from stargate.domain import Scheduling
from stargate.engine import Override
from stargate.fleetfile import load_fleet
from stargate.server.scheduling.loop import LAST_WAKEUP_S, run_cycle, wakeup_at
from stargate.server.services import fleet as fleet_service

FLEET = "/api/v1/fleet"


def _plan(h: Harness, fleet: dict[str, Any]) -> Any:
    return h.client.post(f"{FLEET}/plan", json={"fleet": fleet}, headers=h.headers())


def _stargate_fleet(tmp_path: Path) -> Path:
    """The tiny fleet pinned to the ``stargate`` policy, whose setting ``runtime_weight`` these tests override."""
    path = tmp_path / "tiny-stargate.yaml"
    path.write_text(TINY_FLEET.read_text(encoding="utf-8") + "\nscheduling:\n  policy: stargate\n", encoding="utf-8")
    return path


def test_the_policy_in_force_is_shown_with_every_setting(harness: Harness) -> None:
    """The tiny fleet names no policy: the default, gittins, with its restart cost."""
    got = harness.client.get(FLEET, headers=harness.headers()).json()["scheduling"]
    assert got["policy"] == "gittins" and got["override"] is None and got["changed"] == {}
    assert got["settings"]["restart_cost_s"] == 60.0 and got["settings"]["backfill_window_s"] == "inf"
    assert "runtime_weight" not in got["settings"]
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
    assert "body.fleet.scheduling.settings.scan_depth: found 0, expected a whole number" in refused.text
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
    h = build_harness(
        db_url, tmp_path / "home", _stargate_fleet(tmp_path), scheduling=Override(settings={"runtime_weight": 3.0})
    )
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


def test_a_burst_wait_past_what_a_date_holds_never_stops_the_loop(harness: Harness) -> None:
    """A wake-up past year 9999 (burst_after_s 1e12 s) is no wake-up: cycles go on and other jobs still run."""
    fleet = copy.deepcopy(harness.client.get(FLEET, headers=harness.headers()).json()["fleet"])
    fleet["scheduling"] = {"policy": "stargate", "settings": {"burst_after_s": 1e12}}
    plan = _plan(harness, fleet).json()
    harness.client.post(f"{FLEET}/apply", json={"plan_id": plan["plan_id"]}, headers=harness.headers())
    waiting = harness.submit(command="true")["id"]  # every cluster of the tiny fleet is pay-per-use: it waits
    now = datetime.now(UTC)
    first = run_cycle(harness.ctx, now)
    assert (first.placed, harness.ctx.loop.wakeup) == (0, None)
    assert run_cycle(harness.ctx, now).pending_after == 1
    assert harness.client.get(f"/api/v1/jobs/{waiting}", headers=harness.headers()).json()["status"] == "pending"
    assert wakeup_at(LAST_WAKEUP_S - 1.0) is not None and wakeup_at(float("inf")) is None


def test_options_that_no_longer_fit_fall_back_to_the_fleets_section_and_say_so(db_url: str, tmp_path: Path) -> None:
    """A fleet applied through another server (other options) must not stop this scheduler's cycles: it decides with
    the fleet's section alone, and /healthz and the policy views say why."""
    h = build_harness(
        db_url, tmp_path / "home", _stargate_fleet(tmp_path), scheduling=Override(settings={"runtime_weight": 3.0})
    )
    try:
        fleet = load_fleet(TINY_FLEET).model_copy(update={"scheduling": Scheduling(policy="srtf")})
        with h.ctx.db.write() as session:  # as a standby started without options would apply it
            fleet_service.record(session, fleet, "other server", datetime.now(UTC))
        job = h.submit(command="true")["id"]
        assert run_cycle(h.ctx, datetime.now(UTC)).placed == 1
        health = h.client.get("/healthz")
        assert health.status_code == 503 and "do not fit the fleet's scheduling section" in health.text
        got = h.client.get(f"{FLEET}/scheduling", headers=h.headers()).json()
        assert got["policy"] == "srtf" and "deciding with the fleet's section alone" in got["problem"]
        assert h.client.get(f"/api/v1/jobs/{job}", headers=h.headers()).json()["status"] == "running"
    finally:
        h.client.close()
        h.ctx.db.close()
