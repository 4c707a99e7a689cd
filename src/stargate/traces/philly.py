"""Reader for the Microsoft Philly per-job summary (``timestamp,duration,num_gpus,gpu_time,cluster``).

Microsoft Philly traces, CC-BY-4.0. See docs/reference/trace-formats.md for the mapping to :class:`TraceJob`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import IO

from stargate.traces._rows import (
    Collector,
    CsvRows,
    RowError,
    check_width,
    epoch_seconds,
    gpu_count,
    header_index,
    non_negative,
    open_text,
    paused_gc,
    text_field,
    utc,
)
from stargate.traces.model import MAX_GPUS, Trace, TraceJob, build_job

REQUIRED = ("timestamp", "duration", "num_gpus", "cluster")
"""Columns the reader uses; ``gpu_time`` (= duration × num_gpus) and any other column is ignored."""

_INF = float("inf")
_EPOCH_NAIVE = datetime(1970, 1, 1)

_Parsed = tuple[float, float, int, str]
"""A parsed row: (submit epoch s, duration s, GPUs, cluster)."""

_Row = tuple[float, float, int, str, int]
"""A parsed row: (submit epoch s, duration s, GPUs, cluster, data row number)."""


def read_philly(path: Path, *, strict: bool = False) -> Trace:
    """Read a Philly summary CSV; ``submit_s`` counts from the earliest valid timestamp (taken as UTC)."""
    collector = Collector(str(path), strict=strict)
    with paused_gc(), open_text(path, collector) as stream:
        rows = _parse(stream, collector)
        start = min((row[0] for row in rows), default=None)
        jobs = _jobs(rows, start) if start is not None else []
        jobs.sort(key=_submit)
    return Trace(
        jobs=jobs,
        start=utc(start) if start is not None else None,
        skipped=collector.skipped,
        bad_rows=collector.bad_rows,
        source=str(path),
        notes=collector.notes,
    )


def _parse(stream: IO[str], collector: Collector) -> list[_Row]:
    """Parse every data row; bad rows and zero-second jobs are accounted for in ``collector``.

    A well-formed row takes the fast path inlined here; any other goes through :func:`_checked`, which words the
    first problem. The file is not sorted: ids keep the data row number.
    """
    source = CsvRows(stream, collector)
    line, header = source.header()
    index = header_index(line, header, collector, required=REQUIRED)
    width = len(index)
    i_time, i_duration, i_gpus, i_cluster = (index[name] for name in REQUIRED)
    parse_time, epoch, inf = datetime.fromisoformat, _EPOCH_NAIVE, _INF
    rows: list[_Row] = []
    data_row = 0
    for line, row in source.numbered():
        data_row += 1
        try:
            moment = parse_time(row[i_time])
            duration = float(row[i_duration])
            gpus = int(row[i_gpus])
            cluster = row[i_cluster]
            plain = len(row) == width and moment.tzinfo is None and 0 < duration < inf and 1 <= gpus <= MAX_GPUS
        except (ValueError, IndexError):
            plain = False
        if plain and cluster and not cluster.isspace() and cluster == cluster.strip():
            rows.append(((moment - epoch).total_seconds(), duration, gpus, cluster, data_row))
            continue
        try:
            parsed = _checked(row, width, i_time, i_duration, i_gpus, i_cluster)
        except RowError as error:
            collector.bad(line, str(error))
            continue
        if parsed[1] == 0:
            collector.skipped["zero_duration"] += 1
            continue
        rows.append((*parsed, data_row))
    return rows


def _checked(row: list[str], width: int, i_time: int, i_duration: int, i_gpus: int, i_cluster: int) -> _Parsed:
    """Parse a row with full checks, raising :class:`RowError` with a located message on the first problem."""
    check_width(row, width)
    submit = epoch_seconds(row[i_time], "timestamp")
    duration = non_negative(row[i_duration], "duration")
    gpus = gpu_count(row[i_gpus], "num_gpus")
    cluster = text_field(row[i_cluster], "cluster")
    return submit, duration, gpus, cluster


def _jobs(rows: list[_Row], start: float) -> list[TraceJob]:
    """The jobs of the parsed rows, ``submit_s`` counted from ``start``."""
    queues: dict[str, str] = {}
    jobs = []
    for submit, duration, gpus, cluster, data_row in rows:
        queue = queues.get(cluster) or queues.setdefault(cluster, f"vc-{cluster}")
        kind = "train" if gpus > 1 else "batch"
        job_id = f"philly-{data_row:06d}"
        jobs.append(build_job(job_id, submit - start, duration, gpus, queue, (), None, True, None, (), (), kind, None))
    return jobs


def _submit(job: TraceJob) -> float:
    """Sort key: submission time (the sort is stable, so ties keep file order)."""
    return job.submit_s
