"""Loading fleets: valid files and directories, every error at once, directory merge rules, the examples."""

from pathlib import Path
from textwrap import dedent

import pytest

from stargate.domain import Fleet
from stargate.fleetfile import FleetFileError, LocatedProblem, fleet_files, load_fleet, loads_fleet

EXAMPLES = Path("examples")

PROVIDERS = """\
providers:
  - {id: own, name: Own, kind: owned}
  - {id: cloud, name: Cloud, kind: cloud}
"""


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(dedent(text), encoding="utf-8")
    return directory


def _problems(path: Path) -> list[LocatedProblem]:
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    return info.value.problems


@pytest.mark.parametrize("example", ["stargate-2025", "philly"])
def test_bundled_examples_validate(example: str) -> None:
    """Both bundled examples load without a problem."""
    fleet = load_fleet(EXAMPLES / example)
    assert fleet.providers and fleet.clusters


def test_single_file_loads_into_the_model() -> None:
    """A valid file gives the Fleet the same data describes, dates parsed, money exact."""
    fleet = loads_fleet(
        PROVIDERS
        + "name: t\nas_of: 2025-06-01\ncontracts:\n"
        + "  - {id: k, provider: cloud, kind: on_demand, start: 2025-01-01, end: 2026-01-01,"
        + " price_per_gpu_hour_usd: 2.39}\n"
    )
    assert fleet.name == "t" and str(fleet.as_of) == "2025-06-01"
    assert str(fleet.contracts[0].price_per_gpu_hour_usd) == "2.39"
    assert [p.id for p in fleet.providers] == ["own", "cloud"]


def test_one_file_with_several_errors_reports_all_sorted(tmp_path: Path) -> None:
    """Structural errors and cross-entity errors of one file come together, ordered by line."""
    path = _write(
        tmp_path,
        {
            "fleet.yaml": """\
            name: t
            providers:
              - {id: own, name: Own, kind: owned}
              - {id: cloud, name: Cloud, kind: sky}
            sites:
              - {id: s, provider: nobody, region: r}
            clusters:
              - {id: c, site: s, gpu_model: H100-SXM, gpus_per_node: 8, nodes: -1, price_per_gpu_hour_usd: 2}
              - {id: d, site: s, gpu_model: V100, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 2}
            budget: {initial_usd: 10, ceiling_usd: 5, start: 2025-01-01, end: 2029-01-01}
            """
        },
    )
    got = [(p.line, p.path, p.found) for p in _problems(path / "fleet.yaml")]
    assert got == [
        (4, "providers[1].kind", "'sky'"),
        (6, "sites[0].provider", "'nobody'"),
        (8, "clusters[0].nodes", "-1"),
        (9, "clusters[1].gpu_model", "'V100'"),
        (10, "budget.ceiling_usd", "5 USD, below initial_usd 10 USD"),
    ]


def test_references_to_an_invalid_entity_are_not_reported_twice(tmp_path: Path) -> None:
    """A provider that fails validation is still a known id: the site naming it gets no second error."""
    path = _write(
        tmp_path,
        {"f.yaml": "name: t\nproviders: [{id: p, name: P, kind: sky}]\nsites: [{id: s, provider: p, region: r}]\n"},
    )
    assert [p.path for p in _problems(path / "f.yaml")] == ["providers[0].kind"]


def test_cross_checks_use_the_original_index_after_invalid_entries(tmp_path: Path) -> None:
    """When entry 0 is invalid, a cross-entity problem of entry 1 is still reported as [1] on its own line."""
    text = PROVIDERS + "name: t\nsites:\n  - {id: a, provider: own}\n  - {id: b, provider: nobody, region: r}\n"
    path = _write(tmp_path, {"f.yaml": text})
    got = [(p.line, p.path) for p in _problems(path / "f.yaml")]
    assert got == [(6, "sites[0].region"), (7, "sites[1].provider")]


def test_directory_concatenates_lists_in_file_name_order(tmp_path: Path) -> None:
    """A directory's *.yaml and *.yml files merge sorted by name; other files and subdirectories are ignored."""
    directory = _write(
        tmp_path / "fleet",
        {
            "b-more.yml": "providers: [{id: second, name: Second, kind: cloud}]\n",
            "a-base.yaml": "name: t\nproviders: [{id: first, name: First, kind: owned}]\n",
            "notes.txt": "providers: [oops]\n",
        },
    )
    _write(directory / "sub", {"c.yaml": "providers: [oops]\n"})
    fleet = load_fleet(directory)
    assert [p.id for p in fleet.providers] == ["first", "second"]
    assert [f.name for f in fleet_files(directory)] == ["a-base.yaml", "b-more.yml"]


def test_directory_equals_the_single_file_it_was_split_from(tmp_path: Path) -> None:
    """Splitting a fleet over files does not change it."""
    single = "name: t\n" + PROVIDERS + "sites: [{id: s, provider: cloud, region: r}]\n"
    directory = _write(tmp_path / "d", {"1.yaml": "name: t\n" + PROVIDERS, "2.yaml": single.split("\n", 4)[-1]})
    assert load_fleet(directory) == loads_fleet(single)


def test_single_key_in_two_files_is_located_in_the_second(tmp_path: Path) -> None:
    """name, description, as_of and budget may appear in one file only; the second is the error."""
    directory = _write(tmp_path / "d", {"a.yaml": "name: t\n", "b.yaml": "description: x\nname: u\n"})
    assert _problems(directory) == [
        LocatedProblem(str(directory / "b.yaml"), 2, 1, "name", f"'name' again (first in {directory / 'a.yaml'}:1)",
                       "'name' in one file only")
    ]  # fmt: skip


def test_problems_in_several_files_are_all_reported(tmp_path: Path) -> None:
    """Every file's problems come in one run, sorted by file then line; cross-file references are located."""
    directory = _write(
        tmp_path / "d",
        {
            "a.yaml": "name: t\n" + PROVIDERS + "  - {id: bad, name: Bad, kind: nope}\n",
            "b.yaml": "sites:\n  - {id: s, provider: ghost, region: r}\n"
            "  - {id: s2, provider: own, region: r, pue: 9}\n",
        },
    )
    got = [(Path(p.file).name, p.line, p.path) for p in _problems(directory)]
    assert got == [
        ("a.yaml", 5, "providers[2].kind"),
        ("b.yaml", 2, "sites[0].provider"),
        ("b.yaml", 3, "sites[1].pue"),
    ]


def test_a_broken_file_does_not_cause_false_reference_errors(tmp_path: Path) -> None:
    """With one file unparseable, the others' structural errors are reported but not references into it."""
    directory = _write(
        tmp_path / "d",
        {
            "a.yaml": "name: t\nproviders: [\n",
            "b.yaml": "sites:\n  - {id: s, provider: own, region: r, pue: 9}\n",
        },
    )
    got = [(Path(p.file).name, p.path) for p in _problems(directory)]
    assert got == [("a.yaml", "(document)"), ("b.yaml", "sites[0].pue")]


def test_null_list_section_is_empty(tmp_path: Path) -> None:
    """A list key with nothing under it is an empty list."""
    fleet = loads_fleet("name: t\nclusters:\nproviders:\n")
    assert fleet.clusters == [] and fleet.providers == []


def test_problem_formats_as_one_line_and_json() -> None:
    """A problem prints as FILE:LINE:COL: PATH: found X; expected Y and has a flat JSON form."""
    p = LocatedProblem("f.yaml", 3, 5, "clusters[0].nodes", "'abc'", "an integer greater than 0")
    assert str(p) == "f.yaml:3:5: clusters[0].nodes: found 'abc'; expected an integer greater than 0"
    assert p.to_json() == {
        "file": "f.yaml", "line": 3, "column": 5, "path": "clusters[0].nodes", "found": "'abc'",
        "expected": "an integer greater than 0",
    }  # fmt: skip


def test_error_message_counts_problems() -> None:
    """The exception's message says how many problems there are."""
    with pytest.raises(FleetFileError, match=r"^2 problems in the fleet file$"):
        loads_fleet("name: t\nproviders: [{id: A, name: a, kind: x}]\n")


def test_loaded_fleet_is_a_fleet() -> None:
    """load returns the domain type, with default priority classes when none are declared."""
    fleet = loads_fleet("name: t\n")
    assert isinstance(fleet, Fleet)
    assert [p.name for p in fleet.priority_classes] == ["low", "normal", "high"]


def test_a_section_that_is_not_a_list_causes_no_false_reference_errors(tmp_path: Path) -> None:
    """With 'sites' malformed, clusters naming sites are not reported as dangling; other errors still are."""
    text = (
        "name: t\nproviders: [{id: c, name: C, kind: cloud}]\nsites: {id: s}\nclusters:\n"
        "  - {id: a, site: s, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 0, price_per_gpu_hour_usd: 2}\n"
    )
    path = _write(tmp_path, {"f.yaml": text})
    assert [(p.line, p.path) for p in _problems(path / "f.yaml")] == [(3, "sites"), (5, "clusters[0].nodes")]


def test_missing_budget_field_is_reported_even_when_a_file_is_broken(tmp_path: Path) -> None:
    """Only missing top-level keys are excused by an unparseable file, not a key missing inside the budget."""
    directory = _write(
        tmp_path / "d",
        {"a.yaml": "providers: [\n", "b.yaml": "budget: {initial_usd: 1, start: 2025-01-01, end: 2026-01-01}\n"},
    )
    got = [(Path(p.file).name, p.path) for p in _problems(directory)]
    assert got == [("a.yaml", "(document)"), ("b.yaml", "budget.ceiling_usd")]


def test_directory_skips_plan_scenarios(tmp_path: Path) -> None:
    """plan.yaml, plan.yml and plan-NAME.yaml in a fleet directory are plan scenarios, not fleet files; a file named
    like them but not them (planet.yaml, plans.yaml) is still read, and so is a plan-named path given alone."""
    directory = _write(
        tmp_path / "fleet",
        {
            "00-base.yaml": "name: t\nproviders: [{id: first, name: First, kind: owned}]\n",
            "plan.yaml": "demand: oops\n",
            "plan.yml": "demand: oops\n",
            "plan-2026.yaml": "demand: oops\n",
            "planet.yaml": "providers: [{id: second, name: Second, kind: cloud}]\n",
        },
    )
    assert [f.name for f in fleet_files(directory)] == ["00-base.yaml", "planet.yaml"]
    assert [p.id for p in load_fleet(directory).providers] == ["first", "second"]
    assert fleet_files(directory / "plan.yaml") == [directory / "plan.yaml"]
    with pytest.raises(FleetFileError):
        load_fleet(directory / "plan.yaml")
