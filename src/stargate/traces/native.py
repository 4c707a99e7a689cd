"""Stargate's own trace format: one job spec per CSV row (with a header) or per JSONL line, chosen by suffix.

The columns/keys are the fields of :class:`TraceJob`; ``submit_time`` (ISO 8601) may stand in for ``submit_s``.
See docs/reference/trace-formats.md ("native") for the rules. :func:`write_native` writes what :func:`read_native`
reads back to equal jobs.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from stargate.traces._rows import (
    Collector,
    RowError,
    check_width,
    csv_rows,
    epoch_seconds,
    gpu_count,
    header_index,
    name_list,
    non_negative,
    not_text,
    open_text,
    paused_gc,
    positive,
    problem,
    text_field,
    utc,
)
from stargate.traces.model import JOB_KINDS, MAX_GPUS, Trace, TraceJob

REQUIRED = ("id", "duration_s", "gpus", "queue")
"""Always required, plus exactly one of :data:`SUBMIT_COLUMNS`."""

SUBMIT_COLUMNS = ("submit_s", "submit_time")
"""``submit_s``: seconds from the trace start; ``submit_time``: an ISO 8601 date-time (no zone: UTC)."""

OPTIONAL = (
    "gpu_models",
    "priority_class",
    "preemptible",
    "checkpoint_interval_s",
    "allowed_providers",
    "allowed_regions",
    "kind",
    "estimated_duration_s",
)
"""May be left out (or left empty / null): the :class:`TraceJob` default applies."""

WRITTEN = ("id", "submit_s", "duration_s", "gpus", "queue", *OPTIONAL)
"""The columns :func:`write_native` writes, in order."""

SUFFIXES = (".csv", ".jsonl")

_KINDS = ", ".join(JOB_KINDS)
_Values = dict[str, Any]


def read_native(path: Path, *, strict: bool = False) -> Trace:
    """Read a native CSV or JSONL trace (by suffix)."""
    collector = Collector(str(path), strict=strict)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        collector.fail(0, f"file name: found suffix {suffix or '(none)'!r}, expected .csv or .jsonl")
    builder = _Builder(collector)
    with paused_gc(), open_text(path, collector) as stream:
        if suffix == ".csv":
            _read_csv(stream, collector, builder)
        else:
            _read_jsonl(stream, collector, builder)
        jobs, start = builder.finish()
    return Trace(
        jobs=jobs,
        start=start,
        skipped=collector.skipped,
        bad_rows=collector.bad_rows,
        source=str(path),
        notes=collector.notes,
    )


class _Builder:
    """Turns checked rows into jobs: unique ids, one way of giving submission times, then sorted."""

    def __init__(self, collector: Collector) -> None:
        """Start with no jobs and no submission-time column chosen yet."""
        self.collector = collector
        self.submit_key: str | None = None
        self.seen: set[str] = set()
        self.jobs: list[TraceJob] = []
        self.timed: list[_Values] = []

    def add(self, line: int, values: _Values) -> None:
        """Add one row's values (already checked one by one), or record why they cannot make a job."""
        job_id = values["id"]
        if job_id in self.seen:
            self.collector.bad(line, f"id: found {job_id!r}, expected an id not used by an earlier row")
            return
        key = "submit_s" if "submit_s" in values else "submit_time"
        if self.submit_key is None:
            self.submit_key = key
        elif key != self.submit_key:
            other = self.submit_key
            self.collector.bad(line, f"{key}: found {key}, expected {other} like the earlier rows (one way per file)")
            return
        self.seen.add(job_id)
        if key == "submit_s":
            self.jobs.append(TraceJob(**values))
        else:
            self.timed.append(values)

    def finish(self) -> tuple[list[TraceJob], Any]:
        """The jobs sorted by submission, and the trace start (the earliest ``submit_time``; None for ``submit_s``)."""
        start = None
        if self.timed:
            origin = min(values["submit_time"] for values in self.timed)
            start = utc(origin)
            for values in self.timed:
                values["submit_s"] = values.pop("submit_time") - origin
                self.jobs.append(TraceJob(**values))
        self.jobs.sort(key=_submit)
        return self.jobs, start


def _submit(job: TraceJob) -> float:
    """Sort key: submission time (the sort is stable, so ties keep file order)."""
    return job.submit_s


# --- CSV -------------------------------------------------------------------------------------------------------


def _kind(text: str, column: str) -> str:
    """A job kind."""
    value = text.strip()
    if value not in JOB_KINDS:
        raise problem(column, text, f"one of {_KINDS}")
    return value


def _boolean(text: str, column: str) -> bool:
    """``true`` or ``false`` (any case)."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise problem(column, text, "true or false")
    return value == "true"


_CSV_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "id": text_field,
    "submit_s": non_negative,
    "submit_time": epoch_seconds,
    "duration_s": positive,
    "gpus": gpu_count,
    "queue": text_field,
    "gpu_models": name_list,
    "priority_class": text_field,
    "preemptible": _boolean,
    "checkpoint_interval_s": positive,
    "allowed_providers": name_list,
    "allowed_regions": name_list,
    "kind": _kind,
    "estimated_duration_s": positive,
}


def _read_csv(stream: IO[str], collector: Collector, builder: _Builder) -> None:
    """Read a native CSV: check the header, then every row."""
    line, header, numbered = csv_rows(stream, collector)
    index = header_index(
        line, header, collector, required=REQUIRED, optional=(*SUBMIT_COLUMNS, *OPTIONAL), allow_unknown=False
    )
    submit = [name for name in SUBMIT_COLUMNS if name in index]
    if len(submit) != 1:
        found = " and ".join(submit) or "neither"
        collector.fail(line, f"header: found {found}, expected exactly one of submit_s, submit_time")
    width = len(index)
    required = [(name, index[name], _CSV_PARSERS[name]) for name in (*REQUIRED, submit[0])]
    optional = [(name, index[name], _CSV_PARSERS[name]) for name in OPTIONAL if name in index]
    for line, row in numbered:
        try:
            check_width(row, width)
            values = {name: parse(row[i], name) for name, i, parse in required}
            for name, i, parse in optional:
                text = row[i]
                if text and not text.isspace():
                    values[name] = parse(text, name)
        except RowError as error:
            collector.bad(line, str(error))
            continue
        builder.add(line, values)


# --- JSONL -----------------------------------------------------------------------------------------------------


def _json_text(value: Any, column: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise problem(column, value, "a non-empty string")
    return value.strip()


def _json_number(value: Any, column: str) -> float:
    """A finite JSON number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise problem(column, value, "a number")
    if not math.isfinite(value):
        raise problem(column, value, "a finite number")
    return float(value)


def _json_non_negative(value: Any, column: str) -> float:
    """A finite number >= 0."""
    number = _json_number(value, column)
    if number < 0:
        raise problem(column, value, "a number >= 0")
    return number


def _json_positive(value: Any, column: str) -> float:
    """A finite number > 0."""
    number = _json_number(value, column)
    if number <= 0:
        raise problem(column, value, "a number > 0")
    return number


def _json_gpus(value: Any, column: str) -> int:
    """A whole number from 1 to MAX_GPUS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GPUS:
        raise problem(column, value, f"a whole number from 1 to {MAX_GPUS}")
    return value


def _json_names(value: Any, column: str) -> tuple[str, ...]:
    """A list of non-empty names without '|'."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise problem(column, value, "a list of non-empty strings")
    names = tuple(item.strip() for item in value)
    if any("|" in name for name in names):
        raise problem(column, value, "names without '|'")
    return names


def _json_bool(value: Any, column: str) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise problem(column, value, "true or false")
    return value


def _json_kind(value: Any, column: str) -> str:
    """A job kind."""
    if value not in JOB_KINDS:
        raise problem(column, value, f"one of {_KINDS}")
    return str(value)


def _json_time(value: Any, column: str) -> float:
    """An ISO 8601 date-time string, as epoch seconds."""
    return epoch_seconds(_json_text(value, column), column)


_JSON_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "id": _json_text,
    "submit_s": _json_non_negative,
    "submit_time": _json_time,
    "duration_s": _json_positive,
    "gpus": _json_gpus,
    "queue": _json_text,
    "gpu_models": _json_names,
    "priority_class": _json_text,
    "preemptible": _json_bool,
    "checkpoint_interval_s": _json_positive,
    "allowed_providers": _json_names,
    "allowed_regions": _json_names,
    "kind": _json_kind,
    "estimated_duration_s": _json_positive,
}
_OPTIONAL_KEYS = frozenset(OPTIONAL)
_KNOWN_KEYS = frozenset(_JSON_PARSERS)
_DEFAULTS: dict[str, Any] = {
    "gpu_models": [],
    "priority_class": None,
    "preemptible": True,
    "checkpoint_interval_s": None,
    "allowed_providers": [],
    "allowed_regions": [],
    "kind": "batch",
    "estimated_duration_s": None,
}


def _read_jsonl(stream: IO[str], collector: Collector, builder: _Builder) -> None:
    """Read a native JSONL file: one JSON object per line; blank lines are skipped."""
    line = 0
    try:
        for line, text in enumerate(stream, start=1):
            if not text.strip():
                continue
            try:
                values = _json_values(text)
            except RowError as error:
                collector.bad(line, str(error))
                continue
            builder.add(line, values)
    except UnicodeDecodeError:
        not_text(Path(collector.file), collector)
    if line == 0:
        collector.fail(1, "the file is empty, expected one JSON object per line")


def _json_values(text: str) -> _Values:
    """The checked values of one JSONL line."""
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise problem("line", text.strip(), "one JSON object") from None
    if not isinstance(record, dict):
        raise problem("line", text.strip(), "one JSON object")
    keys = record.keys()
    unknown = sorted(keys - _KNOWN_KEYS)
    if unknown:
        raise RowError(f"keys: found unknown {', '.join(unknown)}, expected only {', '.join(_JSON_PARSERS)}")
    missing = [key for key in REQUIRED if key not in keys]
    submit = [key for key in SUBMIT_COLUMNS if key in keys]
    if missing or len(submit) != 1:
        raise RowError(
            f"keys: found {', '.join(sorted(keys)) or 'none'}, expected {', '.join(REQUIRED)} and exactly one of "
            f"{', '.join(SUBMIT_COLUMNS)}"
        )
    values: _Values = {}
    for key, value in record.items():
        if value is None:
            if key in _OPTIONAL_KEYS:
                continue
            raise problem(key, value, "a value (null is allowed only for optional keys)")
        values[key] = _JSON_PARSERS[key](value, key)
    return values


# --- writing ---------------------------------------------------------------------------------------------------


def write_native(trace: Trace, path: Path) -> None:
    """Write the trace's jobs as native CSV or JSONL (by suffix), all at once or not at all.

    The file is written beside ``path`` under a temporary name and renamed over it when complete. Times are
    written as ``submit_s``; floats in their shortest exact form, so reading the file back gives equal jobs.
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: found suffix {suffix or '(none)'!r}, expected .csv or .jsonl")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
            if suffix == ".csv":
                _write_csv(trace.jobs, stream)
            else:
                _write_jsonl(trace.jobs, stream)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _write_csv(jobs: Iterable[TraceJob], stream: IO[str]) -> None:
    """One header line, then one row per job (None and empty lists as empty fields)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(WRITTEN)
    writer.writerows(
        (
            job.id,
            job.submit_s,
            job.duration_s,
            job.gpus,
            job.queue,
            "|".join(job.gpu_models),
            job.priority_class,
            "true" if job.preemptible else "false",
            job.checkpoint_interval_s,
            "|".join(job.allowed_providers),
            "|".join(job.allowed_regions),
            job.kind,
            job.estimated_duration_s,
        )
        for job in jobs
    )


def _write_jsonl(jobs: Iterable[TraceJob], stream: IO[str]) -> None:
    """One JSON object per job; optional keys only when they differ from the default."""
    for job in jobs:
        stream.write(json.dumps(_record(job), separators=(",", ":")))
        stream.write("\n")


def _record(job: TraceJob) -> dict[str, Any]:
    """A job as a JSON object."""
    record: dict[str, Any] = {
        "id": job.id,
        "submit_s": job.submit_s,
        "duration_s": job.duration_s,
        "gpus": job.gpus,
        "queue": job.queue,
    }
    optional = {
        "gpu_models": list(job.gpu_models),
        "priority_class": job.priority_class,
        "preemptible": job.preemptible,
        "checkpoint_interval_s": job.checkpoint_interval_s,
        "allowed_providers": list(job.allowed_providers),
        "allowed_regions": list(job.allowed_regions),
        "kind": job.kind,
        "estimated_duration_s": job.estimated_duration_s,
    }
    for key, value in optional.items():
        if value != _DEFAULTS[key]:
            record[key] = value
    return record
