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

import functools
import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import TextIO

import numpy as np
import numpy.typing as npt

from stargate.costs.bill import BillError, BillRow, read_bill
from stargate.costs.columns import CURRENCY, EXPORT_COLUMNS, UNIT, csv_field, usd
from stargate.costs.reconcile import Difference, Reconciliation, reconcile
from stargate.engine.ledger import Ints, Ledger, RunCharge, day_of

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
_CHUNK = 32768
_WHOLE = 65536  # whole numbers below this are cached as text
# A row is written as a run of text pieces, each carrying the separator that follows it, joined a chunk at a time:
# 6 amounts (whole part + ".", 3 digits, 3 digits + ","), ResourceId, ResourceName, the group's and the day's FOCUS
# columns (cached), x_RunId, x_JobId, x_UsageStart and x_UsageEnd (date + "T", time + ".", 3 digits, 3 digits +
# "Z,"), the group's x_ columns + newline; each row is one join of its pieces.
_DIGITS3 = np.array([f"{i:03d}" for i in range(1000)], dtype=object)
_DIGITS3_COMMA = np.array([f"{i:03d}," for i in range(1000)], dtype=object)
_DIGITS3_Z = np.array([f"{i:03d}Z," for i in range(1000)], dtype=object)
_WHOLES_DOT = np.array([f"{i}." for i in range(_WHOLE)], dtype=object)
RESOURCE_TYPE = "GPU job run"
SERVICE_CATEGORY = "AI and Machine Learning"


@functools.cache
def _clock() -> npt.NDArray[np.object_]:
    """``HH:MM:SS.`` for every second of a day."""
    return np.array(
        [f"{h:02d}:{m:02d}:{s:02d}." for h in range(24) for m in range(60) for s in range(60)], dtype=object
    )


def _iso_day(d: date) -> str:
    return f"{d.isoformat()}T00:00:00Z"


def _price(p: Decimal) -> str:
    text = format(p, "f")
    return text if "." in text else text + ".0"


def _day_parts(day: int) -> str:
    """The day's FOCUS columns: BillingPeriodEnd/Start (its calendar month), ChargePeriodEnd/Start (the day)."""
    d = day_of(day)
    month = d.replace(day=1)
    nxt = date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)
    return f"{_iso_day(nxt)},{_iso_day(month)},{_iso_day(day_of(day + 1))},{_iso_day(d)},"


class _GroupText:
    """The text of the FOCUS and the x_ columns a run's group fixes, from parts cached by the fields they need."""

    def __init__(self, head: str, issuer: str | None, service: str) -> None:
        self._head = head
        self._issuer = issuer
        self._service = service
        self._cache: dict[tuple[object, ...], str] = {}

    def _part(self, key: tuple[object, ...], make: Callable[[], str]) -> str:
        text = self._cache.get(key)
        if text is None:
            text = self._cache[key] = make()
        return text

    def __call__(self, run: RunCharge) -> tuple[str, str]:
        """(FOCUS part, x_ part) for ``run``'s group (see ``FOCUS_COLUMNS``)."""
        desc = self._part(
            ("desc", run.gpus, run.gpu_model, run.cluster),
            lambda: (
                f",{self._head},Usage,,{csv_field(f'{run.gpus} {run.gpu_model} GPUs on cluster {run.cluster}')}"
                f",Usage-Based,,,,,,{UNIT},"
            ),
        )
        prices = self._part(
            ("prices", run.provider, run.price, run.list_price),
            lambda: (
                f"{_price(run.price)},{csv_field(self._issuer if self._issuer is not None else run.provider)},"
                f"{_price(run.list_price)},Standard,{UNIT},"
            ),
        )
        place = self._part(
            ("place", run.provider, run.region, run.gpu_model),
            lambda: (
                f"{csv_field(run.provider)},{csv_field(run.provider)},{csv_field(run.region)},"
                f"{csv_field(run.region)},{RESOURCE_TYPE},{SERVICE_CATEGORY},{self._service},{csv_field(run.gpu_model)},"
            ),
        )
        sku = self._part(
            ("sku", run.cluster, run.contract, run.price),
            lambda: csv_field(f"{run.cluster}:{run.contract or 'list'}:{_price(run.price)}") + ",",
        )
        team = self._part(("team", run.team), lambda: f"{csv_field(run.team)},{csv_field(run.team)},")
        tags = self._part(("tags", run.queue, run.team, run.cluster, run.contract), lambda: self._tags(run))
        extra = self._part(
            ("extra", run.queue, run.team, run.contract, run.cluster, run.gpu_model, run.gpus),
            lambda: (
                f"{csv_field(run.queue)},{csv_field(run.team)},{csv_field(run.contract or '')},"
                f"{csv_field(run.cluster)},{csv_field(run.gpu_model)},{run.gpus}"
            ),
        )
        return f"{desc}{prices}{place}{sku}{team}{tags}", extra

    @staticmethod
    def _tags(run: RunCharge) -> str:
        tags = {"stargate/queue": run.queue, "stargate/team": run.team, "stargate/cluster": run.cluster}
        if run.contract is not None:
            tags["stargate/contract"] = run.contract
        return csv_field(json.dumps(tags, separators=(",", ":"), sort_keys=True)) + ","


def _amounts(micro: Ints) -> tuple[list[str], list[str], list[str]]:
    """Micro-units as decimal text in three pieces: whole part + ".", 3 digits, 3 digits + "," (exact)."""
    if micro.dtype == object or (len(micro) and int(micro.min()) < 0):
        text = [usd(m) for m in micro.tolist()]
        return [t[:-6] for t in text], [t[-6:-3] for t in text], [t[-3:] + "," for t in text]
    whole, frac = np.divmod(micro, 1_000_000)
    high, low = np.divmod(frac, 1000)
    big = whole >= _WHOLE
    whole_text = _WHOLES_DOT[np.where(big, 0, whole)]
    if big.any():
        whole_text[big] = [f"{w}." for w in whole[big].tolist()]
    return whole_text.tolist(), _DIGITS3[high].tolist(), _DIGITS3_COMMA[low].tolist()


def _texts(values: list[str], suffix: str) -> npt.NDArray[np.object_]:
    """``values`` as CSV fields followed by ``suffix``, in an object array (quoted only where needed)."""
    joined = "".join(values)
    if '"' in joined or "," in joined or "\n" in joined or "\r" in joined:
        values = list(map(csv_field, values))
    return np.array([v + suffix for v in values], dtype=object)


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
    Open ``out`` with ``newline=""``: rows end with ``\\n`` and quoted fields may hold newlines. Rows are formatted
    from the ledger's integer columns a chunk at a time, so memory does not grow with the number of rows.
    """
    head = f"{csv_field(billing_account)},{csv_field(billing_account_name or billing_account)},{CURRENCY}"
    service = csv_field(service_name)
    out.write(",".join(EXPORT_COLUMNS) + "\n")
    rows = ledger.rows()
    if not len(rows):
        return 0
    parts = list(map(_GroupText(head, invoice_issuer, service), ledger.groups))
    g_focus = np.array([p[0] for p in parts], dtype=object)
    g_extra = np.array([p[1] + "\n" for p in parts], dtype=object)
    codes = ledger.group_codes
    ids = _texts(ledger.run_ids, ",")
    jobs = _texts([r.job_id for r in ledger.runs], ",")
    low = int(rows.day.min())
    high = int(rows.end_us.max()) // _DAY_US + 1
    day_text = np.array([_day_parts(d) for d in range(low, high + 1)], dtype=object)
    dates = np.array([day_of(d).isoformat() + "T" for d in range(low, high + 1)], dtype=object)
    clock = _clock()
    for a in range(0, len(rows), _CHUNK):
        b = a + _CHUNK
        run = rows.run[a:b]
        group = codes[run]
        cost = _amounts(rows.cost[a:b])
        gh = _amounts(rows.gpu_hours[a:b])
        rid = ids[run].tolist()
        jid = jobs[run].tolist()
        stamps = []
        for us in (rows.start_us[a:b], rows.end_us[a:b]):
            sec, frac = np.divmod(us, 1_000_000)
            d, tod = np.divmod(sec, 86_400)
            hi3, lo3 = np.divmod(frac, 1000)
            stamps += [dates[d - low].tolist(), clock[tod].tolist(), _DIGITS3[hi3].tolist(), _DIGITS3_Z[lo3].tolist()]
        pieces = zip(
            *cost,
            *cost,
            *cost,
            *_amounts(rows.list_cost[a:b]),
            *gh,
            *gh,
            rid,
            jid,
            g_focus[group].tolist(),
            day_text[rows.day[a:b] - low].tolist(),
            rid,
            jid,
            *stamps,
            g_extra[group].tolist(),
            strict=True,
        )
        out.write("".join(map("".join, pieces)))
    return len(rows)
