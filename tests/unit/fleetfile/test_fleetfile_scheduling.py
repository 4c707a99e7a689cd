"""The fleet file's ``scheduling:`` section: one located line per bad setting, YAML's ``.inf`` taken as 'inf', every
number bounded, and a key's control or bidirectional characters escaped wherever the location is printed."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stargate.cli import app
from stargate.fleetfile import FleetFileError, LocatedProblem, load_fleet, loads_fleet

HEAD = "name: t\nscheduling:\n  settings:\n"
VALUES = "true, false, a number, 'inf' or null"
NAMES = "a setting name (1–63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit)"


def _problems(text: str) -> list[LocatedProblem]:
    with pytest.raises(FleetFileError) as info:
        loads_fleet(text, "fleet.yaml")
    return info.value.problems


@pytest.mark.parametrize(
    ("setting", "found"),
    [
        ("[1, 2]", "[1, 2] (a list)"),
        ("{a: 1}", "{'a': 1} (a mapping)"),
        ("'10'", "'10'"),
        ("infinity", "'infinity'"),
        ("-.inf", "-inf"),
        (".nan", "nan"),
    ],
)
def test_a_value_of_the_wrong_kind_is_one_located_line(setting: str, found: str) -> None:
    problems = _problems(HEAD + f"    runtime_weight: {setting}\n")
    assert problems == [LocatedProblem("fleet.yaml", 4, 5, "scheduling.settings.runtime_weight", found, VALUES)]


def test_settings_that_are_not_a_mapping_say_what_a_mapping_holds() -> None:
    assert _problems("name: t\nscheduling:\n  settings: 5\n") == [
        LocatedProblem("fleet.yaml", 3, 3, "scheduling.settings", "5", f"a mapping of setting names to {VALUES}")
    ]


def test_a_bad_name_is_one_located_line_with_its_characters_escaped() -> None:
    problems = _problems(HEAD + '    "Bad\\e[31mKey": 1\n    "x\\u202Ey": 2\n    1: 3\n')
    assert [(p.line, p.path, p.found, p.expected) for p in problems] == [
        (4, "scheduling.settings.Bad\\x1b[31mKey", "'Bad\\x1b[31mKey'", NAMES),
        (5, "scheduling.settings.x\\u202ey", "'x\\u202ey'", NAMES),
        (6, "scheduling.settings.1", "1 (not text)", NAMES),
    ]


def test_yaml_inf_is_taken_as_inf_and_the_canonical_json_stays_strict() -> None:
    fleet = loads_fleet(HEAD + "    burst_after_s: .inf\n    backfill_window_s: inf\n    reserve_after_s: .Inf\n")
    assert fleet.scheduling.settings == {"burst_after_s": "inf", "backfill_window_s": "inf", "reserve_after_s": "inf"}
    text = json.dumps(fleet.model_dump(mode="json"), allow_nan=False)
    assert '"burst_after_s": "inf"' in text


def test_a_huge_integer_is_a_located_problem_with_its_bound() -> None:
    digits = "1234" + "5" * 396
    assert _problems(HEAD + f"    scan_depth: {digits}\n") == [
        LocatedProblem(
            "fleet.yaml",
            4,
            5,
            "scheduling.settings.scan_depth",
            "1234…(400 digits)",
            "a whole number from 1 to 1,000,000,000",
        )
    ]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("scan_budget: 1000000001", "a whole number from 0 to 1,000,000,000"),
        ("runtime_weight: 1.0e10", "a number from 0 to 1,000,000,000"),
        ("burst_after_s: 1.0e13", "a number from 0 to 1,000,000,000,000, inf or null"),
        ("default_estimate_s: 0", "a number greater than 0 and at most 1,000,000,000,000"),
    ],
)
def test_every_number_is_bounded_above(setting: str, expected: str) -> None:
    """Pinned to ``stargate``: ``runtime_weight`` is that policy's setting."""
    [problem] = _problems("name: t\nscheduling:\n  policy: stargate\n  settings:\n" + f"    {setting}\n")
    assert (problem.line, problem.path, problem.expected) == (
        5,
        f"scheduling.settings.{setting.split(':')[0]}",
        expected,
    )


def test_control_and_bidi_characters_in_any_key_are_escaped_in_the_location(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        'name: t\n"top\\e[2J": 1\nteams:\n  - {id: a, name: A, "k\\u202ex": 1}\n'
        "scheduling:\n  settings:\n    \"s\\e]0;x\\a\": 1\n    'y': 1\n    'y': 2\n",
        encoding="utf-8",
    )
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    said = "\n".join(str(p) for p in info.value.problems)
    assert "top\\x1b[2J: found unknown key 'top\\x1b[2J'" in said
    assert "teams[0].k\\u202ex: found unknown key 'k\\u202ex'" in said
    assert "scheduling.settings.s\\x1b]0;x\\x07: found 's\\x1b]0;x\\x07'" in said
    assert "\x1b" not in said and "\u202e" not in said and "\x07" not in said


def test_fleet_validate_prints_escaped_locations_and_exits_2_on_a_huge_number(tmp_path: Path) -> None:
    bad_key, huge = tmp_path / "key.yaml", tmp_path / "huge.yaml"
    bad_key.write_text(HEAD + '    "k\\e[31m": 1\n', encoding="utf-8")
    huge.write_text(HEAD + f"    scan_depth: {'9' * 400}\n", encoding="utf-8")
    for path, said in [
        (bad_key, "scheduling.settings.k\\x1b[31m: found 'k\\x1b[31m'"),
        (huge, "scheduling.settings.scan_depth: found 9999…(400 digits); expected a whole number from 1 to"),
    ]:
        result = CliRunner().invoke(app, ["fleet", "validate", str(path)])
        assert result.exit_code == 2, result.output
        assert said in result.stderr and "\x1b" not in result.stderr and "internal error" not in result.stderr
