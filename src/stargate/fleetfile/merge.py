"""Merging a fleet's YAML files into one document while remembering where every piece came from.

List keys (providers, sites, ...) are concatenated in file order; single keys (name, description, as_of,
budget) may appear in one file only. Every piece keeps its file and node so any field path can be located.
"""

from dataclasses import dataclass, field
from typing import Any, get_origin

from yaml.nodes import Node, SequenceNode

from stargate.domain.base import visible
from stargate.domain.fleet import Fleet
from stargate.fleetfile.describe import expected_text, found_text, unknown_key_expected
from stargate.fleetfile.errors import LocatedProblem
from stargate.fleetfile.yamldoc import DOCUMENT, Position, YamlDoc, locate, mapping_keys

LIST_KEYS = tuple(n for n, f in Fleet.model_fields.items() if get_origin(f.annotation) is list)
"""Top-level keys holding lists; concatenated across a directory's files."""
SINGLE_KEYS = tuple(n for n in Fleet.model_fields if n not in LIST_KEYS)
"""Top-level keys holding one value; allowed in one file only."""
_TOP = f"a mapping of fleet keys ({', '.join(Fleet.model_fields)})"


@dataclass(frozen=True, slots=True)
class Piece:
    """One value of the merged document: a single key's value or one list item, with its origin."""

    file: str
    pos: Position
    node: Node
    value: Any


@dataclass
class Merged:
    """The merged fleet document: values with their origins, and the problems found while merging."""

    files: list[str]
    singles: dict[str, Piece] = field(default_factory=dict)
    lists: dict[str, list[Piece]] = field(default_factory=lambda: {k: [] for k in LIST_KEYS})
    sections: dict[str, tuple[str, Position]] = field(default_factory=dict)
    problems: list[LocatedProblem] = field(default_factory=list)
    incomplete: bool = False
    """True when a file was not a readable mapping, or a list key held no list: the document misses entities."""

    def where(self, path: tuple[str | int, ...]) -> tuple[str, Position]:
        """The file and position of a field path of the merged document (nearest existing parent if missing)."""
        key = path[0] if path else None
        if isinstance(key, str) and key in self.lists and len(path) > 1 and isinstance(path[1], int):
            items = self.lists[key]
            if 0 <= path[1] < len(items):
                piece = items[path[1]]
                return piece.file, locate(piece.node, piece.pos, path[2:])
        if isinstance(key, str) and key in self.singles:
            piece = self.singles[key]
            return piece.file, locate(piece.node, piece.pos, path[1:])
        if isinstance(key, str) and key in self.sections:
            return self.sections[key]
        return (self.files[0] if self.files else ""), Position(1, 1)

    def raw(self) -> dict[str, Any]:
        """The merged document as plain data (what a single-file fleet would have held)."""
        data: dict[str, Any] = {k: p.value for k, p in self.singles.items()}
        data.update({k: [p.value for p in items] for k, items in self.lists.items() if k in self.sections})
        return data

    def add(self, doc: YamlDoc) -> None:
        """Merge one parsed file into the document, recording merge problems."""
        self.problems.extend(doc.problems)
        if doc.node is None or not isinstance(doc.data, dict):
            self.incomplete = True
        if doc.node is None:
            if not doc.problems:
                self.problems.append(LocatedProblem(doc.file, 1, 1, DOCUMENT, "an empty file", _TOP))
            return
        if not isinstance(doc.data, dict):
            pos = Position.of(doc.node.start_mark)
            self.problems.append(LocatedProblem(doc.file, pos.line, pos.column, DOCUMENT, found_text(doc.data), _TOP))
            return
        for key, (pos, node) in mapping_keys(doc.node).items():
            self._add_key(doc, key, pos, node)

    def _add_key(self, doc: YamlDoc, key: str, pos: Position, node: Node) -> None:
        if key not in Fleet.model_fields:
            expected = unknown_key_expected(key, Fleet)
            self._problem(doc.file, pos, key, f"unknown key '{visible(key)[:60]}'", expected)
        elif key in self.singles:
            first = self.singles[key]
            found = f"'{key}' again (first in {first.file}:{first.pos.line})"
            self._problem(doc.file, pos, key, found, f"'{key}' in one file only")
        elif key in SINGLE_KEYS:
            self.singles[key] = Piece(doc.file, pos, node, doc.data[key])
        else:
            self._add_list(doc, key, pos, node)
        self.sections.setdefault(key, (doc.file, pos))

    def _add_list(self, doc: YamlDoc, key: str, pos: Position, node: Node) -> None:
        value = doc.data[key]
        if value is None:  # an empty section (``clusters:`` with nothing under it) adds nothing
            return
        if not isinstance(value, list) or not isinstance(node, SequenceNode):
            self.incomplete = True  # its entities are unknown, so references to them cannot be checked
            expected = expected_text(Fleet.model_fields[key].annotation, [])
            self._problem(doc.file, pos, key, found_text(value), expected)
            return
        for item_node, item in zip(node.value, value, strict=True):
            self.lists[key].append(Piece(doc.file, Position.of(item_node.start_mark), item_node, item))

    def _problem(self, file: str, pos: Position, key: str, found: str, expected: str) -> None:
        self.problems.append(LocatedProblem(file, pos.line, pos.column, visible(key), found, expected))


def merge(docs: list[YamlDoc]) -> Merged:
    """Merge parsed files in order into one document."""
    merged = Merged(files=[d.file for d in docs])
    for doc in docs:
        merged.add(doc)
    return merged
