"""Writing a trace in the native format (CSV or JSONL by suffix), all at once or not at all."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from stargate.traces.model import Trace, TraceJob
from stargate.traces.native import FIELDS, SUFFIXES

_DEFAULTS: dict[str, Any] = {
    "gpu_models": [],
    "priority_class": None,
    "preemptible": True,
    "checkpoint_interval_s": None,
    "allowed_providers": [],
    "allowed_regions": [],
    "kind": "batch",
    "estimated_duration_s": None,
    "user": None,
    "name": None,
}
"""Optional keys and their defaults: :func:`write_native` leaves a JSONL key out when it has its default."""


def write_native(trace: Trace, path: Path) -> None:
    """Write the trace's jobs as native CSV or JSONL (by suffix); reading the file back gives equal jobs.

    The file is written beside ``path`` under a temporary name and renamed over it when complete, so a failed
    write leaves no partial file. Times are written as ``submit_s``; floats in their shortest exact form. The jobs
    must keep :class:`TraceJob`'s invariants (as read jobs do): names without surrounding spaces or ``|``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: found suffix {suffix or '(none)'!r}, expected .csv or .jsonl")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the directory {path.parent} does not exist")
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
    """One header line, then one row per job (None as an empty field, lists joined with '|')."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(FIELDS)
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
            job.user,
            job.name,
        )
        for job in jobs
    )


def _write_jsonl(jobs: Iterable[TraceJob], stream: IO[str]) -> None:
    """One JSON object per line; optional keys only when they differ from the default."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    stream.writelines(encode(_record(job)) + "\n" for job in jobs)


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
        "user": job.user,
        "name": job.name,
    }
    for key, value in optional.items():
        if value != _DEFAULTS[key]:
            record[key] = value
    return record
