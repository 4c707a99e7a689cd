"""Read a provider's FOCUS 1.0 bill (CSV) into rows for reconciliation; any bad cell is an error naming where.

Accepted: a header of FOCUS 1.0 column names and ``x_`` columns (any other name is an error), holding at least
``ResourceId``, ``ChargePeriodStart``, ``ChargePeriodEnd``, ``BilledCost`` and ``BillingCurrency``. Every row's
BillingCurrency must be ``USD``; costs are finite decimals; instants are ISO 8601 in UTC (``...Z`` or ``+00:00``).
The first problem raises :class:`BillError` (file, line, column, what was found, what was expected) and nothing is
returned. The reconciliation key of a row is its ``x_RunId`` when the bill has that column and the row a value,
else its ``ResourceId``, with the UTC day of ``ChargePeriodStart``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from stargate.costs.columns import CURRENCY, FOCUS_COLUMNS

REQUIRED_COLUMNS: tuple[str, ...] = (
    "ResourceId",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "BilledCost",
    "BillingCurrency",
)
"""The columns a bill must have to be reconciled."""

_KNOWN = frozenset(FOCUS_COLUMNS)

MAX_BILLED_USD = Decimal(10) ** 14
"""The largest amount one bill line may carry, USD (the ledger's own bound on an amount)."""


class BillError(ValueError):
    """A bill that cannot be read: ``path``, ``line`` (1-based, the header is line 1) and ``column`` say where."""

    def __init__(self, path: str, line: int, column: str | None, message: str) -> None:
        where = f"{path}:{line}" + (f": column {column}" if column else "")
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class BillRow:
    """One charge of a bill: its key (``run_id``, ``day``), charge period, billed amount (USD) and where it was."""

    line: int
    run_id: str
    resource_id: str
    day: date
    start: datetime
    end: datetime
    billed_cost: Decimal
    provider: str | None
    charge_category: str | None
    billing_period_start: datetime | None
    billing_period_end: datetime | None


def _instant(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if t.tzinfo is None or t.utcoffset() != timedelta(0):
        return None
    return t.astimezone(UTC)


def _records(reader: Iterator[list[str]], path: str) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields) for each record, with CSV syntax errors located."""
    line = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise BillError(path, line + 1, None, f"not valid CSV ({err})") from None
        start = line + 1
        line = reader.line_num  # type: ignore[attr-defined]
        yield start, fields


def read_bill(source: str | os.PathLike[str] | TextIO, *, name: str | None = None) -> list[BillRow]:
    """The rows of a FOCUS bill read from a path or an open text stream (``name`` labels a stream in errors)."""
    if isinstance(source, str | os.PathLike):
        path = name or str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise BillError(path, 0, None, f"cannot read the file ({err.strerror})") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            raise BillError(path, line, None, f"not UTF-8 text (byte {data[err.start]:#04x})") from None
        return _parse(io.StringIO(text, newline=""), path)
    return _parse(source, name or getattr(source, "name", None) or "<bill>")


def _parse(stream: TextIO, path: str) -> list[BillRow]:
    reader = csv.reader(stream, strict=True)
    records = _records(reader, path)
    first = next(records, None)
    if first is None:
        raise BillError(path, 1, None, "empty file, expected a header of FOCUS 1.0 column names")
    header = [h.strip() for h in first[1]]
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise BillError(path, 1, h, "found the column twice, expected each column once")
        seen.add(h)
        if h not in _KNOWN and not h.startswith("x_"):
            raise BillError(path, 1, h, "unknown column, expected a FOCUS 1.0 column name or an x_ column")
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        raise BillError(path, 1, missing[0], f"missing required column(s) {', '.join(missing)}")
    col = {h: i for i, h in enumerate(header)}
    opt = {
        c: col.get(c) for c in ("x_RunId", "ProviderName", "ChargeCategory", "BillingPeriodStart", "BillingPeriodEnd")
    }
    out: list[BillRow] = []
    for line, fields in records:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line
        if len(fields) != len(header):
            raise BillError(path, line, None, f"found {len(fields)} fields, expected {len(header)} (the header's)")

        def cell(name: str, fields: list[str] = fields) -> str:
            return fields[col[name]].strip()

        def instant(name: str, line: int = line) -> datetime:
            text = cell(name)
            t = _instant(text)
            if t is None:
                raise BillError(
                    path, line, name, f"found {text!r}, expected an ISO 8601 UTC instant (2027-01-01T00:00:00Z)"
                )
            return t

        currency = cell("BillingCurrency")
        if currency != CURRENCY:
            raise BillError(path, line, "BillingCurrency", f"found {currency!r}, expected {CURRENCY!r}")
        text = cell("BilledCost")
        try:
            cost = Decimal(text)
        except InvalidOperation:
            cost = Decimal("NaN")
        if not cost.is_finite() or abs(cost) > MAX_BILLED_USD:
            raise BillError(
                path, line, "BilledCost", f"found {text!r}, expected a decimal amount in USD, at most 10^14 in size"
            )
        start, end = instant("ChargePeriodStart"), instant("ChargePeriodEnd")
        if end < start:
            raise BillError(
                path, line, "ChargePeriodEnd", f"found {cell('ChargePeriodEnd')!r}, expected >= ChargePeriodStart"
            )
        periods = [
            instant(c) if opt[c] is not None and cell(c) else None for c in ("BillingPeriodStart", "BillingPeriodEnd")
        ]
        resource = cell("ResourceId")
        run = cell("x_RunId") if opt["x_RunId"] is not None else ""
        out.append(
            BillRow(
                line=line,
                run_id=run or resource,
                resource_id=resource,
                day=start.date(),
                start=start,
                end=end,
                billed_cost=cost,
                provider=(cell("ProviderName") or None) if opt["ProviderName"] is not None else None,
                charge_category=(cell("ChargeCategory") or None) if opt["ChargeCategory"] is not None else None,
                billing_period_start=periods[0],
                billing_period_end=periods[1],
            )
        )
    return out
