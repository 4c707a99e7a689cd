"""Job traces for the simulator: readers for Philly, Alibaba openb and our native format; resampling; writing.

Formats and their mapping to :class:`TraceJob` are documented in docs/reference/trace-formats.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stargate.traces.model import FORMATS, JOB_KINDS, MAX_GPUS, BadRow, Trace, TraceError, TraceJob
from stargate.traces.native import read_native as _read_native
from stargate.traces.openb import read_openb as _read_openb
from stargate.traces.philly import read_philly as _read_philly
from stargate.traces.resample import resample
from stargate.traces.writer import write_native

__all__ = [
    "FORMATS",
    "JOB_KINDS",
    "MAX_GPUS",
    "BadRow",
    "Trace",
    "TraceError",
    "TraceJob",
    "read_trace",
    "resample",
    "write_native",
]

_READERS: dict[str, Callable[..., Trace]] = {
    "philly": _read_philly,
    "alibaba-openb": _read_openb,
    "native": _read_native,
}


def read_trace(path: Path, fmt: str, *, strict: bool = False) -> Trace:
    """Read the trace at ``path`` in format ``fmt`` (one of :data:`FORMATS`).

    Malformed rows are collected in ``Trace.bad_rows`` (strict: :class:`TraceError` on the first); an unreadable
    file, a wrong header or an unknown format raise :class:`TraceError`. No other exception escapes for bad input.
    """
    reader = _READERS.get(fmt)
    if reader is None:
        raise TraceError(BadRow(str(path), 0, f"trace format: found {fmt!r}, expected one of {', '.join(FORMATS)}"))
    return reader(Path(path), strict=strict)
