"""Request traces for the service simulator: when each inference request arrives and how many tokens it carries.

Two formats (docs/reference/trace-formats.md, "Request traces"):

- ``azure-llm``: the Azure LLM inference trace (``TIMESTAMP,ContextTokens,GeneratedTokens``; time stamps such as
  ``2023-11-16 18:15:46.6805900``, seven fractional digits, no time zone: taken as UTC). Azure Public Dataset,
  CC-BY-4.0; Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024.
- ``native``: CSV with a header ``arrival_s,prompt_tokens,output_tokens`` and an optional ``service`` column
  naming the service a request is for (empty or absent: the first service of the services file).

A reader returns a :class:`RequestTrace` of columnar NumPy arrays sorted by arrival (ties keep file order), arrivals
counted from the first request. Malformed rows are kept aside with their file, line and column (strict mode: the
first one raises :class:`~stargate.traces.model.TraceError`), as the job trace readers do.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from stargate.traces._rows import (
    Collector,
    CsvRows,
    RowError,
    check_width,
    epoch_seconds,
    header_index,
    open_text,
    problem,
    utc,
    whole,
)
from stargate.traces.model import BadRow, TraceError

REQUEST_FORMATS: tuple[str, ...] = ("azure-llm", "native")
"""The request trace formats :func:`read_requests` understands."""

MAX_TOKENS = 10_000_000
"""The most prompt or output tokens one request may carry."""

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
NATIVE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
NATIVE_OPTIONAL = ("service",)

_EPOCH_NAIVE = datetime(1970, 1, 1)
_AZURE_STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,9})?\Z")
"""A time stamp as the Azure trace writes it (the fast path; any other goes through the full checks)."""
_INF = math.inf
_F64 = np.dtype[np.float64]
_I64 = np.dtype[np.int64]


@dataclass(slots=True)
class RequestTrace:
    """Requests as columns, sorted by arrival: ``arrival_s`` (s from the first request), ``prompt_tokens`` and
    ``output_tokens`` (≥ 1), and ``service`` (an index into ``services``; -1: the first service of the run)."""

    arrival_s: np.ndarray[Any, _F64]
    prompt_tokens: np.ndarray[Any, _I64]
    output_tokens: np.ndarray[Any, _I64]
    service: np.ndarray[Any, np.dtype[np.int32]]
    services: list[str]
    """The service names the trace gives, in first-seen order."""
    service_lines: list[int]
    """The line each name was first seen on (for a located error when the services file lacks it)."""
    start: datetime | None
    """The absolute time of the first request (UTC) when the format says it."""
    bad_rows: list[BadRow]
    source: str
    skipped: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        """The number of requests."""
        return int(self.arrival_s.shape[0])


def read_requests(path: Path, fmt: str, *, strict: bool = False) -> RequestTrace:
    """Read the request trace at ``path`` in format ``fmt`` (one of :data:`REQUEST_FORMATS`).

    An unreadable file, a wrong header or an unknown format raise :class:`TraceError`; malformed rows are listed in
    ``bad_rows`` (strict: :class:`TraceError` on the first). No other exception escapes for bad input.
    """
    collector = Collector(str(path), strict=strict)
    if fmt not in REQUEST_FORMATS:
        collector.fail(0, f"request format: found {fmt!r}, expected one of {', '.join(REQUEST_FORMATS)}")
    with open_text(Path(path), collector) as stream:
        rows = _Rows()
        if fmt == "azure-llm":
            _read_azure(stream, collector, rows)
        else:
            _read_native(stream, collector, rows)
    return rows.trace(collector, timed=fmt == "azure-llm")


class _Rows:
    """The parsed columns, as Python lists while reading."""

    def __init__(self) -> None:
        self.arrival: list[float] = []
        self.prompt: list[int] = []
        self.output: list[int] = []
        self.service: list[int] = []
        self.names: dict[str, int] = {}
        self.lines: list[int] = []

    def service_of(self, name: str, line: int) -> int:
        """The index of service ``name`` (-1 for none), new names numbered in first-seen order."""
        if not name:
            return -1
        got = self.names.get(name)
        if got is None:
            got = self.names[name] = len(self.names)
            self.lines.append(line)
        return got

    def trace(self, collector: Collector, *, timed: bool) -> RequestTrace:
        """The columns sorted by arrival (stable), counted from the first request."""
        arrival = np.array(self.arrival, dtype=np.float64)
        order = np.argsort(arrival, kind="stable")
        first = float(arrival[order[0]]) if len(arrival) else 0.0
        return RequestTrace(
            arrival_s=arrival[order] - first,
            prompt_tokens=np.array(self.prompt, dtype=np.int64)[order],
            output_tokens=np.array(self.output, dtype=np.int64)[order],
            service=np.array(self.service, dtype=np.int32)[order],
            services=list(self.names),
            service_lines=self.lines,
            start=utc(first) if timed and len(arrival) else None,
            bad_rows=collector.bad_rows,
            source=collector.file,
            skipped=collector.skipped,
        )


def _tokens(text: str, column: str, low: int) -> int:
    return whole(text.strip(), column, low, MAX_TOKENS)


# --- Azure LLM inference trace ----------------------------------------------------------------------------------


def _read_azure(stream: IO[str], collector: Collector, rows: _Rows) -> None:
    """Check the header, then read every row: a fast path for well-formed rows, full checks for the others."""
    source = CsvRows(stream, collector)
    line, header = source.header()
    index = header_index(line, header, collector, required=AZURE_COLUMNS)
    width = len(index)
    i_time, i_prompt, i_output = (index[name] for name in AZURE_COLUMNS)
    days: dict[str, float] = {}
    match = _AZURE_STAMP.match
    arrival, prompt, output, service = rows.arrival, rows.prompt, rows.output, rows.service
    for line, row in source.numbered():
        try:
            stamp = row[i_time]
            m = match(stamp)
            day = days.get(stamp[:10]) if m is not None else None
            if m is not None and day is None:
                day = days.setdefault(stamp[:10], (datetime.fromisoformat(stamp[:10]) - _EPOCH_NAIVE).total_seconds())
            hour, minute, second = int(stamp[11:13]), int(stamp[14:16]), float(stamp[17:])
            p, o = int(row[i_prompt]), int(row[i_output])
            ok = m is not None and len(row) == width and hour < 24 and minute < 60 and second < 60
            ok = ok and 0 <= p <= MAX_TOKENS and 1 <= o <= MAX_TOKENS
            seconds = (day or 0.0) + hour * 3600 + minute * 60 + second
        except (ValueError, IndexError):
            ok = False
        if not ok:
            try:
                seconds, p, o = _azure_checked(row, width, i_time, i_prompt, i_output)
            except RowError as error:
                collector.bad(line, str(error))
                continue
        arrival.append(seconds)
        prompt.append(p)
        output.append(o)
        service.append(-1)


def _azure_checked(row: list[str], width: int, i_time: int, i_prompt: int, i_output: int) -> tuple[float, int, int]:
    """Parse one row with every check; :class:`RowError` naming the first bad column."""
    check_width(row, width)
    seconds = epoch_seconds(row[i_time], "TIMESTAMP")
    return seconds, _tokens(row[i_prompt], "ContextTokens", 0), _tokens(row[i_output], "GeneratedTokens", 1)


# --- native -----------------------------------------------------------------------------------------------------


def _read_native(stream: IO[str], collector: Collector, rows: _Rows) -> None:
    """Check the header (the three columns, optionally ``service``, nothing else), then read every row."""
    source = CsvRows(stream, collector)
    line, header = source.header()
    index = header_index(
        line, header, collector, required=NATIVE_COLUMNS, optional=NATIVE_OPTIONAL, allow_unknown=False
    )
    width = len(index)
    i_arrival, i_prompt, i_output = (index[name] for name in NATIVE_COLUMNS)
    i_service = index.get("service")
    arrival, prompt, output, service = rows.arrival, rows.prompt, rows.output, rows.service
    inf = _INF
    for line, row in source.numbered():
        try:
            a, p, o = float(row[i_arrival]), int(row[i_prompt]), int(row[i_output])
            ok = len(row) == width and 0 <= a < inf and 0 <= p <= MAX_TOKENS and 1 <= o <= MAX_TOKENS
        except (ValueError, IndexError):
            ok = False
        if not ok:
            try:
                a, p, o = _native_checked(row, width, i_arrival, i_prompt, i_output)
            except RowError as error:
                collector.bad(line, str(error))
                continue
        name = row[i_service].strip() if i_service is not None else ""
        arrival.append(a)
        prompt.append(p)
        output.append(o)
        service.append(rows.service_of(name, line) if name else -1)


def _native_checked(row: list[str], width: int, i_arrival: int, i_prompt: int, i_output: int) -> tuple[float, int, int]:
    """Parse one row with every check; :class:`RowError` naming the first bad column."""
    check_width(row, width)
    text = row[i_arrival]
    try:
        arrival = float(text)
    except ValueError:
        raise problem("arrival_s", text, "a number of seconds >= 0") from None
    if not 0 <= arrival < _INF:
        raise problem("arrival_s", text, "a finite number of seconds >= 0")
    return arrival, _tokens(row[i_prompt], "prompt_tokens", 0), _tokens(row[i_output], "output_tokens", 1)


__all__ = ["MAX_TOKENS", "REQUEST_FORMATS", "RequestTrace", "TraceError", "read_requests"]
