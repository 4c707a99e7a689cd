"""Bad ``scheduling:`` sections over HTTP: ``POST /api/v1/fleet/plan`` answers 422 with one located line per bad
setting (never a 500), the location's characters escaped, and YAML's infinity accepted as 'inf'."""

import copy
import json
from typing import Any

import pytest

from integration.server.stargate_harness import Harness

FLEET = "/api/v1/fleet"
VALUES = "true, false, a number, 'inf' or null"


def _plan(h: Harness, settings: Any) -> Any:
    fleet = copy.deepcopy(h.client.get(FLEET, headers=h.headers()).json()["fleet"])
    fleet["scheduling"] = {"policy": "stargate", "settings": settings}
    return h.client.post(f"{FLEET}/plan", json={"fleet": fleet}, headers=h.headers())


def test_a_huge_integer_setting_is_a_422_naming_its_bound(harness: Harness) -> None:
    got = _plan(harness, {"scan_depth": int("1234" + "5" * 396)})
    assert got.status_code == 422, got.text
    assert got.json()["detail"] == (
        "invalid fleet: body.fleet.scheduling.settings.scan_depth: found 1234…(400 digits), expected a whole number "
        "from 1 to 1,000,000,000"
    )


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (
            {"runtime_weight": [1, 2]},
            f"body.fleet.scheduling.settings.runtime_weight: found [1, 2] (a list), expected {VALUES}",
        ),
        ({"runtime_weight": "fast"}, f"body.fleet.scheduling.settings.runtime_weight: found 'fast', expected {VALUES}"),
        (5, f"body.fleet.scheduling.settings: found 5, expected a mapping of setting names to {VALUES}"),
        (
            {"Bad\x1b[31mKey": 1},
            "body.fleet.scheduling.settings.Bad\\x1b[31mKey: found 'Bad\\x1b[31mKey', expected a setting name (1–63 "
            "characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit)",
        ),
        ({"x\u202ey": 1}, "body.fleet.scheduling.settings.x\\u202ey: found 'x\\u202ey', expected a setting name"),
    ],
)
def test_a_bad_setting_is_one_located_line(harness: Harness, settings: Any, line: str) -> None:
    got = _plan(harness, settings)
    assert got.status_code == 422, got.text
    detail = got.json()["detail"]
    assert detail.startswith(f"invalid fleet: {line}") and detail.count("body.fleet") == 1, detail
    assert "\x1b" not in detail and "\u202e" not in detail


def test_the_string_inf_is_stored_as_inf_in_strict_json(harness: Harness) -> None:
    got = _plan(harness, {"burst_after_s": "inf", "backfill_window_s": 1e12})
    assert got.status_code == 200, got.text
    applied = harness.client.post(f"{FLEET}/apply", json={"plan_id": got.json()["plan_id"]}, headers=harness.headers())
    assert applied.status_code == 200, applied.text
    assert applied.json()["fleet"]["scheduling"]["settings"]["burst_after_s"] == "inf"
    json.dumps(applied.json(), allow_nan=False)
