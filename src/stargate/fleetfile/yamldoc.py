"""YAML with positions: parse a file into plain data plus its node tree, and find the line of a field path.

Dates are left as strings (pydantic parses them and reports bad ones with the field's location), floats keep
their text (so money is exact to the digit), duplicate keys
in a mapping are reported (PyYAML would silently keep the last), and syntax errors are located.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from stargate.fleetfile.errors import LocatedProblem

DOCUMENT = "(document)"
"""The field path shown for a problem with the document as a whole."""

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _PureLoader(yaml.SafeLoader):
    """Safe loader that keeps dates as strings, so a bad date is a located validation error, not a crash."""


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same with libyaml's parser when PyYAML has it (about 8× faster on large fleets)."""


class ExactFloat(float):
    """A YAML float that remembers its text, so a money field (Decimal) gets exactly the digits written."""

    text: str

    def __new__(cls, value: float, text: str) -> "ExactFloat":
        """A float equal to ``value`` whose str() is ``text``."""
        out = super().__new__(cls, value)
        out.text = text
        return out

    def __str__(self) -> str:
        """The number as written in the file."""
        return self.text

    __repr__ = __str__


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = loader.construct_yaml_float(node)
    text = str(node.value).replace("_", "")
    return ExactFloat(value, text) if math.isfinite(value) else value


for _loader in (_PureLoader, _FastLoader):
    _loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
    _loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column in a file."""

    line: int
    column: int

    @classmethod
    def of(cls, mark: yaml.Mark | None) -> "Position":
        """The position of a PyYAML mark (0-based) as 1-based numbers; (0, 0) when unknown."""
        return cls(mark.line + 1, mark.column + 1) if mark is not None else cls(0, 0)


@dataclass(frozen=True, slots=True)
class YamlDoc:
    """One parsed YAML file: its data, its root node (None when empty) and the problems found while parsing."""

    file: str
    data: Any
    node: Node | None
    problems: list[LocatedProblem]


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse ``text`` (the contents of ``file``) into data and nodes; YAML errors become located problems.

    The fast parser reads; on a YAML error the pure-Python parser reads again for its more precise message.
    """
    doc = _parse(_FastLoader, text, file)
    if doc.node is None and doc.problems:
        return _parse(_PureLoader, text, file)
    return doc


def _parse(loader_class: type[yaml.SafeLoader], text: str, file: str) -> YamlDoc:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(file, None, None, [])
        duplicates = list(_duplicate_keys(node, file))
        return YamlDoc(file, loader.construct_document(node), node, duplicates)
    except yaml.MarkedYAMLError as exc:
        return YamlDoc(file, None, None, [_yaml_problem(exc, file)])
    except yaml.YAMLError as exc:  # an unmarked YAML error (rare): located at the file
        return YamlDoc(file, None, None, [LocatedProblem(file, 0, 0, DOCUMENT, f"invalid YAML: {exc}", "valid YAML")])
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.MarkedYAMLError, file: str) -> LocatedProblem:
    mark = exc.problem_mark or exc.context_mark
    pos = Position.of(mark)
    problem = (exc.problem or "a YAML error").strip()
    expected = "valid YAML" + (f" ({exc.context.strip()})" if exc.context else "")
    return LocatedProblem(file, pos.line, pos.column, DOCUMENT, f"invalid YAML: {problem}", expected)


def _duplicate_keys(node: Node, file: str, path: tuple[str | int, ...] = ()) -> Iterator[LocatedProblem]:
    """Every key that appears twice in one mapping, located at its second occurrence."""
    if isinstance(node, MappingNode):
        first_line: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else None
            if name is not None and name != "<<":
                if name in first_line:
                    pos = Position.of(key.start_mark)
                    yield LocatedProblem(
                        file,
                        pos.line,
                        pos.column,
                        dotted((*path, name)),
                        f"key '{name}' again (first on line {first_line[name]})",
                        "each key once in a mapping",
                    )
                else:
                    first_line[name] = Position.of(key.start_mark).line
            yield from _duplicate_keys(value, file, (*path, name if name is not None else "?"))
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, file, (*path, i))


def locate(node: Node, start: Position, path: tuple[str | int, ...]) -> Position:
    """The position of ``path`` below ``node`` (reached at ``start``): of the key itself, of a list item, or of
    the nearest parent that exists when the key is missing."""
    here = start
    for part in path:
        child = _child(node, part)
        if child is None:
            return here
        here, node = child
    return here


def _child(node: Node, part: str | int) -> tuple[Position, Node] | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        found = None
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == part:
                found = (Position.of(key.start_mark), value)
        return found
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return Position.of(item.start_mark), item
    return None


def mapping_keys(node: Node) -> dict[str, tuple[Position, Node]]:
    """The scalar keys of a mapping node with the position of each key and its value node (last one wins)."""
    if not isinstance(node, MappingNode):
        return {}
    return {k.value: (Position.of(k.start_mark), v) for k, v in node.value if isinstance(k, ScalarNode)}


def dotted(path: tuple[str | int, ...]) -> str:
    """A field path as ``clusters[3].gpu_model``; ``(document)`` for the empty path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or DOCUMENT
