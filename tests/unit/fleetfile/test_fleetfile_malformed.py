"""Table-driven malformed fleet files: each gives exactly one located problem with exact wording."""

from pathlib import Path
from textwrap import dedent
from typing import NamedTuple

import pytest

from stargate.fleetfile import FleetFileError, LocatedProblem, load_fleet

HEAD = """\
name: t
providers:
  - {id: own, name: Own, kind: owned}
  - {id: cloud, name: Cloud, kind: cloud}
"""
"""Four valid lines most cases start with (so their own lines start at line 5)."""


class Case(NamedTuple):
    """A malformed fleet file and the one problem it must give."""

    text: str
    line: int
    column: int
    path: str
    found: str
    expected: str


CASES: dict[str, Case] = {
    "yaml syntax: unclosed flow sequence": Case(
        "name: t\nproviders: [\n",
        3, 1, "(document)",
        "invalid YAML: expected the node content, but found '<stream end>'",
        "valid YAML (while parsing a flow node)",
    ),
    "yaml syntax: tab indentation": Case(
        "name: t\nproviders:\n\t- id: a\n",
        3, 1, "(document)",
        "invalid YAML: found character '\\t' that cannot start any token",
        "valid YAML (while scanning for the next token)",
    ),
    "two documents in one file": Case(
        "name: t\n---\nname: u\n",
        2, 1, "(document)",
        "invalid YAML: but found another document",
        "valid YAML (expected a single document in the stream)",
    ),
    "top level is a list": Case(
        "- name: t\n",
        1, 1, "(document)", "a list",
        "a mapping of fleet keys (name, description, as_of, gpu_models, providers, sites, buildings, clusters, "
        "contracts, budget, procurement, priority_classes, teams, queues, scheduling, executors)",
    ),
    "empty file": Case(
        "# nothing here\n",
        1, 1, "(document)", "an empty file",
        "a mapping of fleet keys (name, description, as_of, gpu_models, providers, sites, buildings, clusters, "
        "contracts, budget, procurement, priority_classes, teams, queues, scheduling, executors)",
    ),
    "unknown top-level key": Case(
        HEAD + "provider: []\n",
        5, 1, "provider", "unknown key 'provider'", "a known key of a fleet; did you mean 'providers'?",
    ),
    "missing name": Case(
        "description: no name\n",
        1, 1, "name", "nothing (the key is missing)",
        "a value: non-empty printable text on one line of at most 200 characters",
    ),
    "section is not a list": Case(
        HEAD + "sites:\n  id: a\n",
        5, 1, "sites", "a mapping", "a list of sites",
    ),
    "enum value": Case(
        "name: t\nproviders:\n  - id: a\n    name: A\n    kind: cloudy\n",
        5, 5, "providers[0].kind", "'cloudy'", "one of 'owned', 'cloud'",
    ),
    "id pattern": Case(
        "name: t\nproviders:\n  - {id: Azure, name: A, kind: cloud}\n",
        3, 6, "providers[0].id", "'Azure'",
        "an id (1–63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit)",
    ),
    "duplicate key": Case(
        "name: t\nproviders:\n  - id: a\n    name: A\n    kind: cloud\n    name: B\n",
        6, 5, "providers[0].name", "key 'name' again (first on line 4)", "each key once in a mapping",
    ),
    "unknown key with suggestion": Case(
        HEAD + "sites: [{id: s, provider: cloud, region: r}]\nclusters:\n  - id: c\n    site: s\n"
        "    gpu_model: H100-SXM\n    gpus_per_node: 8\n    nodes: 2\n    price_per_gpu_hour_usd: 2\n"
        "    gpu_per_node: 8\n",
        13, 5, "clusters[0].gpu_per_node", "unknown key 'gpu_per_node'",
        "a known key of a cluster; did you mean 'gpus_per_node'?",
    ),
    "integer expected": Case(
        HEAD + "sites: [{id: s, provider: cloud, region: r}]\nclusters:\n  - id: c\n    site: s\n"
        "    gpu_model: H100-SXM\n    gpus_per_node: 8\n    nodes: abc\n    price_per_gpu_hour_usd: 2\n",
        11, 5, "clusters[0].nodes", "'abc'", "an integer greater than 0 and at most 10,000,000 (nodes)",
    ),
    "count not positive": Case(
        HEAD + "sites: [{id: s, provider: cloud, region: r}]\nclusters:\n  - id: c\n    site: s\n"
        "    gpu_model: H100-SXM\n    gpus_per_node: 0\n    nodes: 2\n    price_per_gpu_hour_usd: 2\n",
        10, 5, "clusters[0].gpus_per_node", "0", "an integer greater than 0 and at most 1,024 (GPUs)",
    ),
    "missing key located at its entry": Case(
        HEAD + "sites: [{id: s, provider: cloud, region: r}]\nclusters:\n  - id: c\n    site: s\n"
        "    gpu_model: H100-SXM\n    nodes: 2\n    price_per_gpu_hour_usd: 2\n",
        7, 5, "clusters[0].gpus_per_node", "nothing (the key is missing)",
        "a value: an integer greater than 0 and at most 1,024 (GPUs)",
    ),
    "date does not parse": Case(
        HEAD + "contracts:\n  - id: k\n    provider: cloud\n    kind: commitment\n    start: 2025-02-30\n"
        "    end: 2026-01-01\n    committed_spend_usd: 10\n",
        9, 5, "contracts[0].start", "'2025-02-30'", "a date as YYYY-MM-DD (ISO 8601) from 1970-01-01 to 2200-12-31",
    ),
    "too many decimal places": Case(
        HEAD + "contracts:\n  - {id: k, provider: cloud, kind: on_demand, start: 2025-01-01, end: 2026-01-01,\n"
        "     price_per_gpu_hour_usd: 1.1234567}\n",
        7, 6, "contracts[0].price_per_gpu_hour_usd", "1.1234567",
        "a number at least 0 and at most 100,000 with at most 6 decimal places (USD per GPU-hour), or null",
    ),
    "pue out of range": Case(
        HEAD + "sites:\n  - {id: s, provider: own, region: r, pue: 0.5}\n",
        6, 39, "sites[0].pue", "0.5", "a number at least 1 and at most 3",
    ),
    "object expected": Case(
        HEAD + "budget: lots\n",
        5, 1, "budget", "'lots'",
        "a mapping describing a budget (required keys: initial_usd, ceiling_usd, start, end), or null",
    ),
    "site names unknown provider": Case(
        HEAD + "sites:\n  - {id: s, provider: azure, region: r}\n",
        6, 13, "sites[0].provider", "'azure'", "the id of a provider (cloud, own)",
    ),
    "duplicate id": Case(
        HEAD + "  - {id: own, name: Again, kind: owned}\n",
        5, 6, "providers[2].id", "'own'", "an id not used by another entry of 'providers'",
    ),
    "cluster GPU model not in catalogue": Case(
        HEAD + "sites: [{id: s, provider: cloud, region: r}]\nclusters:\n  - id: c\n    site: s\n"
        "    gpu_model: A100\n    gpus_per_node: 8\n    nodes: 2\n    price_per_gpu_hour_usd: 2\n",
        9, 5, "clusters[0].gpu_model", "'A100'",
        "the id of a GPU model in the catalogue (B200, GB200, H100-SXM, H200, MI300X)",
    ),
    "buildings exceed the site envelope": Case(
        HEAD + "sites: [{id: s, provider: own, region: r, power_mw: 100, pue: 1.25}]\nbuildings:\n"
        "  - {id: b, site: s, floor_area_sq_ft: 1000, it_power_mw: 90, gpus: 1000, gpu_model: B200,\n"
        "     capex_usd: 1, planned_energization: 2025-06-01}\n",
        5, 43, "sites[0].power_mw",
        "100 MW, but its buildings draw 112.5 MW (90.0 MW IT × PUE 1.25)",
        "at least 112.5 MW, or buildings that fit the envelope",
    ),
    "GPUs draw more than the building's IT power": Case(
        HEAD + "sites: [{id: s, provider: own, region: r}]\nbuildings:\n"
        "  - {id: b, site: s, floor_area_sq_ft: 1000, it_power_mw: 1, gpus: 2000, gpu_model: B200,\n"
        "     capex_usd: 1, planned_energization: 2025-06-01}\n",
        7, 46, "buildings[0].it_power_mw",
        "1 MW, but 2,000 B200 GPUs × 1000 W draw 2.0 MW",
        "at least 2.0 MW of IT power, or fewer GPUs",
    ),
    "building on a cloud site": Case(
        HEAD + "sites: [{id: s, provider: cloud, region: r}]\nbuildings:\n"
        "  - {id: b, site: s, floor_area_sq_ft: 1000, it_power_mw: 1, gpus: 10, gpu_model: B200,\n"
        "     capex_usd: 1, planned_energization: 2025-06-01}\n",
        7, 13, "buildings[0].site", "'s' (a cloud provider's site)", "a site of an owned provider",
    ),
    "clause outside the contract's term": Case(
        HEAD + "contracts:\n  - id: k\n    provider: cloud\n    kind: commitment\n    start: 2025-01-01\n"
        "    end: 2025-12-31\n    committed_spend_usd: 10\n    right_of_first_refusal:\n      holder: cloud\n"
        "      response_window_days: 30\n      valid_from: 2025-01-01\n      valid_until: 2026-06-30\n",
        16, 7, "contracts[0].right_of_first_refusal.valid_until", "2026-06-30",
        "a date inside the contract's term 2025-01-01 → 2025-12-31",
    ),
    "contract ends before it starts": Case(
        HEAD + "contracts:\n  - {id: k, provider: cloud, kind: commitment, start: 2025-01-01, end: 2024-01-01,\n"
        "     committed_spend_usd: 10}\n",
        6, 67, "contracts[0].end", "end 2024-01-01 before start 2025-01-01", "end on or after start",
    ),
    "reserved contract without GPUs": Case(
        HEAD + "contracts:\n  - {id: k, provider: cloud, kind: reserved, start: 2025-01-01, end: 2026-01-01,\n"
        "     price_per_gpu_hour_usd: 2}\n",
        6, 5, "contracts[0].gpus", "nothing", "the number of GPUs reserved (a 'reserved' contract)",
    ),
    "budget ceiling below initial": Case(
        HEAD + "budget:\n  initial_usd: 100\n  ceiling_usd: 50\n  start: 2025-01-01\n  end: 2029-01-01\n",
        7, 3, "budget.ceiling_usd", "50 USD, below initial_usd 100 USD", "a ceiling at least the initial envelope",
    ),
    "queue names unknown team": Case(
        HEAD + "teams: [{id: research, name: Research}]\nqueues:\n  - {id: q, team: reserch}\n",
        7, 13, "queues[0].team", "'reserch'", "the id of a team (research)",
    ),
    "cluster under another provider's contract": Case(
        HEAD + "sites: [{id: s, provider: cloud, region: r}]\ncontracts:\n"
        "  - {id: k, provider: own, kind: commitment, start: 2025-01-01, end: 2026-01-01, committed_spend_usd: 1}\n"
        "clusters:\n  - {id: c, site: s, gpu_model: B200, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 2,\n"
        "     contract: k}\n",
        10, 6, "clusters[0].contract", "'k' (a contract with 'own')",
        "a contract with 'cloud', the provider of site 's'",
    ),
}  # fmt: skip


def _problems(tmp_path: Path, text: str, name: str = "fleet.yaml") -> tuple[Path, list[LocatedProblem]]:
    path = tmp_path / name
    path.write_text(dedent(text), encoding="utf-8")
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    return path, info.value.problems


def test_there_are_at_least_twenty_malformed_files() -> None:
    """The issue's bar: twenty or more different malformed files."""
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_malformed_file_gives_one_located_problem(tmp_path: Path, case: Case) -> None:
    """Each malformed file gives exactly its problem: file, line, column, path, found and expected."""
    path, problems = _problems(tmp_path, case.text)
    expected = LocatedProblem(str(path), case.line, case.column, case.path, case.found, case.expected)
    assert problems == [expected]


def test_non_utf8_file_is_located(tmp_path: Path) -> None:
    """A byte that is not UTF-8 is reported at its line and column."""
    path = tmp_path / "fleet.yaml"
    path.write_bytes(b"name: t\ndescription: caf\xe9\n")
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    assert info.value.problems == [
        LocatedProblem(str(path), 2, 17, "(document)", "byte 0xe9, which is not UTF-8", "a UTF-8 text file")
    ]


def test_missing_path_is_located(tmp_path: Path) -> None:
    """A path that does not exist is one problem at line 0 (the path as a whole)."""
    with pytest.raises(FleetFileError) as info:
        load_fleet(tmp_path / "nope.yaml")
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.found) == (str(tmp_path / "nope.yaml"), 0, "no such file or directory")
    assert problem.expected == "a fleet YAML file, or a directory of *.yaml / *.yml fleet files"


def test_empty_directory_is_located(tmp_path: Path) -> None:
    """A directory without YAML files is one problem naming the directory."""
    (tmp_path / "notes.txt").write_text("not yaml", encoding="utf-8")
    with pytest.raises(FleetFileError) as info:
        load_fleet(tmp_path)
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.found) == (
        str(tmp_path),
        0,
        "a directory with no *.yaml or *.yml files",
    )
