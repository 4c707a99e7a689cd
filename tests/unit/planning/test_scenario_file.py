"""Plan scenario files: the bundled one loads; bad ones give every problem located by file, line and field, never a
traceback and never a partial scenario; fit traces become monthly GPU averages."""

import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stargate.fleetfile import FleetFileError, load_fleet, loads_fleet
from stargate.planning.scenario_file import LoadedScenario, ScenarioFileError, load_scenario, loads_scenario

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "stargate-2025"

FLEET = """\
name: t
providers:
  - {id: own, name: Own, kind: owned}
  - {id: cloud, name: Cloud, kind: cloud}
sites:
  - {id: campus, provider: own, region: r, power_mw: 120}
"""

SCENARIO = """\
name: s
fleet: fleet.yaml
start: 2025-01
months: 6
demand:
  - id: d
    kind: training
    gpu_model: GB200
    growth: {start_value: 100, monthly_growth: 0.1}
"""


def _dir(tmp_path: Path, scenario: str = SCENARIO, fleet: str = FLEET) -> Path:
    (tmp_path / "fleet.yaml").write_text(fleet, encoding="utf-8")
    path = tmp_path / "plan.yaml"
    path.write_text(scenario, encoding="utf-8")
    return path


def _problems(path: Path) -> list[tuple[str, int, str]]:
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario(path)
    return [(Path(p.file).name, p.line, p.path) for p in caught.value.problems]


def test_the_bundled_plan_loads_with_the_fleet_beside_it() -> None:
    loaded = load_scenario(EXAMPLE / "plan.yaml")
    assert isinstance(loaded, LoadedScenario)
    assert loaded.scenario.start == date(2025, 1, 1) and loaded.scenario.months == 48
    assert loaded.fleet == load_fleet(EXAMPLE)
    assert {d.gpu_model for d in loaded.scenario.demand} == {"GB200", "H100-SXM"}
    assert [b.site for b in loaded.scenario.build] == ["milam"]
    assert loaded.history == {} and loaded.warnings == ()


def test_a_good_file_loads(tmp_path: Path) -> None:
    loaded = load_scenario(_dir(tmp_path))
    assert loaded.scenario.name == "s" and loaded.fleet.name == "t" and loaded.path == tmp_path / "plan.yaml"


@pytest.mark.parametrize(
    ("text", "line", "field", "found"),
    [
        (SCENARIO + "colour: red\n", 10, "colour", "unknown key 'colour'"),
        (SCENARIO.replace("months: 6", "months: six"), 4, "months", "'six'"),
        (SCENARIO.replace("start: 2025-01", "start: 2025-13"), 3, "start", "'2025-13'"),
        (SCENARIO.replace("gpu_model: GB200", "gpu_model: TPU"), 8, "demand[0].gpu_model", "'TPU'"),
        (SCENARIO.replace("monthly_growth: 0.1", "monthly_growth: 9"), 9, "demand[0].growth.monthly_growth", "9"),
        (SCENARIO.replace("    growth:", "    points: []\n    growth:"), 9, "demand[0].points", "a list"),
        (
            SCENARIO
            + "  - id: d\n    kind: inference\n    gpu_model: GB200\n    growth: {start_value: 1, monthly_growth: 0}\n",
            10,
            "demand[1].id",
            "the id 'd' twice in demand",
        ),
        (SCENARIO.replace("name: s", "name: s\nname: t"), 2, "name", "key 'name' again (first on line 1)"),
        (SCENARIO + "demand: [\n", 11, "(document)", "invalid YAML"),
        (
            SCENARIO + "build:\n  - {id: b, site: campus, gpu_model: GB200, it_power_mw: 5, capex_usd_per_mw: 1, "
            "build_months: 12, earliest_start: 2031-01}\n",
            11,
            "build[0].earliest_start",
            "2031-01",
        ),
    ],
)
def test_bad_files_are_located_by_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, found: str
) -> None:
    path = _dir(tmp_path, text)
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario(path)
    problems = caught.value.problems
    assert [(p.line, p.path) for p in problems if p.file == str(path)][:1] == [(line, field)], problems
    assert any(p.found.startswith(found) for p in problems), problems
    shown = str(problems[0])
    assert re.match(rf"^{re.escape(str(path))}:{line}:\d+: {re.escape(field)}: found .+; expected .+$", shown)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = SCENARIO.replace("months: 6", "months: 0").replace("gpu_model: GB200", "gpu_model: TPU") + "x: 1\n"
    got = _problems(_dir(tmp_path, text))
    assert [(line, field) for _, line, field in got] == [(4, "months"), (10, "x")]
    # the GPU model is a check against the fleet: it runs once the scenario validates
    got = _problems(
        _dir(
            tmp_path,
            SCENARIO.replace("gpu_model: GB200", "gpu_model: TPU") + "build:\n  - {id: b, "
            "site: nowhere, gpu_model: GB200, it_power_mw: 5, capex_usd_per_mw: 1, build_months: 1}\n",
        )
    )
    assert [(line, field) for _, line, field in got] == [(8, "demand[0].gpu_model"), (11, "build[0].site")]


@pytest.mark.parametrize(
    ("make", "found"),
    [
        (lambda p: None, "no such file or directory"),
        (lambda p: p.mkdir(), "a directory"),
        (lambda p: p.write_bytes(b"name: s\nstart: \xff\n"), "byte 0xff, which is not UTF-8"),
        (lambda p: p.write_text("", encoding="utf-8"), "an empty file"),
        (lambda p: p.write_text("- a\n- b\n", encoding="utf-8"), "a list"),
    ],
)
def test_unreadable_files_are_problems_not_tracebacks(tmp_path: Path, make, found: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "plan.yaml"
    make(path)
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path) and found in problem.found, problem


def test_a_missing_fleet_is_located_at_the_fleet_key(tmp_path: Path) -> None:
    path = _dir(tmp_path, SCENARIO.replace("fleet: fleet.yaml", "fleet: elsewhere/"))
    assert _problems(path) == [("plan.yaml", 2, "fleet")]


def test_problems_of_the_fleet_are_reported_in_the_fleet_file_with_the_scenario_s(tmp_path: Path) -> None:
    path = _dir(tmp_path, SCENARIO + "x: 1\n", FLEET.replace("kind: cloud", "kind: cloudy"))
    got = _problems(path)
    assert ("fleet.yaml", 4, "providers[1].kind") in got and ("plan.yaml", 10, "x") in got
    assert isinstance(ScenarioFileError([]), FleetFileError)


def test_the_fleet_key_defaults_to_the_scenario_s_directory_and_plan_files_are_not_fleet_files(tmp_path: Path) -> None:
    path = _dir(tmp_path, SCENARIO.replace("fleet: fleet.yaml\n", ""))
    assert load_scenario(path).fleet.name == "t"


def test_a_fit_needs_a_trace_outside_the_server(tmp_path: Path) -> None:
    text = SCENARIO.replace("growth: {start_value: 100, monthly_growth: 0.1}", "fit: {scale: 2}")
    got = _problems(_dir(tmp_path, text))
    assert got == [("plan.yaml", 9, "demand[0].fit.trace")]  # fit.trace is absent: located at the fit


def test_a_fit_reads_its_trace_as_monthly_gpu_averages(tmp_path: Path) -> None:
    """Two jobs: 10 GPUs through January 2024 (31 days), 20 GPUs from 2024-02-15 to 2024-03-15 (29 days, split
    between February, 15 days of 29, and March, 14 days of 31)."""
    trace = tmp_path / "t.csv"
    day = 86_400
    trace.write_text(
        "id,submit_time,duration_s,gpus,queue\n"
        f"a,2024-01-01T00:00:00,{31 * day},10,q\n"
        f"b,2024-02-15T00:00:00,{29 * day},20,q\n",
        encoding="utf-8",
    )
    text = SCENARIO.replace("growth: {start_value: 100, monthly_growth: 0.1}", "fit: {trace: t.csv, format: native}")
    loaded = load_scenario(_dir(tmp_path, text))
    months, gpus = zip(*loaded.history["d"], strict=True)
    assert months == (date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1))
    assert gpus == pytest.approx([10.0, 20 * 15 / 29, 20 * 14 / 31])


def test_a_bad_trace_is_located_at_the_fit(tmp_path: Path) -> None:
    text = SCENARIO.replace("growth: {start_value: 100, monthly_growth: 0.1}", "fit: {trace: none.csv}")
    assert _problems(_dir(tmp_path, text)) == [("plan.yaml", 9, "demand[0].fit.trace")]
    text = SCENARIO.replace("growth: {start_value: 100, monthly_growth: 0.1}", "fit: {trace: t.csv, format: excel}")
    assert _problems(_dir(tmp_path, text)) == [("plan.yaml", 9, "demand[0].fit.format")]


def test_the_server_gives_the_fleet_and_refuses_a_trace(tmp_path: Path) -> None:
    fleet = loads_fleet(FLEET)
    loaded = loads_scenario(SCENARIO.replace("fleet: fleet.yaml", "fleet: /nowhere"), "body.scenario_yaml", fleet)
    assert loaded.fleet is fleet and loaded.path == Path("body.scenario_yaml")
    text = SCENARIO.replace("growth: {start_value: 100, monthly_growth: 0.1}", "fit: {trace: t.csv}")
    with pytest.raises(ScenarioFileError) as caught:
        loads_scenario(text, "body.scenario_yaml", fleet)
    ((problem),) = caught.value.problems
    assert (problem.file, problem.line, problem.path) == ("body.scenario_yaml", 9, "demand[0].fit.trace")
    fit = SCENARIO.replace("growth: {start_value: 100, monthly_growth: 0.1}", "fit: {scale: 2}")
    assert loads_scenario(fit, "b", fleet).history == {}  # the server supplies the ledger's history


_LINES = (EXAMPLE / "plan.yaml").read_text(encoding="utf-8").splitlines()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    line=st.integers(min_value=0, max_value=len(_LINES) - 1),
    junk=st.sampled_from(["-1", "x", "[]", "{a: 1}", "1e400", "null", "'2025-00'", "true", "99999999999"]),
)
def test_a_damaged_bundled_plan_is_located_or_loads_never_crashes(tmp_path: Path, line: int, junk: str) -> None:
    """Replace the value of one line of the bundled plan: the loader either loads it or locates every problem."""
    folder = tmp_path / f"d{line}-{abs(hash(junk))}"
    if not folder.exists():
        shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("*.csv", "*.py"))
    lines = list(_LINES)
    key, sep, _ = lines[line].partition(":")
    if not sep or key.strip().startswith("#"):
        return
    lines[line] = f"{key}: {junk}"
    path = folder / "plan.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        load_scenario(path)
    except ScenarioFileError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file.startswith(str(folder)) and p.line >= 1 and p.found and p.expected, p


DOC = EXAMPLE.parents[1] / "docs" / "reference" / "plan-file.md"


def test_the_reference_example_loads_next_to_the_bundled_fleet(tmp_path: Path) -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    shutil.copytree(EXAMPLE, tmp_path / "fleet", ignore=shutil.ignore_patterns("*.csv", "*.py", "plan.yaml"))
    path = tmp_path / "fleet" / "plan-small.yaml"
    path.write_text(block, encoding="utf-8")
    loaded = load_scenario(path)
    assert [d.id for d in loaded.scenario.demand] == ["training", "inference"]
    assert loaded.fleet == load_fleet(EXAMPLE)


def test_the_reference_documents_every_key() -> None:
    from stargate.domain import planning

    text = DOC.read_text(encoding="utf-8")
    models = (planning.PlanScenario, planning.DemandSeries, planning.GrowthCurve, planning.DemandPoint)
    models += (planning.HistoryFit, planning.MarketOptions, planning.MarketOption, planning.BuildOption)
    models += (planning.Risk, planning.Triangular, planning.OutageRisk)
    missing = [f"{m.__name__}.{k}" for m in models for k in m.model_fields if f"| `{k}` |" not in text]
    assert missing == []


def test_expected_wording_of_the_demand_list_and_the_market_section() -> None:
    from stargate.domain.planning import PlanScenario
    from stargate.fleetfile.describe import expected_text, resolve

    words = []
    for key in ("demand", "market"):
        found = resolve(PlanScenario, (key,))
        assert found is not None
        words.append(expected_text(*found))
    assert words[0].startswith("a list of demand series (") and "serieses" not in words[0]
    assert words[1].startswith("a mapping describing a market section (")
