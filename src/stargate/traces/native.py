"""Stargate's own trace format: one job spec per CSV row (with a header) or per JSONL line, chosen by suffix.

The columns/keys are the fields of :class:`TraceJob`; ``submit_time`` (ISO 8601) may stand in for ``submit_s``.
See docs/reference/trace-formats.md ("native") for the rules; :mod:`stargate.traces.writer` writes the format.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from stargate.traces import _native_values as values
from stargate.traces._rows import Collector, CsvRows, RowError, header_index, not_text, open_text, paused_gc
from stargate.traces.model import JOB_KINDS, MAX_GPUS, Trace, TraceJob, build_job

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
    "user",
    "name",
)
"""May be left out (or left empty / null): the :class:`TraceJob` default applies."""

SUFFIXES = (".csv", ".jsonl")

FIELDS = (
    "id",
    "submit_s",
    "duration_s",
    "gpus",
    "queue",
    "gpu_models",
    "priority_class",
    "preemptible",
    "checkpoint_interval_s",
    "allowed_providers",
    "allowed_regions",
    "kind",
    "estimated_duration_s",
    "user",
    "name",
)
""":class:`TraceJob`'s fields in declaration order (``submit_time`` fills the ``submit_s`` slot)."""

_DEFAULTS: tuple[Any, ...] = (None, None, None, None, None, (), None, True, None, (), (), "batch", None, None, None)
_SLOT = {name: position for position, name in enumerate(FIELDS)} | {"submit_time": 1}
_INF = float("inf")
_KIND_NAMES = {"": "batch"} | {kind: kind for kind in JOB_KINDS}
_JSON_DECODER = json.JSONDecoder()
_JSON_NUMBERS = (int, float)
_JSON_KINDS = {kind: kind for kind in JOB_KINDS}
_BOOLEANS = {"": True, "true": True, "false": False}


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
    """Turns checked rows into jobs: unique ids, one way of giving submission times per file, then sorted."""

    def __init__(self, collector: Collector) -> None:
        """Start with no jobs and no submission-time key chosen yet."""
        self.collector = collector
        self.timed: bool | None = None
        self.seen: set[str] = set()
        self.jobs: list[TraceJob] = []
        self.pending: list[list[Any]] = []

    def add(self, line: int, row: list[Any], timed: bool) -> None:
        """Add one row's field values (checked one by one; slot 1 holds epoch seconds when ``timed``)."""
        job_id = row[0]
        if job_id in self.seen:
            self.collector.bad(line, str(values.problem("id", job_id, "an id not used by an earlier row")))
            return
        if self.timed is None:
            self.timed = timed
        elif timed != self.timed:
            used, other = ("submit_time", "submit_s") if timed else ("submit_s", "submit_time")
            self.collector.bad(line, f"{used}: found {used}, expected {other} like the earlier rows (one per file)")
            return
        self.seen.add(job_id)
        if timed:
            self.pending.append(row)
        else:
            self.jobs.append(build_job(*row))

    def finish(self) -> tuple[list[TraceJob], datetime | None]:
        """The jobs sorted by submission, and the trace start (the earliest ``submit_time``; None for ``submit_s``)."""
        start = None
        if self.pending:
            origin = min(row[1] for row in self.pending)
            start = values.utc(origin)
            for row in self.pending:
                row[1] -= origin
                self.jobs.append(build_job(*row))
        self.jobs.sort(key=_submit)
        return self.jobs, start


def _submit(job: TraceJob) -> float:
    """Sort key: submission time (the sort is stable, so ties keep file order)."""
    return job.submit_s


# --- CSV -------------------------------------------------------------------------------------------------------


class _CsvLayout:
    """Where each field is in a native CSV row; absent optional columns point at an appended empty field."""

    fast = True
    """Whether plain rows take the fast path (tests switch it off to compare both paths)."""

    def __init__(self, index: dict[str, int], submit: str) -> None:
        """Lay out from the header's column index and the submission column used."""
        self.width = len(index)
        self.timed = submit == "submit_time"
        self.pad = any(name not in index for name in OPTIONAL)
        self.position = [index.get(name, self.width) for name in FIELDS]
        self.position[1] = index[submit]
        self.columns = [(_SLOT[name], i, values.CSV_PARSERS[name], name) for name, i in index.items()]


def _read_csv(stream: IO[str], collector: Collector, builder: _Builder) -> None:
    """Read a native CSV: check the header, then every row."""
    source = CsvRows(stream, collector)
    line, header = source.header()
    index = header_index(
        line, header, collector, required=REQUIRED, optional=(*SUBMIT_COLUMNS, *OPTIONAL), allow_unknown=False
    )
    submit = [name for name in SUBMIT_COLUMNS if name in index]
    if len(submit) != 1:
        found = " and ".join(submit) or "neither"
        collector.fail(line, f"header: found {found}, expected exactly one of submit_s, submit_time")
    layout = _CsvLayout(index, submit[0])
    while True:
        try:
            _read_rows(source.reader, layout, collector, builder)
            return
        except (csv.Error, UnicodeDecodeError) as error:
            if not source.recover(error):
                return


def _read_rows(reader: Any, layout: _CsvLayout, collector: Collector, builder: _Builder) -> None:
    """Read rows: a fast path for plain rows, full checks (:func:`_checked_row`) for everything else.

    The fast path takes a row when it gives ``submit_s``, a new id and no optional field but ``kind`` and
    ``preemptible``, all of them well-formed; it is this function's whole reason to be long and flat (one
    million rows in a few seconds). Any other row goes through the same checks one field at a time.
    """
    width, pad, timed = layout.width, layout.pad, layout.timed
    slow_only = timed or not layout.fast
    i_id, i_submit, i_duration, i_gpus, i_queue, *optional = layout.position
    i_models, i_class, i_preempt, i_checkpoint, i_providers, i_regions, i_kind, i_estimate, i_user, i_name = optional
    seen, jobs, inf, kinds, booleans = builder.seen, builder.jobs, _INF, _KIND_NAMES, _BOOLEANS
    queues: dict[str, str] = {}  # one string object per queue name, not one per job
    end = reader.line_num
    for row in reader:
        line, end = end + 1, reader.line_num
        if len(row) != width:
            if not row:
                continue
            collector.bad(line, f"row: found {len(row)} fields, expected {width} (one per header column)")
            continue
        if pad:
            row.append("")
        if not slow_only:
            try:
                submit = float(row[i_submit])
                duration = float(row[i_duration])
                gpus = int(row[i_gpus])
            except ValueError:
                submit = duration = -1.0
                gpus = 0
            job_id, queue = row[i_id].strip(), row[i_queue].strip()
            queue = queues.setdefault(queue, queue)
            kind, preemptible = kinds.get(row[i_kind]), booleans.get(row[i_preempt])
            if (
                0 <= submit < inf
                and 0 < duration < inf
                and 1 <= gpus <= MAX_GPUS
                and job_id
                and queue
                and kind is not None
                and preemptible is not None
                and job_id not in seen
                and not (row[i_models] or row[i_class] or row[i_checkpoint] or row[i_providers] or row[i_regions])
                and not (row[i_estimate] or row[i_user] or row[i_name])
            ):
                seen.add(job_id)
                jobs.append(
                    build_job(job_id, submit, duration, gpus, queue, (), None, preemptible, None, (), (), kind, None)
                )
                continue
        try:
            parsed = _checked_row(row, layout)
        except RowError as error:
            collector.bad(line, str(error))
            continue
        builder.add(line, parsed, timed)


def _checked_row(row: list[str], layout: _CsvLayout) -> list[Any]:
    """The field values of a row with every check, or :class:`RowError` for the first problem."""
    parsed = list(_DEFAULTS)
    for slot, i, parse, name in layout.columns:
        text = row[i]
        if text and not text.isspace():
            parsed[slot] = parse(text, name)
        elif name in SUBMIT_COLUMNS or name in REQUIRED:
            raise values.problem(name, text, "a value (this column is required)")
    return parsed


# --- JSONL -----------------------------------------------------------------------------------------------------


def _read_jsonl(stream: IO[str], collector: Collector, builder: _Builder) -> None:
    """Read a native JSONL file: one JSON object per line; blank lines are skipped (an empty file: no jobs).

    A line holding one plain object (see :func:`_json_fast`) is decoded once and added at once; any other line is
    decoded again and checked key by key (:func:`_json_row`), which words the first problem.
    """
    decode = _JSON_DECODER.raw_decode
    try:
        for line, text in enumerate(stream, start=1):
            try:
                record, end = decode(text)
            except (ValueError, RecursionError):  # not JSON, or space before it: the full checks say which
                record, end = None, 0
            if (
                type(record) is dict
                and (end == len(text) or text[end:].isspace())
                and builder.timed is not True
                and _json_fast(record, builder)
            ):
                continue
            if not text.strip():
                continue
            try:
                parsed, timed = _json_row(text)
            except RowError as error:
                collector.bad(line, str(error))
                continue
            builder.add(line, parsed, timed)
    except UnicodeDecodeError:
        not_text(Path(collector.file), collector)


def _json_row(text: str) -> tuple[list[Any], bool]:
    """The checked field values of one JSONL line, and whether it gives ``submit_time``."""
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise values.problem("line", text.strip(), "one JSON object") from None
    if not isinstance(record, dict):
        raise values.problem("line", text.strip(), "one JSON object")
    return _json_checked(record)


def _json_fast(record: dict[str, Any], builder: _Builder) -> bool:
    """Add the job of a plain record (``submit_s``, a new id, no optional key but kind and preemptible) at once.

    Returns False, having added nothing, for any other record: :func:`_json_checked` then checks it key by key.
    """
    get = record.get
    job_id: Any = get("id")
    queue: Any = get("queue")
    gpus: Any = get("gpus")
    submit: Any = get("submit_s")
    duration: Any = get("duration_s")
    kind: Any = get("kind", "batch")
    preemptible: Any = get("preemptible", True)
    kind = _JSON_KINDS.get(kind) if type(kind) is str else None
    if (
        type(job_id) is not str
        or type(queue) is not str
        or type(gpus) is not int
        or type(submit) not in _JSON_NUMBERS
        or type(duration) not in _JSON_NUMBERS
        or type(preemptible) is not bool
        or kind is None
        or len(record) != 5 + ("kind" in record) + ("preemptible" in record)
        or not (1 <= gpus <= MAX_GPUS and 0 <= submit < _INF and 0 < duration < _INF)
        or not (job_id and queue and job_id == job_id.strip() and queue == queue.strip())
        or job_id in builder.seen
    ):
        return False
    try:
        submit, duration = float(submit), float(duration)
    except OverflowError:
        return False
    if builder.timed is None:
        builder.timed = False
    builder.seen.add(job_id)
    builder.jobs.append(
        build_job(job_id, submit, duration, gpus, queue, (), None, preemptible, None, (), (), kind, None)
    )
    return True


def _json_checked(record: dict[str, Any]) -> tuple[list[Any], bool]:
    """The field values of one JSON object with every check, and whether it gives ``submit_time``."""
    keys = record.keys()
    unknown = sorted(keys - _SLOT.keys())
    if unknown:
        raise RowError(f"keys: found unknown {', '.join(unknown)}, expected only {', '.join(_SLOT)}")
    missing = [key for key in REQUIRED if record.get(key) is None]
    submit = [key for key in SUBMIT_COLUMNS if record.get(key) is not None]
    if missing or len(submit) != 1:
        given = ", ".join(sorted(key for key in keys if record[key] is not None)) or "none"
        raise RowError(f"keys: found {given}, expected {', '.join(REQUIRED)} and exactly one of submit_s, submit_time")
    parsed = list(_DEFAULTS)
    for key, value in record.items():
        if value is not None:
            parsed[_SLOT[key]] = values.JSON_PARSERS[key](value, key)
    return parsed, submit[0] == "submit_time"
