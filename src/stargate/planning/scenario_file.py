"""Plan scenario files: YAML in, a validated :class:`PlanScenario` with its fleet and history out, every problem
located (docs/reference/plan-file.md).

The machinery is the fleet files' (:mod:`stargate.fleetfile`): the same strict YAML, the same wording of found and
expected, the same :class:`LocatedProblem`. Every problem is collected before anything is returned: the scenario's
own (YAML, fields), the fleet's (located in the fleet files), the checks of the scenario against the fleet
(:func:`stargate.engine.plan_checks.scenario_problems`) and the traces of ``fit`` series. Nothing partial is ever
returned.

- :func:`load_scenario` reads a file (the CLI): its ``fleet`` is loaded relative to it, a ``fit`` series needs a
  ``trace`` file.
- :func:`loads_scenario` reads text with a fleet given (the server): the ``fleet`` key is ignored, a ``fit`` series
  must not name a trace (the server fits to its ledger and supplies that history itself).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stargate.domain.base import visible
from stargate.domain.fleet import Fleet
from stargate.domain.planning import PlanScenario
from stargate.engine.plan_checks import scenario_problems
from stargate.engine.plan_demand import month_days, month_index, month_starts
from stargate.fleetfile import FleetFileError, LocatedProblem, load_fleet
from stargate.fleetfile.describe import error_words, found_text
from stargate.fleetfile.sources import read_limited
from stargate.fleetfile.yamldoc import DOCUMENT, Position, YamlDoc, dotted, locate, parse_yaml, scalar_fields
from stargate.traces import FORMATS, Trace, TraceError, read_trace

History = Mapping[str, tuple[tuple[date, float], ...]]
"""Monthly GPU averages by ``fit`` series id: (first day of the month, GPUs) in month order."""

_WANTED = "a plan scenario YAML file"
_SHOWN_BAD_ROWS = 5
_TOP = "a mapping of scenario keys (name, start, demand, ...)"


class ScenarioFileError(FleetFileError):
    """A scenario file (or the fleet it names, or a trace it fits to) has problems; ``problems`` lists every one,
    sorted by file and place. A :class:`FleetFileError`, so whatever prints fleet problems prints these."""

    def __init__(self, problems: list[LocatedProblem]) -> None:
        super().__init__(problems)
        count = len(self.problems)
        self.args = (f"{count} problem{'s' if count != 1 else ''} in the plan scenario",)


@dataclass(frozen=True, slots=True)
class LoadedScenario:
    """A scenario ready to plan: validated, with its fleet and the history its ``fit`` series are fitted to."""

    scenario: PlanScenario
    fleet: Fleet
    path: Path
    """The scenario file (for text given to :func:`loads_scenario`, the name it was given)."""
    history: History = field(default_factory=dict)
    """Monthly GPU averages of each ``fit`` series with a trace (the server supplies the rest from its ledger)."""
    warnings: tuple[str, ...] = ()
    """Things read but left out, e.g. malformed trace rows skipped (as ``stargate simulate`` skips them)."""


def load_scenario(path: Path) -> LoadedScenario:
    """Load a scenario file, the fleet it names (relative to it) and the traces its ``fit`` series name.

    Raises :class:`ScenarioFileError` listing every problem (file, line, column, field path, found, expected).
    """
    text, problem = _read(path)
    if problem is not None:
        raise ScenarioFileError([problem])
    doc = parse_yaml(text, str(path), scalar_fields(PlanScenario))
    reader = _Reader(doc)
    fleet_key = doc.data.get("fleet", ".") if isinstance(doc.data, dict) else None
    # a fleet key that is not a path (or a document that is not a scenario) is the scenario's problem: nothing is
    # loaded in its place
    fleet = None
    if isinstance(fleet_key, str) and fleet_key.strip():
        fleet = _fleet(path.parent / fleet_key.strip(), fleet_key.strip(), reader)
    scenario = reader.scenario
    if scenario is None or fleet is None:
        raise ScenarioFileError(reader.problems)
    history: dict[str, tuple[tuple[date, float], ...]] = {}
    warnings: list[str] = []
    for i, series in enumerate(scenario.demand):
        if series.fit is None:
            continue
        where = ("demand", i, "fit", "trace")
        if series.fit.trace is None:
            reader.add(
                where,
                "null (fit to the server's ledger)",
                "a trace file, relative to the scenario file: "
                "outside the server, a fit needs a trace (the server fits to the runs it has recorded)",
            )
            continue
        trace = _trace(path.parent / series.fit.trace, series.fit.format, i, reader)
        if trace is not None:
            warnings += [f"bad trace row skipped: {bad}" for bad in trace.bad_rows[:_SHOWN_BAD_ROWS]]
            if len(trace.bad_rows) > _SHOWN_BAD_ROWS:
                warnings.append(
                    f"... and {len(trace.bad_rows) - _SHOWN_BAD_ROWS:,} more bad rows of {series.fit.trace}"
                )
            history[series.id] = monthly_gpus(trace, scenario.start)
    return reader.finish(scenario, fleet, path, history, tuple(warnings))


def loads_scenario(text: str, file: str, fleet: Fleet) -> LoadedScenario:
    """Load a scenario from YAML text against ``fleet`` (the server's): the ``fleet`` key is ignored and a ``fit``
    series must not name a trace; its history (from the ledger) is the caller's to supply.

    Raises :class:`ScenarioFileError` listing every problem, located in ``file`` (a name used in messages only).
    """
    reader = _Reader(parse_yaml(text, file, scalar_fields(PlanScenario)))
    scenario = reader.scenario
    if scenario is None:
        raise ScenarioFileError(reader.problems)
    for i, series in enumerate(scenario.demand):
        if series.fit is not None and series.fit.trace is not None:
            reader.add(
                ("demand", i, "fit", "trace"),
                found_text(series.fit.trace),
                "null: the server fits to the "
                "runs it has recorded (a trace file is read only by `stargate plan` on the command line)",
            )
    return reader.finish(scenario, fleet, Path(file), {}, ())


def monthly_gpus(trace: Trace, start: date) -> tuple[tuple[date, float], ...]:
    """A trace as monthly GPU averages: GPU-hours of the jobs running in each month ÷ the month's hours.

    A job runs from its submission for its duration (the trace's demand, not what a fleet made of it). Trace time 0
    is the trace's own date when its rows carry dates; otherwise the trace is taken to end just before ``start``
    (its last month is the month before the horizon), so the history leads into the plan.
    """
    if not trace.jobs:
        return ()
    end_s = max(j.submit_s + j.duration_s for j in trace.jobs)
    if trace.start is not None:
        zero = trace.start if trace.start.tzinfo is None else trace.start.astimezone(UTC).replace(tzinfo=None)
    else:
        span = _months_spanned(end_s)
        first_index = start.year * 12 + start.month - 1 - span
        zero = datetime(first_index // 12, first_index % 12 + 1, 1)
    last = zero + timedelta(seconds=end_s)
    months = month_starts(zero.date(), month_index(zero.date(), last.date()) + 1)
    edges = [datetime(m.year, m.month, 1) for m in months]
    edges.append(datetime(months[-1].year + months[-1].month // 12, months[-1].month % 12 + 1, 1))
    offsets = [(e - zero).total_seconds() for e in edges]
    gpu_seconds = [0.0] * len(months)
    for job in trace.jobs:
        begin, end = job.submit_s, job.submit_s + job.duration_s
        k = _month_of(offsets, begin)
        while k < len(months) and offsets[k] < end:
            overlap = min(end, offsets[k + 1]) - max(begin, offsets[k])
            if overlap > 0:
                gpu_seconds[k] += overlap * job.gpus
            k += 1
    return tuple((m, s / (month_days(m) * 86_400.0)) for m, s in zip(months, gpu_seconds, strict=True))


def _months_spanned(seconds: float) -> int:
    """Whole months (of 30 days) a trace of ``seconds`` covers, at least 1."""
    return max(1, math.ceil(seconds / (30 * 86_400.0)))


def _month_of(offsets: list[float], second: float) -> int:
    """The index of the month holding trace second ``second`` (bisect on the months' first seconds)."""
    lo, hi = 0, len(offsets) - 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if offsets[mid] <= second:
            lo = mid
        else:
            hi = mid - 1
    return lo


class _Reader:
    """One parsed scenario document: its problems so far, located in it, and the scenario when it validated."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.problems: list[LocatedProblem] = list(doc.problems)
        self.scenario: PlanScenario | None = None
        if doc.node is None:
            if not doc.problems:
                self.problems.append(LocatedProblem(doc.file, 1, 1, DOCUMENT, "an empty file", _TOP))
            return
        if not isinstance(doc.data, dict):
            pos = Position.of(doc.node.start_mark)
            self.problems.append(LocatedProblem(doc.file, pos.line, pos.column, DOCUMENT, found_text(doc.data), _TOP))
            return
        try:
            scenario = PlanScenario.model_validate(doc.data)
        except ValidationError as exc:
            self.problems += [self._error(err) for err in exc.errors()]
            return
        if not self.problems:  # a duplicate key was reported: the value kept may not be the one meant
            self.scenario = scenario

    def add(self, path: tuple[str | int, ...], found: str, expected: str) -> None:
        """A problem at ``path`` in the document."""
        pos = self.where(path)
        self.problems.append(LocatedProblem(self.doc.file, pos.line, pos.column, dotted(path), found, expected))

    def where(self, path: tuple[str | int, ...]) -> Position:
        """The line and column of ``path`` (or of its nearest parent that exists)."""
        node = self.doc.node
        return Position(1, 1) if node is None else locate(node, Position.of(node.start_mark), path)

    def finish(
        self, scenario: PlanScenario, fleet: Fleet, path: Path, history: History, warnings: tuple[str, ...]
    ) -> LoadedScenario:
        """The loaded scenario once it is checked against the fleet; every problem raised at once."""
        for problem in scenario_problems(scenario, fleet, history):
            self.add(problem.path, problem.found, problem.expected)
        if self.problems:
            raise ScenarioFileError(self.problems)
        return LoadedScenario(scenario, fleet, path, dict(history), warnings)

    def _error(self, err: Any) -> LocatedProblem:
        path = tuple(err["loc"])
        found, expected = error_words(PlanScenario, err)
        if not path:
            path = self._repeated_id(found) or path
        pos = self.where(path)
        return LocatedProblem(self.doc.file, pos.line, pos.column, dotted(path), found, expected)

    def _repeated_id(self, found: str) -> tuple[str | int, ...] | None:
        """The path of the second use of an id the scenario repeats ("found the id 'x' twice in build")."""
        for key in ("market.options", "demand", "build"):
            if found.endswith(f" twice in {key}"):
                parts: tuple[str | int, ...] = tuple(key.split("."))
                items: Any = self.doc.data
                for part in parts:
                    items = items.get(part) if isinstance(items, dict) else None
                seen: set[Any] = set()
                for i, item in enumerate(items if isinstance(items, list) else []):
                    ident = item.get("id") if isinstance(item, dict) else None
                    if isinstance(ident, str) and ident.strip() in seen:
                        return (*parts, i, "id")
                    seen.add(ident.strip() if isinstance(ident, str) else None)
        return None


def _read(path: Path) -> tuple[str, LocatedProblem | None]:
    """The text of a scenario file, or the located problem of reading it."""
    where = str(path)
    if not path.exists():
        found = "a symbolic link to a missing file" if path.is_symlink() else "no such file or directory"
        return "", LocatedProblem(where, 0, 0, DOCUMENT, found, _WANTED)
    try:
        raw = read_limited(path)
    except OSError as exc:
        return "", LocatedProblem(where, 0, 0, DOCUMENT, f"a file that cannot be read ({exc.strerror})", _WANTED)
    if isinstance(raw, int):
        return "", LocatedProblem(where, 0, 0, DOCUMENT, f"a document of {raw:,} bytes", "at most 16 MiB")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        found = f"byte 0x{raw[exc.start]:02x}, which is not UTF-8"
        return "", LocatedProblem(where, line, column, DOCUMENT, found, "a UTF-8 text file")


def _fleet(fleet_path: Path, written: str, reader: _Reader) -> Fleet | None:
    """The fleet the scenario names; its problems (located in the fleet files) join the scenario's."""
    if not fleet_path.exists():
        found = f"{found_text(written)} ({visible(str(fleet_path))}: no such file or directory)"
        reader.add(("fleet",), found, "a fleet file or directory, relative to the scenario file")
        return None
    try:
        return load_fleet(fleet_path)
    except FleetFileError as exc:
        reader.problems += exc.problems
        return None


def _trace(path: Path, fmt: str, index: int, reader: _Reader) -> Trace | None:
    """The trace a fit series names, or None with its problem located at the series' fit."""
    if fmt not in FORMATS:
        reader.add(("demand", index, "fit", "format"), found_text(fmt), f"one of {', '.join(FORMATS)}")
        return None
    try:
        trace = read_trace(path, fmt)
    except TraceError as exc:
        reader.add(("demand", index, "fit", "trace"), f"a trace that cannot be read: {exc}", f"a {fmt} trace file")
        return None
    if not trace.jobs:
        reader.add(("demand", index, "fit", "trace"), f"a trace with no jobs ({path})", "a trace with jobs to fit")
        return None
    return trace
