"""Loading a fleet: read the file(s), merge, validate every entity, run the cross-entity checks, report all.

Every problem is collected before anything is returned: YAML problems of all files, every pydantic error of
every entity, and the cross-entity checks (run on the entities that did validate), sorted by file and line.
"""

from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from stargate.domain.checks import fleet_problems
from stargate.domain.fleet import Fleet
from stargate.domain.problems import Problem
from stargate.engine import scheduling
from stargate.fleetfile.describe import error_words, found_text
from stargate.fleetfile.errors import FleetFileError, LocatedProblem
from stargate.fleetfile.merge import LIST_KEYS, Merged, merge
from stargate.fleetfile.sources import read_docs
from stargate.fleetfile.yamldoc import dotted, parse_yaml, scalar_fields

_PLACEHOLDER_NAME = "(invalid)"


def load_fleet(path: Path) -> Fleet:
    """Load a fleet from a YAML file or a directory of YAML files.

    Raises :class:`FleetFileError` listing every problem (file, line, column, field path, found, expected).
    """
    docs, problems = read_docs(path)
    if problems and not docs:
        raise FleetFileError(problems)
    return _load_merged(merge(docs), problems)


def loads_fleet(text: str, file: str = "<string>") -> Fleet:
    """Load a fleet from YAML text; problems are located in ``file`` (a name used in messages only)."""
    return _load_merged(merge([parse_yaml(text, file, scalar_fields(Fleet))]), [])


def _load_merged(merged: Merged, problems: list[LocatedProblem]) -> Fleet:
    complete = not problems and not merged.incomplete
    problems = problems + merged.problems
    validated = _Validated(merged)
    problems += validated.problems
    if problems:
        if complete:  # with a file unread, references into it would look broken: skip the cross checks
            problems += validated.check_problems()
        raise FleetFileError(problems)
    try:
        fleet = Fleet.model_validate(merged.raw())
    except ValidationError as exc:  # every part validated alone; a whole-fleet rule failed
        raise FleetFileError([validated.locate(Fleet, err) for err in exc.errors()]) from None
    found = [validated.place(p) for p in fleet_problems(fleet) + scheduling.problems(fleet.scheduling)]
    if found:
        raise FleetFileError(found)
    return fleet


class _Validated:
    """Each entity of a merged document validated on its own, so one bad entity hides no other problem."""

    def __init__(self, merged: Merged) -> None:
        self.merged = merged
        self.problems: list[LocatedProblem] = []
        self.lists: dict[str, list[BaseModel]] = {}
        self.index: dict[str, list[int]] = {}
        self.invalid_ids: set[str] = set()
        for key in LIST_KEYS:
            self._validate_list(key)
        self.singles = self._validate_singles()

    def _validate_list(self, key: str) -> None:
        element = get_args(Fleet.model_fields[key].annotation)[0]
        self.lists[key], self.index[key] = [], []
        for i, piece in enumerate(self.merged.lists[key]):
            model = entity_model(element, piece.value)
            if isinstance(model, LocatedProblem):  # a tagged entry whose tag names no model: only that is said
                file, pos = self.merged.where((key, i, model.path))
                path = dotted((key, i, model.path) if model.path else (key, i))
                self.problems.append(LocatedProblem(file, pos.line, pos.column, path, model.found, model.expected))
                if isinstance(piece.value, dict) and isinstance(piece.value.get("id"), str):
                    self.invalid_ids.add(piece.value["id"])
                continue
            try:
                self.lists[key].append(model.model_validate(piece.value))
                self.index[key].append(i)
            except ValidationError as exc:
                self.problems += [self.locate(model, err, (key, i)) for err in exc.errors()]
                ident = piece.value.get("id", piece.value.get("name")) if isinstance(piece.value, dict) else None
                if isinstance(ident, str):
                    self.invalid_ids.add(ident)

    def _validate_singles(self) -> dict[str, Any]:
        values = {k: p.value for k, p in self.merged.singles.items()}
        try:
            Fleet.model_validate(values)
            return values
        except ValidationError as exc:  # a file that did not parse may hold the missing keys: not reported then
            errors = [e for e in exc.errors() if not (self.merged.incomplete and _missing_top_level_key(e))]
        self.problems += [self.locate(Fleet, err) for err in errors]
        bad = {err["loc"][0] for err in errors if err["loc"]}
        good = {k: v for k, v in values.items() if k not in bad}
        good.setdefault("name", _PLACEHOLDER_NAME)
        return good

    def locate(self, model: type[BaseModel], err: Any, prefix: tuple[str | int, ...] = ()) -> LocatedProblem:
        """A pydantic error of ``model`` (found at ``prefix`` in the document) as a located problem."""
        path = (*prefix, *err["loc"])
        found, expected = error_words(model, err)
        file, pos = self.merged.where(path)
        return LocatedProblem(file, pos.line, pos.column, dotted(path), found, expected)

    def place(self, problem: Problem) -> LocatedProblem:
        """A cross-entity problem (indexed in the validated fleet) located in the document."""
        path = problem.path
        if len(path) > 1 and isinstance(path[0], str) and path[0] in self.index and isinstance(path[1], int):
            path = (path[0], self.index[path[0]][path[1]], *path[2:])
        file, pos = self.merged.where(path)
        return LocatedProblem(file, pos.line, pos.column, dotted(path), problem.found, problem.expected)

    def check_problems(self) -> list[LocatedProblem]:
        """Cross-entity problems among the entities that validated; references to invalid entities are skipped."""
        lists = {k: v for k, v in self.lists.items() if k in self.merged.sections}
        try:
            fleet = Fleet.model_validate({**self.singles, **lists})
        except ValidationError:  # cannot assemble even the valid parts; the structural errors say why
            return []
        skipped = {f"'{i}'" for i in self.invalid_ids}
        kept = [p for p in fleet_problems(fleet) if not _refers_to(p, skipped)]
        return [self.place(p) for p in kept]


def entity_model(element: Any, value: Any) -> type[BaseModel] | LocatedProblem:
    """The model a list entry validates against: the list's own, or for a union tagged by a key (``kind``) the
    member that tag names; when the tag is missing or names no member, the problem (its path: the tag's key, or
    empty for an entry that is no mapping; file and position left for the caller)."""
    if isinstance(element, type) and issubclass(element, BaseModel):
        return element
    union, *meta = get_args(element)
    tag = next(m.discriminator for m in meta if isinstance(getattr(m, "discriminator", None), str))
    members: dict[str, type[BaseModel]] = {get_args(m.model_fields[tag].annotation)[0]: m for m in get_args(union)}
    choices = ", ".join(f"'{k}'" for k in members)
    if not isinstance(value, dict):
        expected = f"a mapping with '{tag}' one of {choices} (required keys: id, {tag})"
        return LocatedProblem("", 0, 0, "", found_text(value), expected)
    if tag not in value:
        return LocatedProblem("", 0, 0, tag, "nothing (the key is missing)", f"a value: one of {choices}")
    found = value[tag]
    if not isinstance(found, str) or found not in members:
        return LocatedProblem("", 0, 0, tag, found_text(found), f"one of {choices}")
    return members[found]


def _missing_top_level_key(err: Any) -> bool:
    return bool(err["type"] == "missing" and len(err["loc"]) == 1)


def _refers_to(problem: Problem, skipped: set[str]) -> bool:
    """True for a reference to an entity that did not validate (found ``'id'``, maybe followed by `` (...)``)."""
    return problem.found.split(" (")[0] in skipped and problem.expected.startswith("the id of")
