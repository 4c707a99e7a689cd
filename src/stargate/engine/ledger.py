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
from operator import attrgetter

QUANTUM = Decimal("0.000001")
"""The ledger's money quantum: one micro-dollar (USD)."""

_MS = Decimal("0.001")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000

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
        num, den = price.as_integer_ratio()
    except (ValueError, OverflowError, AttributeError, InvalidOperation):
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


RawItem = tuple[RunCharge, int, int, int, int, int, int]
"""A line item as integers, for fast exporters: (run, day as days since 1970-01-01, start µs since the Unix
epoch, end µs, gpu-hours in micro-GPU-hours, cost in micro-USD, list cost in micro-USD)."""


def _us(t: datetime, field: str) -> int:
    if t.tzinfo is None or t.utcoffset() is None:
        raise LedgerError(field, f"found {t.isoformat()}, expected a timezone-aware instant (UTC)")
    return (t - _EPOCH) // _ONE_US


def _utc(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def day_of(days_since_epoch: int) -> date:
    """The date ``days_since_epoch`` days after 1970-01-01 (as in :data:`RawItem`)."""
    return date.fromordinal(_EPOCH_ORDINAL + days_since_epoch)


class Ledger:
    """The line items and roll-ups of a set of runs (validated when built; read-only after)."""

    def __init__(self, runs: Iterable[RunCharge]) -> None:
        """Price every run; a bad run raises :class:`LedgerError` naming it (``runs[i].field``)."""
        self._runs: list[RunCharge] = []
        self._start_us: list[int] = []
        self._end_us: list[int] = []
        self._cost: list[int] = []
        ratios: dict[Decimal, tuple[int, int]] = {}
        seen: set[str] = set()
        for i, run in enumerate(runs):
            where = f"runs[{i}]"
            s = _us(run.start, f"{where}.start")
            e = _us(run.end, f"{where}.end")
            if e < s:
                raise LedgerError(f"{where}.end", f"found {run.end.isoformat()}, expected >= start {run.start}")
            if not isinstance(run.gpus, int) or run.gpus < 0:
                raise LedgerError(f"{where}.gpus", f"found {run.gpus!r}, expected an integer >= 0 GPUs")
            if run.run_id in seen:
                raise LedgerError(f"{where}.run_id", f"found {run.run_id!r} twice, expected unique run ids")
            seen.add(run.run_id)
            r = ratios.get(run.price)
            if r is None:
                r = ratios[run.price] = _ratio(run.price, f"{where}.price")
            if run.list_price not in ratios:
                ratios[run.list_price] = _ratio(run.list_price, f"{where}.list_price")
            ms = _round_div(e - s, 1000)
            self._runs.append(run)
            self._start_us.append(s)
            self._end_us.append(e)
            self._cost.append(_round_div(r[0] * run.gpus * ms * 1000, r[1] * 3600))
        self._ratios = ratios

    def __len__(self) -> int:
        """The number of runs."""
        return len(self._runs)

    @property
    def runs(self) -> list[RunCharge]:
        """The runs, in the order given."""
        return list(self._runs)

    def run_cost(self, index: int) -> Decimal:
        """The cost of the ``index``-th run, USD (what :func:`charge` gives for its millisecond duration)."""
        return _micro(self._cost[index])

    def total(self) -> Decimal:
        """The cost of every run, USD to the micro-dollar."""
        return _micro(sum(self._cost))

    def by(self, key: str) -> dict[str, Decimal]:
        """Cost per ``key`` (one of :data:`ROLLUP_KEYS`), sorted by key; runs with no contract under ``""``.

        ``day`` keys are ISO dates (``2027-01-05``) and count each run's daily line items.
        """
        sums: dict[str, int] = {}
        if key == "day":
            for item in self.raw_items():
                d = item[1]
                k = day_of(d).isoformat()
                sums[k] = sums.get(k, 0) + item[5]
        elif key in _KEY_ATTR:
            get = attrgetter(_KEY_ATTR[key])
            for run, cost in zip(self._runs, self._cost, strict=True):
                k = get(run) or ""
                sums[k] = sums.get(k, 0) + cost
        else:
            raise LedgerError("by", f"found {key!r}, expected one of {', '.join(ROLLUP_KEYS)}")
        return {k: _micro(sums[k]) for k in sorted(sums)}

    def raw_items(self) -> Iterator[RawItem]:
        """The line items as integer tuples (:data:`RawItem`), run by run, day by day; fast path for exporters."""
        ratios = self._ratios
        for run, s, e, cost in zip(self._runs, self._start_us, self._end_us, self._cost, strict=True):
            gpus = run.gpus
            ln, ld = ratios[run.list_price]
            first = s // _DAY_US
            last = (e - 1) // _DAY_US if e > s else first
            if last == first:
                ms = _round_div(e - s, 1000)
                yield (
                    run,
                    first,
                    s,
                    e,
                    _round_div(gpus * ms * 10, 36),
                    cost,
                    _round_div(ln * gpus * ms * 1000, ld * 3600),
                )
                continue
            pn, pd = ratios[run.price]
            prev_us, prev_cost, prev_list, prev_gh = s, 0, 0, 0
            for d in range(first, last + 1):
                bound = min((d + 1) * _DAY_US, e)
                ms = _round_div(bound - s, 1000)
                cum_cost = cost if bound == e else _round_div(pn * gpus * ms * 1000, pd * 3600)
                cum_list = _round_div(ln * gpus * ms * 1000, ld * 3600)
                cum_gh = _round_div(gpus * ms * 10, 36)
                yield (run, d, prev_us, bound, cum_gh - prev_gh, cum_cost - prev_cost, cum_list - prev_list)
                prev_us, prev_cost, prev_list, prev_gh = bound, cum_cost, cum_list, cum_gh

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
