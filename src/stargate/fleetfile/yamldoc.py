"""YAML with positions: parse a file into plain data plus its node tree, and find the line of a field path.

Plain scalars are resolved as in YAML 1.2's core schema, stricter still (see :data:`_RESOLVERS`): an integer is
plain decimal (``8``, ``-3``, ``50_000``; never ``010``, ``0x10``, ``0b101``, ``1_0``, ``+2`` or the sexagesimal
``1:30``, which stay text and are refused by a number field), a float is plain decimal or exponent form, a boolean
is ``true`` or ``false`` (never ``yes``/``on``), and dates are left as strings (pydantic parses them and reports bad
ones with the field's location). Explicit tags (``!!binary``, ``!!int``, ``!foo``) are refused. Floats keep their
text (so money is exact to the digit), duplicate keys in a mapping are reported (PyYAML would silently keep the
last), an alias inside its own anchor (a recursive structure) is refused, characters YAML does not allow (NUL, BEL
and other control characters) are reported at their line and column, and syntax errors are located.

A document is bounded before anything is built from it: at most :data:`MAX_DOCUMENT_BYTES`, nesting at most
:data:`MAX_DEPTH` deep, and at most :data:`MAX_NODES` nodes once every alias is expanded (so a "billion laughs"
document of a few hundred bytes is refused at its first over-large alias, in milliseconds).
"""

import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel
from yaml.composer import Composer
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from stargate.domain.base import visible
from stargate.fleetfile.errors import LocatedProblem

DOCUMENT = "(document)"
"""The field path shown for a problem with the document as a whole."""

_BOOL, _NULL, _INT, _FLOAT = (f"tag:yaml.org,2002:{t}" for t in ("bool", "null", "int", "float"))

_WHOLE = r"(?:0|[1-9][0-9]*|[1-9][0-9]{0,2}(?:_[0-9]{3})+)"
"""Decimal digits without a leading zero; '_' only as a thousands separator (``50_000``, never ``1_0``)."""

_RESOLVERS: list[tuple[str, re.Pattern[str], str]] = [
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    (_INT, re.compile(rf"^-?{_WHOLE}$"), "-0123456789"),
    (
        _FLOAT,
        re.compile(
            rf"^(?:-?{_WHOLE}(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-0123456789.+",
    ),
    ("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), "<"),
]
"""How a plain (unquoted, untagged) scalar is typed: YAML 1.2 core schema, stricter. Integers are plain decimal
without a leading zero, sign '+', base prefix or colon, with '_' only between groups of three digits; floats are
plain decimal or exponent form (and ``.inf``/``.nan``, which every number field refuses as non-finite); booleans are
``true``/``false``; null is ``~``, ``null`` or nothing. Everything else, including dates, is text."""

_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters YAML does not allow anywhere in a document, even quoted (PyYAML's reader check)."""

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""The largest YAML document read, bytes (16 MiB; a 1,000-cluster fleet is about 0.3 MiB)."""

MAX_DEPTH = 64
"""The deepest nesting of mappings and sequences in a document, levels (a fleet file uses about 5)."""

MAX_NODES = 500_000
"""The most nodes (scalars, mappings, sequences) a document may hold once every alias is expanded, nodes. A cluster
takes about 13 nodes, so the bound holds the 10,000 clusters a fleet may have several times over (the design's scale
is a few thousand clusters), while a document of millions of small values is refused after reading at most this
many (about 3 s on one core, instead of 37 s and 1.5 GB to build a 3.9-million-item list first)."""

ALIAS_ALLOWANCE = 10_000
"""Nodes that aliases may add to any document, nodes."""

ALIAS_RATIO = 10
"""Beyond :data:`ALIAS_ALLOWANCE`, aliases may add this many nodes per node written in the document so far (a
fleet that merges shared defaults into each cluster adds about 1–3)."""

MAX_INTEGER_DIGITS = 4_000
"""The longest integer read from YAML, digits (Python refuses to convert longer ones)."""


class LimitError(yaml.MarkedYAMLError):
    """A document over one of the limits above, located at the node that crossed it (and at a top-level key when
    ``key`` is given)."""

    def __init__(self, found: str, expected: str, mark: Any, key: str | None = None) -> None:
        super().__init__(problem=found, problem_mark=mark)
        self.found = found
        self.expected = expected
        self.key = key


class _LimitedComposer(Composer):
    """PyYAML's composer that counts depth and expanded nodes as it goes and stops at a limit."""

    scalar_keys: frozenset[str] = frozenset()
    """Top-level keys whose value is one scalar: a list or mapping there is refused before it is composed."""

    def compose_document(self) -> Node | None:
        """The next document's root node, composed under the limits."""
        self._depth = 0
        self._nodes = 0
        self._written = 0
        self._sizes: dict[int, int] = {}
        self._open: set[str] = set()
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: Any) -> Any:
        """One node; an alias counts as many nodes as its anchor expands to.

        Refused: an explicit tag (``!!binary``, ``!foo``), and an alias inside the node its anchor names (a
        recursive structure, which would make every later step recurse without end).
        """
        event = self.peek_event()  # type: ignore[attr-defined]
        tag = getattr(event, "tag", None)
        if tag is not None:
            shown = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag
            found = f"the explicit tag {shown}"
            raise LimitError(found, "plain YAML values without tags (quote text to keep it text)", event.start_mark)
        if (
            self._depth == 1
            and isinstance(index, ScalarNode)
            and index.value in self.scalar_keys
            and isinstance(event, SequenceStartEvent | MappingStartEvent)
        ):  # refused before it is built: a list where one value is expected may hold millions of items
            what = "a list" if isinstance(event, SequenceStartEvent) else "a mapping"
            raise LimitError(
                f"{what}", "a single value (text, a number, a date or a flag)", event.start_mark, index.value
            )
        if isinstance(event, AliasEvent):
            if event.anchor in self._open:
                found = f"the alias *{event.anchor} inside its own anchor &{event.anchor} (a recursive structure)"
                raise LimitError(
                    found, "aliases only to complete nodes, never to one that contains them", event.start_mark
                )
            node: Any = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), event.start_mark, f"alias *{event.anchor}")
            added, allowed = self._nodes - self._written, ALIAS_ALLOWANCE + ALIAS_RATIO * self._written
            if added > allowed:
                found = f"aliases that add {added:,} nodes to {self._written:,} written (at alias *{event.anchor})"
                expected = f"aliases that add at most {ALIAS_ALLOWANCE:,} + {ALIAS_RATIO} per written node"
                raise LimitError(found, f"{expected} ({allowed:,} here)", event.start_mark)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise LimitError(
                f"nesting deeper than {MAX_DEPTH} levels", f"at most {MAX_DEPTH} levels of nesting", event.start_mark
            )
        before = self._nodes
        self._written += 1
        self._count(1, event.start_mark, "node")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open.add(anchor)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[id(node)] = self._nodes - before
        return node

    def _count(self, nodes: int, mark: Any, what: str) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            found = f"more than {MAX_NODES:,} nodes once aliases are expanded (this {what} adds {nodes:,})"
            raise LimitError(found, f"at most {MAX_NODES:,} nodes with every alias expanded", mark)


class _PureLoader(_LimitedComposer, yaml.SafeLoader):
    """Safe loader that keeps dates as strings, so a bad date is a located validation error, not a crash."""


_CParser = getattr(yaml, "CParser", None) or getattr(getattr(yaml, "cyaml", None), "CParser", None)


if _CParser is not None:

    class _FastLoader(_LimitedComposer, _CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc, valid-type]
        """The same on libyaml's parser when PyYAML has it (faster on large fleets)."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)  # type: ignore[misc]
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            Composer.__init__(self)

else:  # pragma: no cover - PyYAML without libyaml

    class _FastLoader(_PureLoader):  # type: ignore[no-redef]
        """The pure loader (PyYAML was built without libyaml)."""


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


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    digits = sum(ch.isdigit() for ch in str(node.value))
    if digits > MAX_INTEGER_DIGITS:
        found = f"an integer of {digits:,} digits"
        raise LimitError(found, f"an integer of at most {MAX_INTEGER_DIGITS:,} digits", node.start_mark)
    return loader.construct_yaml_int(node)


LOADER_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
"""The implicit resolvers of :data:`_RESOLVERS` keyed by first character, as PyYAML keeps them."""
for _tag, _regexp, _firsts in _RESOLVERS:
    for _first in [*_firsts, *([""] if _tag == _NULL else [])]:
        LOADER_RESOLVERS.setdefault(_first, []).append((_tag, _regexp))

for _loader in (_PureLoader, _FastLoader):
    _loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
    _loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    _loader.yaml_implicit_resolvers = LOADER_RESOLVERS


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
    limited: bool = False
    """True when the document was refused for a limit (size, depth, aliases), not for its syntax."""


def parse_yaml(text: str, file: str, scalar_keys: frozenset[str] = frozenset()) -> YamlDoc:
    """Parse ``text`` (the contents of ``file``) into data and nodes; YAML errors become located problems.

    ``scalar_keys`` are top-level keys that take one value (see :func:`scalar_fields`): a list or a mapping there is
    refused as soon as it starts, before a node of it is built.

    The fast parser reads; on a YAML error the pure-Python parser reads again for its more precise message (not
    for a limit: that message is already exact).
    """
    if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        return YamlDoc(file, None, None, [too_large(file, len(text.encode("utf-8", "surrogatepass")))])
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        return YamlDoc(file, None, None, [_bad_character(text, bad.start(), file)])
    doc = _parse(_FastLoader, text, file, scalar_keys)
    if doc.node is None and doc.problems and not doc.limited:
        return _parse(_PureLoader, text, file, scalar_keys)
    return doc


def scalar_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` that take one value (not a list, a mapping or a nested model)."""
    out = set()
    for name, info in model.model_fields.items():
        kinds = [a for a in (get_args(info.annotation) or (info.annotation,)) if a is not type(None)]
        if get_origin(info.annotation) in (list, dict, tuple) or any(
            get_origin(a) in (list, dict, tuple) or (isinstance(a, type) and issubclass(a, BaseModel)) for a in kinds
        ):
            continue
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            continue
        out.add(name)
    return frozenset(out)


def _bad_character(text: str, at: int, file: str) -> LocatedProblem:
    """The problem of a character YAML does not allow, at its line and column."""
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    ch = text[at]
    name = unicodedata.name(ch, "").lower() or ("a control character" if unicodedata.category(ch) == "Cc" else "")
    found = f"the character U+{ord(ch):04X}" + (f" ({name})" if name else "") + ", which YAML does not allow"
    expected = "printable text (tab and newline allowed; write other control characters as \\xNN in double quotes)"
    return LocatedProblem(file, line, column, DOCUMENT, found, expected)


def too_large(file: str, size: int) -> LocatedProblem:
    """The problem of a document of ``size`` bytes over :data:`MAX_DOCUMENT_BYTES`."""
    found = f"a document of {size:,} bytes"
    return LocatedProblem(file, 0, 0, DOCUMENT, found, f"at most {MAX_DOCUMENT_BYTES:,} bytes (16 MiB)")


def _parse(
    loader_class: type[yaml.SafeLoader], text: str, file: str, scalar_keys: frozenset[str] = frozenset()
) -> YamlDoc:
    try:
        loader = loader_class(text)
        loader.scalar_keys = scalar_keys  # type: ignore[attr-defined]
    except yaml.YAMLError as exc:  # the reader's character check (already done above; kept as a safety net)
        return YamlDoc(file, None, None, [LocatedProblem(file, 0, 0, DOCUMENT, f"invalid YAML: {exc}", "valid YAML")])
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(file, None, None, [])
        duplicates = list(_duplicate_keys(node, file))
        return YamlDoc(file, loader.construct_document(node), node, duplicates)
    except LimitError as exc:
        pos = Position.of(exc.problem_mark)
        path = DOCUMENT if exc.key is None else exc.key
        return YamlDoc(
            file, None, None, [LocatedProblem(file, pos.line, pos.column, path, exc.found, exc.expected)], True
        )
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
                        f"key '{visible(name)}' again (first on line {first_line[name]})",
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
    """A field path as ``clusters[3].gpu_model``; ``(document)`` for the empty path. A key's control, hidden and
    bidirectional characters are shown as escapes (``\\x1b``, ``\\u202e``), as in every message."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{visible(part)}" if out else visible(part))
    return out or DOCUMENT
