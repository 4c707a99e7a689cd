"""Shared plumbing for the readers: opening a file, numbering CSV rows, checking a header, wording bad rows.

Every problem is located (file, 1-based line) and worded as "column: found ..., expected ...". A row problem is
raised inside a reader as :class:`RowError` and turned into a :class:`BadRow` by :class:`Collector`, which also
raises :class:`TraceError` on the first one in strict mode.
"""

from __future__ import annotations

import csv
import gc
import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NoReturn

from stargate.traces.model import MAX_GPUS, BadRow, TraceError

_FOUND_MAX = 40
"""Found values longer than this many characters are shortened in messages."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_FIRST_SECOND = (datetime.min - _EPOCH_NAIVE).total_seconds()
_LAST_SECOND = (datetime.max - _EPOCH_NAIVE).total_seconds()


class RowError(Exception):
    """A problem with one row; the message already names the column, what was found and what was expected."""


def show(value: object) -> str:
    """A found value as it appears in a message: quoted, shortened when long."""
    try:
        text = repr(value)
    except RecursionError:  # a JSON value nested about as deep as the decoder allows
        return "a deeply nested value"
    return text if len(text) <= _FOUND_MAX else text[: _FOUND_MAX - 3] + "..."


def problem(column: str, found: object, expected: str) -> RowError:
    """The error for one column: ``column: found 'x', expected y``."""
    return RowError(f"{column}: found {show(found)}, expected {expected}")


class Collector:
    """Collects the bad rows and the skip/note counts of one read; raises on the first bad row when strict."""

    def __init__(self, file: str, *, strict: bool) -> None:
        """Start an empty account for ``file`` (the path as given)."""
        self.file = file
        self.strict = strict
        self.bad_rows: list[BadRow] = []
        self.skipped: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()

    def bad(self, line: int, message: str) -> None:
        """Record a malformed row (strict mode: raise :class:`TraceError` instead)."""
        bad_row = BadRow(self.file, line, message)
        if self.strict:
            raise TraceError(bad_row)
        self.bad_rows.append(bad_row)

    def fail(self, line: int, message: str) -> NoReturn:
        """Stop reading: the whole file is unusable (line 0: no particular line)."""
        raise TraceError(BadRow(self.file, line, message))


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a large acyclic structure (restored afterwards).

    Building a million small objects otherwise triggers many full collections that find nothing to free.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def open_text(path: Path, collector: Collector) -> IO[str]:
    """Open a UTF-8 text file (a leading byte-order mark is ignored), or fail with a located error."""
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as error:
        collector.fail(0, f"cannot read the file: {error.strerror or error}")


def first_undecodable_line(path: Path) -> int:
    """The 1-based number of the first line that is not valid UTF-8 (0 when none is found)."""
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def not_text(path: Path, collector: Collector) -> NoReturn:
    """Fail because the file is not UTF-8 text, naming the first offending line."""
    line = first_undecodable_line(path)
    collector.fail(line, "the file is not UTF-8 text (found bytes that do not decode), expected a UTF-8 CSV/JSONL file")


class CsvRows:
    """The rows of a CSV stream with their line numbers; blank lines are skipped silently.

    A row the csv module rejects (e.g. a field over its size limit) is a bad row; bytes that are not UTF-8 stop
    the read with a located error. Hot loops may iterate ``reader`` themselves and call :meth:`recover`.
    """

    def __init__(self, stream: IO[str], collector: Collector) -> None:
        """Read ``stream`` as CSV, accounting problems to ``collector``."""
        self.reader = csv.reader(stream)
        self.collector = collector
        self._error_line = -1

    def header(self) -> tuple[int, list[str] | None]:
        """The first non-blank row's line and stripped names (line 1 and None for an empty file)."""
        for line, row in self.numbered():
            return line, [name.strip() for name in row]
        return 1, None

    def numbered(self) -> Iterator[tuple[int, list[str]]]:
        """Yield ``(first line, fields)`` for each following non-blank row."""
        reader = self.reader
        while True:
            end = reader.line_num
            try:
                for row in reader:
                    line, end = end + 1, reader.line_num
                    if row:
                        yield line, row
                return
            except (csv.Error, UnicodeDecodeError) as error:
                if not self.recover(error):
                    return

    def recover(self, error: csv.Error | UnicodeDecodeError) -> bool:
        """Account for an error the reader raised; whether reading can go on (it moved past the problem)."""
        if isinstance(error, UnicodeDecodeError):
            not_text(Path(self.collector.file), self.collector)
        line = self.reader.line_num
        self.collector.bad(line, f"row: {error}, expected a well-formed CSV row")
        moved, self._error_line = line != self._error_line, line
        return moved


def header_index(
    line: int,
    header: list[str] | None,
    collector: Collector,
    *,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    allow_unknown: bool = True,
) -> dict[str, int]:
    """Map column names to positions; fail at the header's line on an empty file or a wrong set of columns."""
    expected = ", ".join(required)
    if header is None:
        collector.fail(line, f"the file is empty, expected a header line with the columns {expected}")
    missing = [name for name in required if name not in header]
    if missing:
        found = show(",".join(header))
        collector.fail(line, f"header: missing columns {', '.join(missing)} (found {found}), expected {expected}")
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        collector.fail(line, f"header: found duplicate columns {_listed(duplicates)}, expected each column once")
    if not allow_unknown:
        known = set(required) | set(optional)
        unknown = [name for name in header if name not in known]
        if unknown:
            allowed = ", ".join((*required, *optional))
            collector.fail(line, f"header: found unknown columns {_listed(unknown)}, expected only {allowed}")
    return {name: position for position, name in enumerate(header)}


def _listed(names: list[str], most: int = 8) -> str:
    """Names for a message, comma-separated; past ``most`` of them, the rest are counted."""
    shown = ", ".join(show(name) if not name.isidentifier() else name for name in names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def check_width(row: list[str], width: int) -> None:
    """Raise when a row has a different number of fields than the header."""
    if len(row) != width:
        raise RowError(f"row: found {len(row)} fields, expected {width} (one per header column)")


def number(text: str, column: str) -> float:
    """A finite number from a CSV field."""
    try:
        value = float(text)
    except ValueError:
        raise problem(column, text, "a number") from None
    if not math.isfinite(value):
        raise problem(column, text, "a finite number")
    return value


def non_negative(text: str, column: str) -> float:
    """A finite number >= 0 from a CSV field."""
    return signed(number(text, column), text, column, strictly=False)


def positive(text: str, column: str) -> float:
    """A finite number > 0 from a CSV field."""
    return signed(number(text, column), text, column, strictly=True)


def signed(value: float, raw: object, column: str, *, strictly: bool) -> float:
    """``value`` when it is > 0 (``strictly``) or >= 0; else a problem that shows the field as written."""
    if value < 0 or (strictly and value == 0):
        raise problem(column, raw, "a number > 0" if strictly else "a number >= 0")
    return value


def whole(text: str, column: str, low: int, high: int) -> int:
    """A whole number in ``[low, high]`` from a CSV field."""
    try:
        value = int(text)
    except ValueError:
        raise problem(column, text, f"a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise problem(column, text, f"a whole number from {low} to {high}")
    return value


def gpu_count(text: str, column: str) -> int:
    """A GPU count: a whole number from 1 to :data:`MAX_GPUS`."""
    return whole(text, column, 1, MAX_GPUS)


def text_field(text: str, column: str) -> str:
    """A non-empty string (surrounding spaces removed)."""
    value = text.strip()
    if not value:
        raise problem(column, text, "a non-empty value")
    return value


def name_list(text: str, column: str) -> tuple[str, ...]:
    """A ``|``-separated list of names (empty text: the empty list); empty items are an error."""
    if not text.strip():
        return ()
    items = tuple(item.strip() for item in text.split("|"))
    if not all(items):
        raise problem(column, text, "names separated by '|' with none empty")
    return items


def epoch_seconds(text: str, column: str) -> float:
    """Seconds since 1970-01-01 UTC for an ISO 8601 date-time; one without a time zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise problem(column, text, "an ISO 8601 date-time such as 2017-10-09 07:01:55") from None
    if moment.tzinfo is None:
        return (moment - _EPOCH_NAIVE).total_seconds()
    seconds = (moment - _EPOCH).total_seconds()
    if not _FIRST_SECOND <= seconds <= _LAST_SECOND:  # an offset can push year 1 or 9999 out of range in UTC
        raise problem(column, text, "a date-time from 0001-01-01 to 9999-12-31 in UTC")
    return seconds


def utc(seconds: float) -> datetime:
    """The UTC date-time of an epoch second count."""
    return datetime.fromtimestamp(seconds, tz=UTC)
