"""Strict YAML for fleet and job files: characters YAML refuses, recursive aliases, YAML 1.1 number forms, explicit
tags and date-times where a date is expected are each one located problem (``FILE:LINE:COL``), exit 2 from the CLI,
never "internal error" and never a silently changed count.
"""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stargate.cli import app
from stargate.cli.jobfile import JobFileError, loads_job
from stargate.fleetfile import FleetFileError, load_fleet, loads_fleet
from stargate.fleetfile.dumper import dump_fleet
from stargate.fleetfile.yamldoc import parse_yaml

JOB = "name: t\nqueue: beta-q\ngpus: 1\ncommand: echo\n"
SMALL = Path("tests/e2e/fleets/small.yaml")


def _job_problem(text: str) -> str:
    with pytest.raises(JobFileError) as caught:
        loads_job(text, "j.yaml")
    [problem] = caught.value.problems
    return str(problem)


def _fleet_problems(text: str) -> list[str]:
    with pytest.raises(FleetFileError) as caught:
        loads_fleet(text, "f.yaml")
    return [str(p) for p in caught.value.problems]


# -- characters YAML does not allow and recursive aliases ---------------------------------------------------------
@pytest.mark.parametrize(("ch", "words"), [("\x07", "U+0007"), ("\x00", "U+0000"), ("\x1b", "U+001B")])
def test_a_raw_control_character_in_a_job_file_is_located(ch: str, words: str) -> None:
    said = _job_problem(f"name: t{ch}\nqueue: beta-q\ngpus: 1\ncommand: echo\n")
    assert said.startswith("j.yaml:1:8: ") and words in said and "YAML does not allow" in said


def test_a_raw_nul_in_a_fleet_region_is_located() -> None:
    text = SMALL.read_text().replace("region: test", "region: te\x00st")
    [said] = _fleet_problems(text)
    line = text.splitlines().index("    region: te\x00st") + 1
    assert said.startswith(f"f.yaml:{line}:15: ") and "U+0000" in said


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: t\nqueue: q\ngpus: 1\ngpu_models: &r [*r]\n", "j.yaml:4:17: "),
        ("name: t\nqueue: q\ngpus: 1\nenvironment: &r {a: *r}\n", "j.yaml:4:21: "),
        ("name: t\nqueue: q\ngpus: 1\ncommand: &r [*r]\n", "j.yaml:4:10: command: found a list"),
    ],
)
def test_a_self_referencing_alias_is_refused_not_recursed(text: str, where: str) -> None:
    said = _job_problem(text)
    assert said.startswith(where) and ("inside its own anchor &r" in said or "expected a single value" in said)


def test_a_self_referencing_alias_in_a_fleet_is_refused() -> None:
    text = SMALL.read_text().replace("region: test", "region: &r [*r]")
    [said] = _fleet_problems(text)
    assert "inside its own anchor &r" in said


def test_the_cli_says_one_located_line_and_exits_2(tmp_path: Path) -> None:
    job = tmp_path / "j.yaml"
    job.write_bytes(b"name: t\x07\nqueue: beta-q\ngpus: 1\ncommand: echo\n")
    fleet = tmp_path / "f.yaml"
    fleet.write_text(SMALL.read_text().replace("region: test", "region: &r [*r]"))
    env = {"STARGATE_CONFIG_DIR": str(tmp_path), "STARGATE_URL": "http://127.0.0.1:9"}
    for args in (["submit", str(job)], ["fleet", "validate", str(fleet)]):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        located = [line for line in lines if line.removeprefix("error: ").startswith(f"{tmp_path}/")]
        assert len(located) == 1, result.output  # `fleet validate` adds its summary line ("1 problem in ...")
        assert ":1:8: " in located[0] or ":12:17: " in located[0], result.output
        assert "internal error" not in result.output


# -- YAML 1.1 number forms, tags and dates --------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["010", "0x10", "0o10", "0b101", "1_0", "+2", "1:30", "8.0", "0010"])
def test_gpus_is_plain_decimal_only(value: str) -> None:
    said = _job_problem(JOB.replace("gpus: 1", f"gpus: {value}"))
    assert said.startswith("j.yaml:3:1: gpus: ") and value in said


@pytest.mark.parametrize("value", ["010", "0x10", "1:30", "1_0", "+2"])
def test_nodes_is_plain_decimal_only(value: str) -> None:
    said = _fleet_problems(
        SMALL.read_text().replace(
            "nodes: 2\n    price_per_gpu_hour_usd: 2.00", f"nodes: {value}\n    price_per_gpu_hour_usd: 2.00"
        )
    )
    assert len(said) == 1 and "clusters[0].nodes" in said[0] and value in said[0]


def test_plain_decimal_numbers_and_thousands_separators_still_read() -> None:
    data = parse_yaml("a: [8, -3, 0, 50_000, 1_000_000, 1.5, 1e3, 2.00, 4_442_933_333.33, true, null]\n", "x").data
    assert data["a"] == [8, -3, 0, 50_000, 1_000_000, 1.5, 1000.0, 2.0, 4_442_933_333.33, True, None]
    assert str(data["a"][7]) == "2.00"  # money keeps its digits


@pytest.mark.parametrize("text", ["yes", "on", "No", "0x10", "1:30", "010", "2025-01-01"])
def test_yaml_11_forms_are_text(text: str) -> None:
    assert parse_yaml(f"a: {text}\n", "x").data == {"a": text}


@pytest.mark.parametrize("tag", ["!!binary aGVsbG8=", "!!int 8", "!!str x", "!!python/name:os.system", "!foo x"])
def test_explicit_tags_are_refused(tag: str) -> None:
    said = _job_problem(JOB.replace("command: echo", f"command: {tag}"))
    assert said.startswith("j.yaml:4:10: ") and "explicit tag" in said


@pytest.mark.parametrize("value", ["2025-01-01T00:00:00Z", "2025-01-01 00:00:00", "20250101", "2025-1-1"])
def test_a_date_field_takes_only_yyyy_mm_dd(value: str) -> None:
    text = SMALL.read_text().replace("name: e2e-small", f"name: e2e-small\nas_of: {value}")
    said = _fleet_problems(text)
    line = text.splitlines().index(f"as_of: {value}") + 1
    assert len(said) == 1 and said[0].startswith(f"f.yaml:{line}:1: as_of: "), said
    assert "YYYY-MM-DD" in said[0] or "ISO 8601 date" in said[0]


def test_a_fleet_dumps_and_loads_back_under_the_strict_schema(tmp_path: Path) -> None:
    fleet = load_fleet(Path("examples/stargate-2025"))
    assert loads_fleet(dump_fleet(fleet)) == fleet
