"""FOCUS 1.0 export of the ledger, and (re-exported here) the bill reader and the reconciliation.

``write_focus`` streams one CSV row per ledger line item (one run on one UTC day) with the 43 FOCUS 1.0 columns
and Stargate's ``x_`` columns; see docs/reference/costs.md for how each column is filled. Rows are formatted from
the ledger's integer line items (:meth:`Ledger.raw_items`) and written in chunks, so memory does not grow with the
number of rows::

    with open("costs.csv", "w", newline="", encoding="utf-8") as out:
        write_focus(ledger, out, billing_account="stargate")
    bill = read_bill("coreweave-2027-01.csv")
    print(reconcile(ledger, bill).to_text())
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import TextIO

from stargate.costs.bill import BillError, BillRow, read_bill
from stargate.costs.columns import CURRENCY, EXPORT_COLUMNS, UNIT, csv_field, usd
from stargate.costs.reconcile import Difference, Reconciliation, reconcile
from stargate.engine.ledger import Ledger, RunCharge, day_of

__all__ = [
    "BillError",
    "BillRow",
    "Difference",
    "Reconciliation",
    "read_bill",
    "reconcile",
    "write_focus",
]

_DAY_US = 86_400_000_000
_CHUNK = 4096
RESOURCE_TYPE = "GPU job run"
SERVICE_CATEGORY = "AI and Machine Learning"


def _iso_day(d: date) -> str:
    return f"{d.isoformat()}T00:00:00Z"


class _Days:
    """Per-day text, formatted once per UTC day: billing period (the calendar month) and charge period (the day)."""

    def __init__(self) -> None:
        self._periods: dict[int, tuple[str, str]] = {}
        self._dates: dict[int, str] = {}

    def periods(self, day: int) -> tuple[str, str]:
        """``BillingPeriodEnd,BillingPeriodStart`` and ``ChargePeriodEnd,ChargePeriodStart`` of ``day``."""
        got = self._periods.get(day)
        if got is None:
            d = day_of(day)
            month = d.replace(day=1)
            nxt = date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)
            got = self._periods[day] = (
                f"{_iso_day(nxt)},{_iso_day(month)}",
                f"{_iso_day(day_of(day + 1))},{_iso_day(d)}",
            )
        return got

    def instant(self, us: int) -> str:
        """µs since the Unix epoch as ISO 8601 UTC (``2027-01-01T22:00:00.250000Z``; no fraction when whole)."""
        day, tod = divmod(us, _DAY_US)
        prefix = self._dates.get(day)
        if prefix is None:
            prefix = self._dates[day] = day_of(day).isoformat()
        sec, frac = divmod(tod, 1_000_000)
        h, rem = divmod(sec, 3600)
        m, s = divmod(rem, 60)
        if frac:
            return f"{prefix}T{h:02d}:{m:02d}:{s:02d}.{frac:06d}Z"
        return f"{prefix}T{h:02d}:{m:02d}:{s:02d}Z"


def _price(p: Decimal) -> str:
    text = format(p, "f")
    return text if "." in text else text + ".0"


def _group(run: RunCharge, issuer: str | None, service: str) -> tuple[str, str, str, str, str, str, str]:
    """The text of a run's columns that many runs share (same provider, team, cluster, shape and prices)."""
    provider = csv_field(run.provider)
    region = csv_field(run.region)
    team = csv_field(run.team)
    model = csv_field(run.gpu_model)
    desc = csv_field(f"{run.gpus} {run.gpu_model} GPUs on cluster {run.cluster}")
    tags = {"stargate/queue": run.queue, "stargate/team": run.team, "stargate/cluster": run.cluster}
    if run.contract is not None:
        tags["stargate/contract"] = run.contract
    contract = csv_field(run.contract or "")
    sku_price = csv_field(f"{run.cluster}:{run.contract or 'list'}:{_price(run.price)}")
    return (
        f",Usage,,{desc},Usage-Based,",
        f",{_price(run.price)},",
        f",{csv_field(issuer if issuer is not None else run.provider)},",
        f",{_price(run.list_price)},Standard,",
        f",{UNIT},{provider},{provider},{region},{region},",
        f",{RESOURCE_TYPE},{SERVICE_CATEGORY},{service},{model},{sku_price},{team},{team},"
        f"{csv_field(json.dumps(tags, separators=(',', ':'), sort_keys=True))},",
        f",{csv_field(run.queue)},{team},{contract},{csv_field(run.cluster)},{model},{run.gpus},",
    )


def write_focus(
    ledger: Ledger,
    out: TextIO,
    billing_account: str,
    *,
    billing_account_name: str | None = None,
    invoice_issuer: str | None = None,
    service_name: str = "GPU compute",
) -> int:
    """Write the ledger as a FOCUS 1.0 CSV (header + one row per line item) to ``out``; return the rows written.

    ``billing_account`` fills BillingAccountId (and BillingAccountName unless ``billing_account_name`` is given);
    ``invoice_issuer`` fills InvoiceIssuerName (None: each run's provider); ``service_name`` fills ServiceName.
    Open ``out`` with ``newline=""``: rows end with ``\\n`` and quoted fields may hold newlines.
    """
    head = f"{csv_field(billing_account)},{csv_field(billing_account_name or billing_account)},{CURRENCY},"
    service = csv_field(service_name)
    out.write(",".join(EXPORT_COLUMNS) + "\n")
    days = _Days()
    groups: dict[tuple[object, ...], tuple[str, str, str, str, str, str, str]] = {}
    buf: list[str] = []
    rows = 0
    for run, day, s, e, gh, cost, list_cost in ledger.raw_items():
        key = (
            run.provider,
            run.region,
            run.team,
            run.queue,
            run.contract,
            run.cluster,
            run.gpu_model,
            run.gpus,
            run.price,
            run.list_price,
        )
        g = groups.get(key)
        if g is None:
            g = groups[key] = _group(run, invoice_issuer, service)
        bp, cp = days.periods(day)
        c = usd(cost)
        h = usd(gh)
        rid = csv_field(run.run_id)
        jid = csv_field(run.job_id)
        buf.append(
            f",{c},{head}{bp}{g[0]}{cp},,,,,,{h},{UNIT},{c}{g[1]}{c}{g[2]}{usd(list_cost)}{g[3]}{h}{g[4]}"
            f"{rid},{jid}{g[5]}{rid},{jid}{g[6]}{days.instant(s)},{days.instant(e)}\n"
        )
        if len(buf) >= _CHUNK:
            out.write("".join(buf))
            rows += len(buf)
            buf.clear()
    out.write("".join(buf))
    return rows + len(buf)
