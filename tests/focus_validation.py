"""Run the FinOps Foundation's focus-validator 1.0.0 (installed in .venv-focus/ by scripts/setup-focus.sh) on a
FOCUS CSV and read its JUnit report: it exits 0 even when rules fail."""

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-focus"
OVERRIDES = Path(__file__).parent / "integration" / "focus_validator_overrides.yaml"
RULES_IN_1_0 = 133


def _site_packages() -> Path:
    if not (VENV / "bin" / "focus-validator").exists():
        pytest.fail("focus-validator is not installed: run scripts/setup-focus.sh (scripts/test.sh does)")
    out = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "import focus_validator, os; print(os.path.dirname(focus_validator.__path__[0]))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def validate(data: Path, tmp_path: Path) -> dict[str, str]:
    """Rule name → passed / failed / errored / skipped, from focus-validator's JUnit report on ``data``."""
    report = tmp_path / f"{data.stem}-report.xml"
    # The validator reads its currency-code list from a path relative to the working directory: run it from
    # the directory that holds the focus_validator package.
    proc = subprocess.run(
        [
            str(VENV / "bin" / "focus-validator"),
            "--data-file",
            str(data),
            "--validate-version",
            "1.0",
            "--override-file",
            str(OVERRIDES),
            "--output-type",
            "unittest",
            "--output-destination",
            str(report),
        ],
        cwd=_site_packages(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    root = ET.parse(report).getroot()
    statuses: dict[str, str] = {}
    for case in root.iter("testcase"):
        name = case.get("name", "").split(" :: ")[0]
        kinds = [child.tag for child in case]
        statuses[name] = {"failure": "failed", "error": "errored", "skipped": "skipped"}.get(
            kinds[0] if kinds else "", "passed"
        )
    assert int(root.get("tests", "0")) == len(statuses) == RULES_IN_1_0
    return statuses


def failures(data: Path, tmp_path: Path) -> dict[str, str]:
    """The rules ``data`` fails or errors, beyond the ones the override file skips (empty: a valid FOCUS 1.0 file)."""
    statuses = validate(data, tmp_path)
    skipped = set(yaml.safe_load(OVERRIDES.read_text())["overrides"])
    assert {name for name, s in statuses.items() if s == "skipped"} == skipped
    return {name: s for name, s in statuses.items() if s not in ("passed", "skipped")}
