"""Property: whatever the input, loading gives a Fleet or a FleetFileError with located problems, nothing else."""

import contextlib
import copy
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.domain import Fleet
from stargate.fleetfile import FleetFileError, dump_fleet, load_fleet, loads_fleet

KEYS = ["name", "providers", "sites", "clusters", "contracts", "budget", "id", "kind", "site", "provider", "gpus",
        "nodes", "start", "end", "right_of_first_refusal", "holder", "valid_from", "quotas", "team", "x"]  # fmt: skip
scalars = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
scalars |= st.sampled_from(["2025-01-01", "2025-13-40", "cloud", "owned", "reserved", "H100-SXM", "1.5", "-1"])
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
)
yaml_chars = st.text(st.sampled_from(list("name: -[]{},'\"\n\t#&*!|>%@`?0123456789abc")), max_size=80)


def _load(text: str) -> None:
    try:
        assert isinstance(loads_fleet(text, "f.yaml"), Fleet)
    except FleetFileError as exc:
        assert exc.problems
        assert all(
            p.file == "f.yaml" and p.line >= 0 and p.column >= 0 and p.found and p.expected for p in exc.problems
        )


@settings(max_examples=150, deadline=None)
@given(documents)
def test_any_structure_is_a_fleet_or_located_problems(doc: object) -> None:
    """Arbitrary nested YAML data never escapes as another exception."""
    _load(yaml.safe_dump({"name": "t", **doc} if isinstance(doc, dict) else doc))


@settings(max_examples=150, deadline=None)
@given(yaml_chars)
def test_any_text_is_a_fleet_or_located_problems(text: str) -> None:
    """Arbitrary YAML-ish text never escapes as another exception."""
    _load(text)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _paths(v, (*prefix, k))] + ([prefix] if prefix else [])
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _paths(v, (*prefix, i))] + ([prefix] if prefix else [])
    return [prefix]


EXAMPLE = yaml.safe_load(dump_fleet(load_fleet(Path("examples/stargate-2025"))))
EXAMPLE_PATHS = _paths(EXAMPLE)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(EXAMPLE_PATHS), scalars | st.just([]) | st.just({})), min_size=1, max_size=3))
def test_mutated_example_is_a_fleet_or_located_problems(changes: list[tuple[tuple[object, ...], object]]) -> None:
    """The bundled example with a few values replaced: a Fleet or located problems, never a crash."""
    doc = copy.deepcopy(EXAMPLE)
    for path, value in changes:
        target = doc
        for part in path[:-1]:
            if not isinstance(target, dict | list):
                break
            try:
                target = target[part]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if isinstance(target, dict | list):
                with contextlib.suppress(KeyError, IndexError, TypeError):
                    target[path[-1]] = value
    _load(yaml.safe_dump(doc))
