"""Reader for the Alibaba 2023 GPU cluster trace ("openb") pod list.

Columns are read by name (their order may differ between files). See docs/reference/trace-formats.md for the
mapping to :class:`TraceJob`, and what is skipped or bad.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from stargate.traces._rows import (
    Collector,
    CsvRows,
    RowError,
    check_width,
    header_index,
    name_list,
    non_negative,
    number,
    open_text,
    paused_gc,
    problem,
    text_field,
    whole,
)
from stargate.traces.model import MAX_GPUS, Trace, TraceJob

REQUIRED = (
    "name",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "creation_time",
    "scheduled_time",
    "deletion_time",
)
"""Columns the reader uses; ``cpu_milli``, ``memory_mib``, ``pod_phase`` and any other column are ignored."""

QOS_CLASSES: dict[str, tuple[str, str, bool]] = {
    "LS": ("openb-ls", "high", False),
    "Guaranteed": ("openb-guaranteed", "normal", False),
    "Burstable": ("openb-burstable", "normal", False),
    "BE": ("openb-be", "low", True),
}
"""qos → (queue, priority class, preemptible)."""

_WHOLE_GPU_MILLI = 1000


def read_openb(path: Path, *, strict: bool = False) -> Trace:
    """Read an openb pod list; ``submit_s`` is ``creation_time`` (already counted from the trace start)."""
    collector = Collector(str(path), strict=strict)
    with paused_gc(), open_text(path, collector) as stream:
        jobs = _parse(stream, collector)
        jobs.sort(key=_submit)
    return Trace(
        jobs=jobs,
        start=None,
        skipped=collector.skipped,
        bad_rows=collector.bad_rows,
        source=str(path),
        notes=collector.notes,
    )


def _parse(stream: IO[str], collector: Collector) -> list[TraceJob]:
    """Parse every row into a job, a skip reason or a bad row."""
    source = CsvRows(stream, collector)
    line, header = source.header()
    index = header_index(line, header, collector, required=REQUIRED)
    columns = tuple(index[name] for name in REQUIRED)
    width = len(index)
    seen: set[str] = set()
    jobs: list[TraceJob] = []
    for line, row in source.numbered():
        try:
            check_width(row, width)
            name, outcome, shared = _row(tuple(row[i] for i in columns), seen)
        except RowError as error:
            collector.bad(line, str(error))
            continue
        seen.add(name)
        if isinstance(outcome, str):
            collector.skipped[outcome] += 1
            continue
        jobs.append(outcome)
        if shared:
            collector.notes["shared_gpu_counted_whole"] += 1
    return jobs


def _row(fields: tuple[str, ...], seen: set[str]) -> tuple[str, TraceJob | str, bool]:
    """One pod: (name, its job or the reason it is skipped, whether it asked for a share of one GPU)."""
    name_text, gpus_text, milli_text, spec_text, qos_text, created_text, scheduled_text, deleted_text = fields
    name = text_field(name_text, "name")
    if name in seen:
        raise problem("name", name_text, "a pod name not used by an earlier row")
    gpus = whole(gpus_text, "num_gpu", 0, MAX_GPUS)
    if gpus == 0:
        return name, "cpu_only", False
    milli = whole(milli_text, "gpu_milli", 1, _WHOLE_GPU_MILLI)
    if milli < _WHOLE_GPU_MILLI and gpus != 1:
        raise problem("gpu_milli", milli_text, "1000 when num_gpu is above 1 (only a single GPU can be shared)")
    models = name_list(spec_text, "gpu_spec")
    queue_class = QOS_CLASSES.get(qos_text.strip())
    if queue_class is None:
        raise problem("qos", qos_text, "one of LS, Guaranteed, Burstable, BE")
    created = non_negative(created_text, "creation_time")
    if not scheduled_text.strip():
        return name, "never_scheduled", False
    scheduled = non_negative(scheduled_text, "scheduled_time")
    if scheduled < created:
        raise problem("scheduled_time", scheduled_text, f"a time >= creation_time ({created_text.strip()})")
    if not deleted_text.strip():
        return name, "still_running", False
    run = number(deleted_text, "deletion_time") - scheduled
    if run < 0:
        raise problem("deletion_time", deleted_text, f"a time >= scheduled_time ({scheduled_text.strip()})")
    if run == 0:
        return name, "zero_duration", False
    queue, priority_class, preemptible = queue_class
    job = TraceJob(
        id=name,
        submit_s=created,
        duration_s=run,
        gpus=gpus,
        queue=queue,
        gpu_models=models,
        priority_class=priority_class,
        preemptible=preemptible,
        kind="train" if gpus > 1 else "batch",
    )
    return name, job, milli < _WHOLE_GPU_MILLI


def _submit(job: TraceJob) -> float:
    """Sort key: submission time (the sort is stable, so ties keep file order)."""
    return job.submit_s
