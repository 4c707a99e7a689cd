"""YAML limits: alias expansion, nesting depth, document size, integer length and the files of a fleet directory.

Every limit is refused with one located problem, quickly, by the fleet loader and by the job file loader alike.
"""

import time
from pathlib import Path

import pytest

from stargate.cli.jobfile import JobFileError, load_job_file, loads_job
from stargate.fleetfile import FleetFileError, load_fleet, loads_fleet, sources, yamldoc
from stargate.fleetfile.yamldoc import MAX_DEPTH, parse_yaml


def billion_laughs(levels: int = 9) -> str:
    """The classic: each level an anchored list of nine aliases to the level below (9^levels strings)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    lines.append(f"name: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_in_milliseconds_at_the_alias() -> None:
    """A 600-byte document that expands to 9^9 strings: one located problem at the alias, well under a second."""
    text = billion_laughs()
    assert len(text) < 1_000
    started = time.perf_counter()
    with pytest.raises(FleetFileError) as caught:
        loads_fleet(text, "laughs.yaml")
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5
    [problem] = caught.value.problems
    assert problem.file == "laughs.yaml"
    assert problem.line == 5  # the first alias whose expansion crosses the allowance (a4 lists *a3)
    assert problem.column > 1
    assert problem.found.startswith("aliases that add ")
    assert "per written node" in problem.expected


def test_billion_laughs_in_a_job_file_is_refused_too() -> None:
    """The job file loader shares the parser and its limits."""
    with pytest.raises(JobFileError) as caught:
        loads_job(billion_laughs(), "job.yaml")
    assert [p.found.startswith("aliases that add ") for p in caught.value.problems] == [True]


def test_ordinary_anchors_and_merge_keys_still_work() -> None:
    """Shared defaults merged into many entries are well inside the alias allowance."""
    clusters = "\n".join(f"  - {{<<: *defaults, id: c{i}, nodes: {i + 1}}}" for i in range(300))
    text = (
        "name: anchors\n"
        "defaults: &defaults {site: s, gpu_model: H100-SXM, gpus_per_node: 8, price_per_gpu_hour_usd: 2.5}\n"
        f"clusters:\n{clusters}\n"
    )
    doc = parse_yaml(text, "anchors.yaml")
    assert doc.problems == []
    assert doc.data["clusters"][299]["gpu_model"] == "H100-SXM"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x: " + "[" * 5_000 + "]" * 5_000 + "\n", id="flow"),
        pytest.param(
            "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 5)) + "  " * (MAX_DEPTH + 5) + "v\n", id="block"
        ),
    ],
)
def test_deep_nesting_is_refused_at_the_level_past_the_limit(text: str) -> None:
    """Nesting past MAX_DEPTH is one located problem, not a RecursionError."""
    with pytest.raises(FleetFileError) as caught:
        loads_fleet(text, "deep.yaml")
    [problem] = caught.value.problems
    assert problem.found == f"nesting deeper than {MAX_DEPTH} levels"
    assert problem.line >= 1 and problem.column >= 1


def test_nesting_at_the_limit_is_accepted_by_the_parser() -> None:
    """Exactly MAX_DEPTH levels parse (the fleet model then judges the content)."""
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_yaml(text, "ok.yaml").problems == []


def test_an_integer_of_thousands_of_digits_is_located() -> None:
    """Python refuses to convert integers past 4,300 digits; the parser refuses past 4,000 with a location."""
    with pytest.raises(FleetFileError) as caught:
        loads_fleet("name: x\nclusters:\n  - nodes: " + "9" * 5_000 + "\n", "digits.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (3, 12)
    assert problem.found == "an integer of 5,000 digits"


def test_an_integer_beyond_64_bits_is_a_bound_problem(tmp_path: Path) -> None:
    """The finding that stopped the scheduler: nodes beyond 64 bits is now refused at load, located."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "name: big\nproviders: [{id: p, name: P, kind: cloud}]\nsites: [{id: s, provider: p, region: r}]\n"
        "clusters:\n  - {id: c, site: s, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 36893488147419103232,"
        " price_per_gpu_hour_usd: 2}\n"
    )
    with pytest.raises(FleetFileError) as caught:
        load_fleet(fleet)
    [problem] = caught.value.problems
    assert problem.path == "clusters[0].nodes"
    assert problem.line == 5
    assert problem.found == "36893488147419103232"
    assert problem.expected == "an integer greater than 0 and at most 10,000,000 (nodes)"


def test_a_document_over_the_size_limit_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The size check comes first: a document over the limit is never parsed."""
    monkeypatch.setattr(yamldoc, "MAX_DOCUMENT_BYTES", 1_000)
    doc = parse_yaml("name: " + "x" * 2_000, "big.yaml")
    [problem] = doc.problems
    assert (problem.line, problem.found) == (0, "a document of 2,006 bytes")
    assert doc.data is None


def test_a_file_over_the_size_limit_is_not_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet file and a job file over the limit are refused with their size, reading no more than the limit."""
    monkeypatch.setattr(sources, "MAX_DOCUMENT_BYTES", 1_000)
    big = tmp_path / "fleet.yaml"
    big.write_text("name: x\ndescription: " + "y" * 5_000 + "\n")
    with pytest.raises(FleetFileError) as caught:
        load_fleet(big)
    assert [p.found for p in caught.value.problems] == [f"a document of {big.stat().st_size:,} bytes"]
    with pytest.raises(JobFileError) as job:
        load_job_file(big)
    assert [p.found for p in job.value.problems] == [f"a document of {big.stat().st_size:,} bytes"]


def test_a_directory_with_too_many_files_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet directory may hold at most MAX_FILES YAML files."""
    monkeypatch.setattr(sources, "MAX_FILES", 3)
    for i in range(4):
        (tmp_path / f"part{i}.yaml").write_text(f"name: part{i}\n" if i == 0 else "teams: []\n")
    with pytest.raises(FleetFileError) as caught:
        load_fleet(tmp_path)
    [problem] = caught.value.problems
    assert problem.found == "a directory with 4 *.yaml or *.yml files"
    assert problem.expected == "at most 3 fleet files in a directory"


@pytest.mark.parametrize(
    ("value", "found"),
    [(".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan"), ("1.0e+400", "inf")],
)
def test_non_finite_yaml_numbers_are_refused_with_a_location(value: str, found: str) -> None:
    """YAML's .inf and .nan (and a float that overflows) never reach the engine."""
    text = (
        "name: x\nproviders: [{id: p, name: P, kind: cloud}]\n"
        f"sites:\n  - id: s\n    provider: p\n    region: r\n    power_mw: {value}\n"
    )
    with pytest.raises(FleetFileError) as caught:
        loads_fleet(text, "inf.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.path, problem.found) == (7, "sites[0].power_mw", found)
    assert problem.expected.startswith("a number greater than 0 and at most 100,000")
