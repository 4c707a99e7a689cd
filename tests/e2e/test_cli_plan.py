"""``stargate plan`` run as a user runs it: the installed script in a subprocess, on the bundled scenario."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

STARGATE = str(Path(sys.executable).parent / "stargate")
ROOT = Path(__file__).parents[2]
SCENARIO = ROOT / "examples" / "stargate-2025" / "plan.yaml"
FLEET = ROOT / "examples" / "stargate-2025"
LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): found .+; expected .+$")


def run(*args: str, cwd: Path = ROOT, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the stargate command; never raises on a non-zero exit."""
    env = {**os.environ, "COLUMNS": "200"}  # Click's usage errors are boxed to the terminal's width
    return subprocess.run(
        [STARGATE, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env
    )


def scenario_copy(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The bundled scenario next to nothing, pointing at the bundled fleet, with text replaced."""
    text = SCENARIO.read_text(encoding="utf-8").replace("\nfleet: .\n", f"\nfleet: {FLEET}\n")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_plan_with_200_scenarios_on_ray_writes_the_report(tmp_path: Path) -> None:
    done = run("plan", "--scenario", str(SCENARIO), "--scenarios", "200", "--report", "plan.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = tmp_path / "plan.html"
    assert 1_000_000 < report.stat().st_size <= 5_000_000
    assert f"report: plan.html ({report.stat().st_size / 1e6:.1f} MB)" in done.stdout
    assert "P90 shortfall" in done.stdout
    assert "Probability of a budget breach" in done.stdout
    assert "200/200" in done.stderr  # the progress bar reached the end
    assert "Traceback" not in done.stderr


def test_plan_json_in_process(tmp_path: Path) -> None:
    done = run("plan", "--scenario", str(SCENARIO), "--scenarios", "200", "--workers", "0", "--json")
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)  # stdout holds the JSON document only
    assert doc["scenario"] == "stargate-2025"
    months = doc["plan"]["months"]
    assert len(months) >= 48
    assert months[0]["month"] == "2025-01" and re.fullmatch(r"\d{4}-\d{2}", months[-1]["month"])
    assert doc["plan"]["status"] == "optimal"
    risk = doc["risk"]
    assert risk["scenarios"] == 200
    for figure in ("shortfall_gpu_hours", "spend_usd"):
        p = risk[figure]
        assert p["p10"] <= p["p50"] <= p["p90"]
    assert 0 <= risk["budget_breach_probability"] <= 1
    assert "Monte Carlo" not in done.stderr  # no progress bar with --json
    assert "ray" not in done.stderr.lower()


def test_plan_months_overrides_the_horizon() -> None:
    done = run("plan", "--scenario", str(SCENARIO), "--months", "60", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert len(doc["plan"]["months"]) == 60
    assert doc["risk"] is None


def test_plan_png_with_the_machines_chromium(tmp_path: Path) -> None:
    if shutil.which("chromium") is None and not Path("/usr/bin/chromium").is_file():
        pytest.skip("no Chromium on this machine")
    done = run(
        "plan", "--scenario", str(SCENARIO), "--scenarios", "20", "--workers", "0", "--png", "chart.png", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    png = (tmp_path / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert 20_000 < len(png) <= 1_000_000
    assert "chart: chart.png" in done.stdout


def test_bad_scenario_file_gives_located_errors_and_exit_2(tmp_path: Path) -> None:
    path = scenario_copy(tmp_path, ("\nmonths: 48", "\nmonths: many"), ("- id: gb200-training", "- id: Bad Id"))
    done = run("plan", "--scenario", str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    located = [m for m in map(LOCATED.match, lines[:-1]) if m]
    assert len(located) == len(lines) - 1 >= 2, done.stderr
    assert {m["file"] for m in located} == {str(path)}
    assert {"months", "demand[0].id"} <= {m["path"] for m in located}
    assert re.fullmatch(rf"error: \d+ problems in {re.escape(str(path))}; no plan was made", lines[-1])
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


def test_missing_scenario_file_exit_2(tmp_path: Path) -> None:
    done = run("plan", "--scenario", str(tmp_path / "none.yaml"))
    assert done.returncode == 2
    assert "none.yaml" in done.stderr and "Traceback" not in done.stderr


def test_infeasible_plan_gives_the_diagnosis_and_exit_1(tmp_path: Path) -> None:
    path = scenario_copy(tmp_path, ("unmet_penalty_usd_per_gpu_hour: 20", "unmet_penalty_usd_per_gpu_hour: null"))
    done = run("plan", "--scenario", str(path))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: infeasible plan: ")
    assert "Relaxing demand" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--scenarios", "-1"), "--scenarios: found -1"),
        (("--scenarios", "100001"), "--scenarios: found 100001"),
        (("--months", "0"), "--months: found 0"),
        (("--months", "241"), "--months: found 241"),
        (("--seed", "-1"), "--seed: found -1"),
        (("--workers", "-1"), "--workers: found -1"),
        (("--months", "many"), "Invalid value for '--months'"),
        (("--report", "/no/such/dir/plan.html"), "--report: found a path whose directory"),
    ],
)
def test_bad_flags_exit_2(flags: tuple[str, ...], message: str) -> None:
    done = run("plan", "--scenario", str(SCENARIO), *flags)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_no_scenario_prints_help_and_exit_2() -> None:
    done = run("plan")
    assert done.returncode == 2
    assert "--scenario" in done.stdout


def test_unreachable_ray_address_exit_2_fast() -> None:
    done = run("plan", "--scenario", str(SCENARIO), "--scenarios", "10", "--ray-address", "127.0.0.1:1", timeout=60)
    assert done.returncode == 2
    assert "--ray-address 127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr
