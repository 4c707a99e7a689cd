"""Reconcile the ledger with a provider's bill: every charge in one and not the other, and every amount that differs.

Key: ``(run id, UTC day)``. A ledger line item's key is its run id and day; a bill row's is its ``x_RunId`` (when
the bill has that column and the row a value) else its ``ResourceId``, and the UTC day of its ``ChargePeriodStart``
(Stargate's own export writes the run id to both, so it reconciles with itself). Amounts under one key are summed
on both sides (a bill may have hourly rows). Only ledger items of the bill's providers (its ``ProviderName``
values; every provider when it has none) and inside the bill's period are compared. A key is

- **missing**: in the ledger, not in the bill;
- **extra**: in the bill, not in the ledger;
- **amount_off**: in both, and ``|bill − ledger| > tolerance`` (0.01 USD unless told otherwise).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from stargate.costs.bill import BillRow
from stargate.engine.ledger import Ledger, day_of

TOLERANCE = Decimal("0.01")
_EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Difference:
    """One key on which the ledger and the bill disagree; ``bill_lines`` are the bill's lines under the key."""

    kind: str  # "missing" | "extra" | "amount_off"
    run_id: str
    day: date
    ledger_usd: Decimal | None
    bill_usd: Decimal | None
    bill_lines: tuple[int, ...] = ()

    @property
    def difference_usd(self) -> Decimal:
        """Bill minus ledger, USD (a side without the key counts 0)."""
        return (self.bill_usd or Decimal(0)) - (self.ledger_usd or Decimal(0))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (amounts as decimal strings)."""
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "day": self.day.isoformat(),
            "ledger_usd": None if self.ledger_usd is None else str(self.ledger_usd),
            "bill_usd": None if self.bill_usd is None else str(self.bill_usd),
            "difference_usd": str(self.difference_usd),
            "bill_lines": list(self.bill_lines),
        }


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of :func:`reconcile`: the compared scope, totals, matches and every difference."""

    period_start: date | None
    period_end: date | None  # exclusive
    providers: tuple[str, ...]  # empty: every provider
    tolerance: Decimal
    matched: int
    ledger_total: Decimal
    bill_total: Decimal
    missing: list[Difference] = field(default_factory=list)
    extra: list[Difference] = field(default_factory=list)
    amount_off: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No difference at all."""
        return not (self.missing or self.extra or self.amount_off)

    @property
    def differences(self) -> list[Difference]:
        """Every difference, by day then run id."""
        return sorted(self.missing + self.extra + self.amount_off, key=lambda d: (d.day, d.run_id, d.kind))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary and differences (amounts as decimal strings)."""
        return {
            "period_start": None if self.period_start is None else self.period_start.isoformat(),
            "period_end": None if self.period_end is None else self.period_end.isoformat(),
            "providers": list(self.providers),
            "tolerance_usd": str(self.tolerance),
            "matched": self.matched,
            "ledger_total_usd": str(self.ledger_total),
            "bill_total_usd": str(self.bill_total),
            "missing": len(self.missing),
            "extra": len(self.extra),
            "amount_off": len(self.amount_off),
            "ok": self.ok,
            "differences": [d.as_dict() for d in self.differences],
        }

    def to_text(self) -> str:
        """A human-readable report: scope, totals, counts, then one line per difference."""
        scope = "all days" if self.period_start is None else f"{self.period_start} to {self.period_end} (exclusive)"
        lines = [
            f"Reconciliation for {', '.join(self.providers) or 'every provider'}, {scope}",
            f"  ledger {self.ledger_total} USD, bill {self.bill_total} USD, "
            f"difference {self.bill_total - self.ledger_total} USD",
            f"  {self.matched} matched (within {self.tolerance} USD), {len(self.missing)} missing from the bill, "
            f"{len(self.extra)} extra in the bill, {len(self.amount_off)} amount off",
        ]
        for d in self.differences:
            ledger = "-" if d.ledger_usd is None else f"{d.ledger_usd} USD"
            bill = "-" if d.bill_usd is None else f"{d.bill_usd} USD"
            where = f" (bill line {', '.join(map(str, d.bill_lines))})" if d.bill_lines else ""
            lines.append(f"  {d.kind:<10} {d.day} {d.run_id}: ledger {ledger}, bill {bill}{where}")
        return "\n".join(lines)


def _day_after(t: datetime) -> date:
    """The first midnight at or after ``t``, as a day."""
    return t.date() if t.time() == time(0) else t.date() + timedelta(days=1)


def _period(bill: Sequence[BillRow]) -> tuple[date | None, date | None]:
    """[start, end) days a bill covers: its billing period, else the span of its charge periods."""
    starts = [r.billing_period_start for r in bill if r.billing_period_start is not None]
    ends = [r.billing_period_end for r in bill if r.billing_period_end is not None]
    if starts and ends:
        return min(starts).date(), max(_day_after(t) for t in ends)
    if not bill:
        return None, None
    return min(r.day for r in bill), max(max(_day_after(r.end), r.day + timedelta(days=1)) for r in bill)


def reconcile(
    ledger: Ledger,
    bill: Sequence[BillRow],
    *,
    providers: Collection[str] | None = None,
    period: tuple[date, date] | None = None,
    tolerance: Decimal = TOLERANCE,
) -> Reconciliation:
    """Compare the ledger with ``bill`` (from :func:`read_bill`) key by key; see the module docstring.

    ``providers``: whose ledger items to compare (None: the bill's ProviderName values, or all if it has none);
    ``period``: [start, end) days of ledger items to compare (None: the bill's billing period, else the span of
    its charge periods; all days for an empty bill).
    """
    if providers is None:
        providers = {r.provider for r in bill if r.provider}
    wanted = frozenset(providers)
    start, end = period if period is not None else _period(bill)
    lo = None if start is None else (start - _EPOCH_DAY).days
    hi = None if end is None else (end - _EPOCH_DAY).days
    mine: dict[tuple[str, int], int] = {}
    for run, day, _s, _e, _gh, cost, _lc in ledger.raw_items():
        if (wanted and run.provider not in wanted) or (lo is not None and day < lo) or (hi is not None and day >= hi):
            continue
        key = (run.run_id, day)
        mine[key] = mine.get(key, 0) + cost
    theirs: dict[tuple[str, int], Decimal] = {}
    lines: dict[tuple[str, int], list[int]] = {}
    for row in bill:
        key = (row.run_id, (row.day - _EPOCH_DAY).days)
        theirs[key] = theirs.get(key, Decimal(0)) + row.billed_cost
        lines.setdefault(key, []).append(row.line)
    missing, extra, off = [], [], []
    matched = 0
    for key, micro in mine.items():
        ours = Decimal(micro).scaleb(-6)
        if key not in theirs:
            missing.append(Difference("missing", key[0], day_of(key[1]), ours, None))
        elif abs(theirs[key] - ours) > tolerance:
            off.append(Difference("amount_off", key[0], day_of(key[1]), ours, theirs[key], tuple(lines[key])))
        else:
            matched += 1
    for key, amount in theirs.items():
        if key not in mine:
            extra.append(Difference("extra", key[0], day_of(key[1]), None, amount, tuple(lines[key])))
    order = lambda d: (d.day, d.run_id)  # noqa: E731
    return Reconciliation(
        period_start=start,
        period_end=end,
        providers=tuple(sorted(wanted)),
        tolerance=tolerance,
        matched=matched,
        ledger_total=Decimal(sum(mine.values())).scaleb(-6),
        bill_total=sum(theirs.values(), Decimal(0)),
        missing=sorted(missing, key=order),
        extra=sorted(extra, key=order),
        amount_off=sorted(off, key=order),
    )
