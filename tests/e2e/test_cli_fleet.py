"""The fleet and schema commands run as a user runs them: the installed ``stargate`` script in a subprocess."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

STARGATE = str(Path(sys.executable).parent / "stargate")
EXAMPLE = "examples/stargate-2025"
LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): found .+; expected .+$")

MALFORMED = {
    "enum": ("name: t\nproviders:\n  - {id: a, name: A, kind: cloudy}\n", 3, "providers[0].kind"),
    "yaml syntax": ("name: t\nproviders: [\n", 3, "(document)"),
    "unknown reference": (
        "name: t\nproviders: [{id: a, name: A, kind: cloud}]\nsites: [{id: s, provider: b, region: r}]\n",
        3,
        "sites[0].provider",
    ),
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the stargate command; never raises on a non-zero exit."""
    return subprocess.run([STARGATE, *args], capture_output=True, text=True, timeout=60, check=False)


def run_json(*args: str) -> tuple[int, Any]:
    """Run a --json command and parse its stdout."""
    done = run(*args)
    return done.returncode, json.loads(done.stdout)


def test_validate_example_succeeds() -> None:
    """A sound fleet: one 'ok' line with counts, exit code 0."""
    done = run("fleet", "validate", EXAMPLE)
    assert done.returncode == 0, done.stderr
    pattern = rf"ok: {EXAMPLE}: \d+ providers, \d+ sites, \d+ buildings, \d+ clusters \([\d,]+ GPUs\), \d+ contracts\n"
    assert re.fullmatch(pattern, done.stdout)


def test_validate_counts_one_in_the_singular() -> None:
    done = run("fleet", "validate", "tests/integration/server/fleet/tiny.yaml")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"ok: \S+: 1 provider, 1 site, 0 buildings, 2 clusters \(\d+ GPUs\), 0 contracts\n", done.stdout
    )


@pytest.mark.parametrize("case", MALFORMED.values(), ids=list(MALFORMED))
def test_validate_malformed_file_exits_2_with_located_errors(tmp_path: Path, case: tuple[str, int, str]) -> None:
    """Bad input: located lines on stderr, a count line, exit code 2, no traceback, nothing on stdout."""
    text, line, path = case
    file = tmp_path / "fleet.yaml"
    file.write_text(text, encoding="utf-8")
    done = run("fleet", "validate", str(file))
    assert done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    *lines, count = done.stderr.splitlines()
    first = LOCATED.match(lines[0])
    assert first is not None, lines[0]
    assert (first["file"], int(first["line"]), first["path"]) == (str(file), line, path)
    assert count == f"error: {len(lines)} problem{'s' if len(lines) > 1 else ''} in {file}; the fleet was not loaded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.yaml"]  # nothing written


def test_validate_json_reports_every_error(tmp_path: Path) -> None:
    """--json: valid=false, one object per error with the documented keys, summary with the error count."""
    file = tmp_path / "fleet.yaml"
    file.write_text("name: t\nproviders:\n  - {id: A, name: A, kind: x}\n", encoding="utf-8")
    code, doc = run_json("fleet", "validate", "--json", str(file))
    assert code == 2 and doc["valid"] is False
    assert [(e["line"], e["path"]) for e in doc["errors"]] == [(3, "providers[0].id"), (3, "providers[0].kind")]
    assert set(doc["errors"][0]) == {"file", "line", "column", "path", "found", "expected"}
    assert doc["summary"]["errors"] == 2 and doc["summary"]["providers"] is None


def test_validate_json_on_success_has_counts() -> None:
    """--json on a sound fleet: valid=true, no errors, counts of every noun and the files read."""
    code, doc = run_json("fleet", "validate", EXAMPLE, "--json")
    assert code == 0 and doc["valid"] is True and doc["errors"] == []
    summary = doc["summary"]
    assert summary["providers"] >= 4 and summary["buildings"] >= 8 and summary["gpus"] > 0
    assert all(f.startswith(EXAMPLE + "/") for f in summary["files"])


def test_missing_path_exits_2() -> None:
    """A path that does not exist is a located error, exit code 2."""
    done = run("fleet", "validate", "no/such/fleet.yaml")
    assert done.returncode == 2
    assert done.stderr.startswith("no/such/fleet.yaml:0:0: (document): found no such file or directory; expected")


def test_show_json_has_the_2025_fleet() -> None:
    """show --json: providers, Abilene buildings with dates, the ROFR clause, CoreWeave tranches, the budget."""
    code, doc = run_json("fleet", "show", EXAMPLE, "--json")
    assert code == 0
    assert {"stargate", "azure", "coreweave", "oci"} <= {p["id"] for p in doc["providers"]}
    abilene = [b for b in doc["buildings"] if b["site"] == "abilene"]
    assert len(abilene) == 8 and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", b["planned_energization"]) for b in abilene)
    assert all("energized_on" in b for b in abilene)
    [rofr] = [k["right_of_first_refusal"] for k in doc["contracts"] if k["right_of_first_refusal"]]
    assert rofr["holder"] == "azure" and rofr["valid_from"] <= rofr["valid_until"]
    tranches = [k for k in doc["contracts"] if k["provider"] == "coreweave" and k["kind"] == "reserved"]
    assert len(tranches) == 3 and all(k["gpus"] > 0 for k in tranches)
    assert doc["budget"]["initial_usd"] and doc["budget"]["ceiling_usd"]
    site = next(s for s in doc["sites"] if s["id"] == "abilene")
    assert list(site["energized_mw_by_month"]) == doc["months"]
    assert doc["totals"]["gpus"] == sum(c["gpus"] for c in doc["clusters"])


@pytest.mark.slow  # two CLI runs, or a full table render; the CLI takes ~2-3 s to start
def test_show_tables_and_month_window() -> None:
    """show prints the tables; --from/--months choose the energised-power rows."""
    done = run("fleet", "show", EXAMPLE, "--from", "2025-05", "--months", "2")
    assert done.returncode == 0, done.stderr
    for title in ("Providers", "Sites", "Energised power by month", "Buildings", "Clusters", "Contracts", "Clauses",
                  "Budget", "Teams and queues", "Totals"):  # fmt: skip
        assert title in done.stdout
    assert "2025-05" in done.stdout and "2025-06 │" in done.stdout and "2025-07 │" not in done.stdout
    assert "right of first refusal" in done.stdout


@pytest.mark.slow  # two CLI runs, or a full table render; the CLI takes ~2-3 s to start
def test_show_bad_input_behaves_like_validate(tmp_path: Path) -> None:
    """show on a bad file prints located errors and exits 2; a bad --from is exit 2 too."""
    file = tmp_path / "fleet.yaml"
    file.write_text("name: t\nproviders: {}\n", encoding="utf-8")
    done = run("fleet", "show", str(file))
    assert done.returncode == 2 and done.stderr.startswith(f"{file}:2:1: providers: found a mapping;")
    bad_month = run("fleet", "show", EXAMPLE, "--from", "2025-13")
    assert bad_month.returncode == 2
    assert bad_month.stderr == "error: --from: found '2025-13'; expected a month as YYYY-MM, e.g. 2025-06\n"
    bad_months = run("fleet", "show", EXAMPLE, "--months", "241", "--json")
    assert bad_months.returncode == 2 and bad_months.stdout == ""
    assert bad_months.stderr == "error: --months: found 241; expected an integer from 1 to 240\n"


@pytest.mark.slow  # two CLI runs, or a full table render; the CLI takes ~2-3 s to start
def test_schema_fleet_and_job_are_json_schema() -> None:
    """schema fleet / schema job print JSON Schema documents with the expected top-level properties."""
    code, fleet = run_json("schema", "fleet")
    assert code == 0 and fleet["$schema"].startswith("https://json-schema.org/")
    assert fleet["type"] == "object" and fleet["additionalProperties"] is False
    assert {"name", "providers", "sites", "buildings", "clusters", "contracts", "budget", "teams", "queues"} <= set(
        fleet["properties"]
    )
    assert "RightOfFirstRefusal" in fleet["$defs"]
    code, job = run_json("schema", "job")
    assert code == 0 and {"name", "queue", "gpus", "kind"} <= set(job["properties"])
