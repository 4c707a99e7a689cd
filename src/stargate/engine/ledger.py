"""The cost ledger: what each run cost, split into daily line items at UTC midnights, and roll-ups of it.

Money is exact. :func:`charge` prices a run as ``price × gpus × seconds / 3600`` USD with rational arithmetic and
rounds the result once, half to even, to the micro-dollar (0.000001 USD); float seconds are first rounded to the
millisecond. A run's duration is ``end − start`` rounded to the millisecond, and its cost is ``charge`` of that
duration, computed once. A run that crosses UTC midnights is split into one line item per day by *cumulative*
rounding: the piece ending at boundary ``b`` costs ``charge(cum(b)) − charge(cum(previous boundary))`` where
``cum(b)`` is the time from the run's start to ``b`` (rounded to the millisecond). The pieces therefore sum to the
run's cost exactly, each piece is within one micro-dollar of its exact share, and every roll-up (by run, job,
queue, team, contract, provider or day) sums to the same total, to the micro-dollar::

    ledger = Ledger(runs)                 # runs: Iterable[RunCharge]
    ledger.total()                        # Decimal USD
    ledger.by("contract")                 # {"oracle-2027": Decimal("1234.500000"), ...}
    for item in ledger.items(): ...       # LineItem per run and UTC day

Pure: no I/O, no clock. Internally amounts are integers of micro-dollars and durations integers of milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from itertools import count, repeat
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

QUANTUM = Decimal("0.000001")
"""The ledger's money quantum: one micro-dollar (USD)."""

_MS = Decimal("0.001")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
IntArray = npt.NDArray[np.int64]

ROLLUP_KEYS: tuple[str, ...] = ("run", "job", "queue", "team", "contract", "provider", "day")
"""The keys :meth:`Ledger.by` accepts."""

_KEY_ATTR = {
    "run": "run_id",
    "job": "job_id",
    "queue": "queue",
    "team": "team",
    "contract": "contract",
    "provider": "provider",
}


class LedgerError(ValueError):
    """A run or amount the ledger cannot price; ``field`` names what is wrong (e.g. ``runs[3].end``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _round_div(num: int, den: int) -> int:
    """``num / den`` rounded half to even (``den > 0``)."""
    q, r = divmod(num, den)
    twice = 2 * r
    if twice > den or (twice == den and q & 1):
        q += 1
    return q


def _micro(value: int) -> Decimal:
    """An integer of micro-units as a Decimal with six decimals."""
    return Decimal(value).scaleb(-6)


def _ratio(price: Decimal, field: str) -> tuple[int, int]:
    """A finite, non-negative Decimal price as an exact fraction."""
    try:
        if not isinstance(price, Decimal):
            raise ValueError
        num, den = price.as_integer_ratio()
    except (ValueError, OverflowError, InvalidOperation):
        raise LedgerError(field, f"found {price!r}, expected a finite Decimal USD per GPU-hour") from None
    if num < 0:
        raise LedgerError(field, f"found {price}, expected a price >= 0 USD per GPU-hour")
    return num, den


def _seconds_ratio(seconds: Decimal | float | int) -> tuple[int, int]:
    if isinstance(seconds, float):
        if not math.isfinite(seconds):
            raise LedgerError("seconds", f"found {seconds!r}, expected a finite duration in s")
        seconds = Decimal(repr(seconds)).quantize(_MS, ROUND_HALF_EVEN)
    elif isinstance(seconds, int):
        return seconds, 1
    elif not isinstance(seconds, Decimal) or not seconds.is_finite():
        raise LedgerError("seconds", f"found {seconds!r}, expected a finite duration in s")
    return seconds.as_integer_ratio()


def charge(price_per_gpu_hour: Decimal, gpus: int, seconds: Decimal | float) -> Decimal:
    """What ``gpus`` GPUs at ``price_per_gpu_hour`` USD cost for ``seconds`` s, in USD to the micro-dollar.

    Exact: ``price × gpus × seconds / 3600`` rounded once, half to even, to 0.000001 USD. Float seconds are
    converted via ``repr`` and rounded to the millisecond first; Decimal (or int) seconds are used as given.
    """
    pn, pd = _ratio(price_per_gpu_hour, "price_per_gpu_hour")
    sn, sd = _seconds_ratio(seconds)
    return _micro(_round_div(pn * gpus * sn * 1_000_000, pd * sd * 3600))


@dataclass(frozen=True, slots=True)
class RunCharge:
    """One run of a job on one cluster: who ran, where, for how long, at what price (USD per GPU-hour).

    ``start`` and ``end`` are timezone-aware instants; ``price`` is what the ledger charges (the contract's price,
    else the cluster's list price, or the energy price of an owned cluster) and ``list_price`` the cluster's
    list price (FOCUS ``ListUnitPrice``). ``contract`` is None for runs that burn no contract.
    """

    run_id: str
    job_id: str
    queue: str
    team: str
    provider: str
    contract: str | None
    cluster: str
    region: str
    gpu_model: str
    gpus: int
    start: datetime
    end: datetime
    price: Decimal
    list_price: Decimal


@dataclass(frozen=True, slots=True)
class LineItem:
    """The part of one run that fell on one UTC day: ``start``..``end`` (UTC), GPU-hours and USD amounts.

    ``cost`` is at the run's ``price`` and ``list_cost`` at its ``list_price``, both to the micro-dollar;
    ``gpu_hours`` is to the micro-GPU-hour. Both are split from the run's totals by cumulative rounding.
    """

    run: RunCharge
    run_id: str
    day: date
    start: datetime
    end: datetime
    gpu_hours: Decimal
    cost: Decimal
    list_cost: Decimal


Ints = npt.NDArray[Any]
"""An integer column: int64, or Python ints (object) where int64 could overflow."""

RawItem = tuple[RunCharge, int, int, int, int, int, int]
"""A line item as integers: (run, day as days since 1970-01-01, start µs since the Unix epoch, end µs,
gpu-hours in micro-GPU-hours, cost in micro-USD, list cost in micro-USD)."""

GROUP_FIELDS: tuple[str, ...] = (
    "provider",
    "region",
    "team",
    "queue",
    "contract",
    "cluster",
    "gpu_model",
    "gpus",
    "price",
    "list_price",
)
"""The fields runs of one *group* share (every field but the ids and the times)."""

_group_key = attrgetter(*GROUP_FIELDS[:-2])  # without the prices: see _value_codes
_price_get = attrgetter("price")
_list_price_get = attrgetter("list_price")
_run_id = attrgetter("run_id")
_INT64_SAFE = 2**62


@dataclass(frozen=True, slots=True)
class Rows:
    """The line items as columns, one entry per item, run by run (in the order given) then day by day."""

    run: IntArray  # index of the run in Ledger.runs
    day: IntArray  # days since 1970-01-01 (UTC)
    start_us: IntArray  # µs since the Unix epoch
    end_us: IntArray
    gpu_hours: Ints  # micro-GPU-hours
    cost: Ints  # micro-USD
    list_cost: Ints  # micro-USD

    def __len__(self) -> int:
        return len(self.run)


def _rdiv(num: Ints, den: Ints | int) -> Ints:
    """Element-wise ``num / den`` rounded half to even (``den > 0``)."""
    q: Ints = num // den
    twice = (num - q * den) * 2
    up: Ints = (twice > den) | ((twice == den) & (q % 2 == 1))
    return q + up


def _column(values: list[int], bound: int) -> Ints:
    """int64 when every product the caller forms stays under ``bound`` < 2**62, else Python ints."""
    return np.array(values, dtype=np.int64 if bound < _INT64_SAFE else object)


def _codes(keys: list[Any]) -> IntArray:
    """Per key, a dense code (0, 1, ...) in order of first appearance."""
    index = dict(zip(dict.fromkeys(keys), count()))
    return np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=len(keys))


def _value_codes(prices: list[Decimal]) -> IntArray:
    """Per price, a dense code of its text (equal text: equal value). Decimals hash slowly, so prices are keyed
    by their text, made once per distinct object."""
    ids = list(map(id, prices))
    objects = {key: k for k, key in enumerate(dict.fromkeys(ids))}
    if len(objects) == len(prices):
        return _codes(list(map(str, prices)))
    texts = list(map(str, dict(zip(ids, prices, strict=True)).values()))
    return _codes(texts)[np.fromiter(map(objects.__getitem__, ids), dtype=np.int64, count=len(ids))]


def _dense(values: IntArray) -> IntArray:
    """``values`` renumbered 0, 1, ... in order of first appearance."""
    if not len(values):
        return values
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first), dtype=np.int64)
    out: IntArray = rank[inverse.reshape(-1)]
    return out


def _decimals(micro: Ints) -> list[Decimal]:
    return list(map(Decimal.scaleb, map(Decimal, micro.tolist()), repeat(-6)))


def _sum_by(codes: IntArray, values: Ints, size: int) -> list[int]:
    """Per code 0..size-1, the exact sum of ``values``."""
    exact = values.dtype == object or (len(values) and int(np.abs(values).max()) * len(values) >= _INT64_SAFE)
    sums: Ints = np.zeros(size, dtype=object if exact else np.int64)
    np.add.at(sums, codes, values.astype(object) if exact else values)
    return [int(x) for x in sums.tolist()]


def _us(t: datetime, field: str) -> int:
    if t.tzinfo is None or t.utcoffset() is None:
        raise LedgerError(field, f"found {t.isoformat()}, expected a timezone-aware instant (UTC)")
    return (t - _EPOCH) // _ONE_US


def _utc(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def day_of(days_since_epoch: int) -> date:
    """The date ``days_since_epoch`` days after 1970-01-01 (as in :class:`Rows`)."""
    return date.fromordinal(_EPOCH_ORDINAL + days_since_epoch)


class Ledger:
    """The line items and roll-ups of a set of runs (validated when built; read-only after).

    Columnar inside: one pass over the runs reads their times and their *group* (:data:`GROUP_FIELDS`, shared by
    many runs), and money is computed on integer columns (int64, or Python ints where int64 could overflow).
    """

    def __init__(self, runs: Iterable[RunCharge]) -> None:
        """Price every run; a bad run raises :class:`LedgerError` naming it (``runs[i].field``)."""
        self._runs = runs = list(runs)
        n = len(runs)
        codes = _codes(list(map(_group_key, runs)))
        for get in (_price_get, _list_price_get):
            prices = _value_codes(list(map(get, runs)))
            codes = _dense(codes * (int(prices.max()) + 1 if n else 1) + prices)
        self._group_codes = codes
        firsts = np.unique(codes, return_index=True)[1].tolist() if n else []
        self._groups = [runs[i] for i in firsts]
        gpus: list[int] = []
        pn: list[int] = []
        pd: list[int] = []
        ln: list[int] = []
        ld: list[int] = []
        for i in firsts:
            run = runs[i]
            if not isinstance(run.gpus, int) or isinstance(run.gpus, bool) or run.gpus < 0:
                raise LedgerError(f"runs[{i}].gpus", f"found {run.gpus!r}, expected an integer >= 0 GPUs")
            for field, num, den in (("price", pn, pd), ("list_price", ln, ld)):
                a, b = _ratio(getattr(run, field), f"runs[{i}].{field}")
                num.append(a)
                den.append(b)
            gpus.append(run.gpus)
        try:
            s = np.array([(r.start - _EPOCH) // _ONE_US for r in runs], dtype=np.int64)
            e = np.array([(r.end - _EPOCH) // _ONE_US for r in runs], dtype=np.int64)
        except TypeError:
            for i, r in enumerate(runs):
                _us(r.start, f"runs[{i}].start")
                _us(r.end, f"runs[{i}].end")
            raise
        back = np.nonzero(e < s)[0]
        if len(back):
            r = runs[int(back[0])]
            raise LedgerError(f"runs[{back[0]}].end", f"found {r.end.isoformat()}, expected >= start {r.start}")
        self._run_ids = ids = list(map(_run_id, runs))
        if len(set(ids)) != n:
            seen: set[str] = set()
            for i, rid in enumerate(ids):
                if rid in seen:
                    raise LedgerError(f"runs[{i}].run_id", f"found {rid!r} twice, expected unique run ids")
                seen.add(rid)
        self._start, self._end = s, e
        ms = _rdiv(e - s, 1000)
        longest = int(ms.max()) if n else 0
        g_gpus = np.array(gpus, dtype=object if max(gpus, default=0) >= _INT64_SAFE else np.int64)
        self._gpus = g_gpus[codes]
        self._price = self._rate(pn, pd, gpus, codes, longest)
        self._list = self._rate(ln, ld, gpus, codes, longest)
        self._gh_safe = max(gpus, default=0) * longest * 10 < _INT64_SAFE
        self._cost = self._money(self._price, ms, None)
        self._rows: Rows | None = None

    @staticmethod
    def _rate(num: list[int], den: list[int], gpus: list[int], codes: IntArray, longest_ms: int) -> tuple[Ints, Ints]:
        """Per run, price × GPUs as (numerator, denominator), in int64 unless money products could overflow."""
        per = [a * g for a, g in zip(num, gpus, strict=True)]
        return (
            _column(per, max(per, default=0) * longest_ms * 1000)[codes],
            _column(den, max(den, default=1) * 3600 * 2)[codes],
        )

    def _money(self, rate: tuple[Ints, Ints], ms: Ints, at: IntArray | None) -> Ints:
        """Micro-USD of ``ms`` milliseconds at ``rate`` (price × GPUs as a fraction), per run or per row ``at``."""
        num, den = rate if at is None else (rate[0][at], rate[1][at])
        if num.dtype == object:
            ms = ms.astype(object)
        return _rdiv(num * ms * 1000, den * 3600)

    def __len__(self) -> int:
        """The number of runs."""
        return len(self._runs)

    @property
    def runs(self) -> list[RunCharge]:
        """The runs, in the order given."""
        return list(self._runs)

    @property
    def groups(self) -> list[RunCharge]:
        """One run of each group (:data:`GROUP_FIELDS`), in order of first appearance."""
        return list(self._groups)

    @property
    def group_codes(self) -> IntArray:
        """Per run, the index of its group in :attr:`groups`."""
        return self._group_codes

    @property
    def run_ids(self) -> list[str]:
        """The run ids, in run order."""
        return list(self._run_ids)

    def run_cost(self, index: int) -> Decimal:
        """The cost of the ``index``-th run, USD (what :func:`charge` gives for its millisecond duration)."""
        return _micro(int(self._cost[index]))

    def total(self) -> Decimal:
        """The cost of every run, USD to the micro-dollar."""
        return _micro(sum(self._cost.tolist()))

    def rows(self) -> Rows:
        """The line items as integer columns (computed once): each run split at UTC midnights."""
        if self._rows is not None:
            return self._rows
        s, e = self._start, self._end
        first = s // _DAY_US
        last = np.where(e > s, (e - 1) // _DAY_US, first)
        days = last - first + 1
        n = len(s)
        if n == 0 or int(days.max()) == 1:
            run: IntArray = np.arange(n, dtype=np.int64)
            day, ps, pe, offs = first, s, e, np.zeros(n, dtype=np.int64)
        else:
            run = np.repeat(np.arange(n, dtype=np.int64), days)
            offs = np.arange(len(run), dtype=np.int64) - np.repeat(np.cumsum(days) - days, days)
            day = first[run] + offs
            ps = np.maximum(s[run], day * _DAY_US)
            pe = np.minimum(e[run], (day + 1) * _DAY_US)
        cum_ms = _rdiv(pe - s[run], 1000)
        gpus = self._gpus[run]
        cum_gh = _rdiv((gpus if self._gh_safe else gpus.astype(object)) * cum_ms * 10, 36)
        cums = [cum_gh, self._money(self._price, cum_ms, run), self._money(self._list, cum_ms, run)]
        pieces = []
        for cum in cums:
            prev = np.empty_like(cum)
            prev[1:] = cum[:-1]
            if len(prev):
                prev[offs == 0] = 0
            pieces.append(cum - prev)
        self._rows = Rows(run, day, ps, pe, pieces[0], pieces[1], pieces[2])
        return self._rows

    def by(self, key: str) -> dict[str, Decimal]:
        """Cost per ``key`` (one of :data:`ROLLUP_KEYS`); runs with no contract under ``""``.

        Keys come in order of first appearance among the runs; ``day`` keys are ISO dates (``2027-01-05``) in
        ascending order and sum each run's daily line items.
        """
        if key == "day":
            rows = self.rows()
            if not len(rows):
                return {}
            low = int(rows.day.min())
            span = int(rows.day.max()) - low + 1
            sums = _sum_by(rows.day - low, rows.cost, span)
            seen = np.bincount(rows.day - low, minlength=span).tolist()
            return {day_of(low + d).isoformat(): _micro(sums[d]) for d in range(span) if seen[d]}
        if key == "run":
            return dict(zip(self._run_ids, _decimals(self._cost), strict=True))
        if key == "job":
            jobs = list(map(attrgetter("job_id"), self._runs))
            index = dict(zip(dict.fromkeys(jobs), count()))
            codes = np.fromiter(map(index.__getitem__, jobs), dtype=np.int64, count=len(jobs))
            job_sums: Ints = np.array(_sum_by(codes, self._cost, len(index)), dtype=object)
            return dict(zip(index, _decimals(job_sums), strict=True))
        if key not in _KEY_ATTR:
            raise LedgerError("by", f"found {key!r}, expected one of {', '.join(ROLLUP_KEYS)}")
        get = attrgetter(_KEY_ATTR[key])
        out: dict[str, int] = {}
        for group, cost in zip(self._groups, _sum_by(self._group_codes, self._cost, len(self._groups)), strict=True):
            k = get(group) or ""
            out[k] = out.get(k, 0) + cost
        return {k: _micro(v) for k, v in out.items()}

    def raw_items(self) -> Iterator[RawItem]:
        """The line items as integer tuples (:data:`RawItem`), run by run, day by day."""
        r = self.rows()
        runs = self._runs
        cols = (r.day, r.start_us, r.end_us, r.gpu_hours, r.cost, r.list_cost)
        for i, d, s, e, gh, cost, lc in zip(r.run.tolist(), *(c.tolist() for c in cols), strict=True):
            yield (runs[i], d, s, e, gh, cost, lc)

    def items(self) -> Iterator[LineItem]:
        """The line items, run by run (in the order given) and day by day (UTC)."""
        for run, d, s, e, gh, cost, list_cost in self.raw_items():
            yield LineItem(
                run=run,
                run_id=run.run_id,
                day=day_of(d),
                start=_utc(s),
                end=_utc(e),
                gpu_hours=_micro(gh),
                cost=_micro(cost),
                list_cost=_micro(list_cost),
            )
