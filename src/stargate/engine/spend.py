"""Spend to date per contract, and the repricing of commitments it drives (pure: no clock, no I/O).

:class:`SpendMeter` is fed by the driver's own starts and stops. A run of ``g`` GPUs at price ``p`` (USD per
GPU-hour) that began at ``t0`` has spent ``charge(p, g, t - t0)`` at ``t`` (:func:`stargate.engine.ledger.charge`:
quantised to the micro-dollar, seconds rounded to the millisecond), so the meter and the ledger agree to the cent::

    spent(k, t) = closed(k) + sum over runs r of k still going of charge(p_r, g_r, t - t0_r)

``closed(k)`` is what runs that ended spent (plus, for a rebuilt driver, the ``spent_usd`` it was given).
``spent`` never decreases, so a commitment of ``X`` USD is used up from one exact instant on: the first float
``t`` with ``spent(k, t) >= X`` (:meth:`SpendMeter.exhausted_at`). It lies within milliseconds of the linear
estimate ``closed + sum p_r g_r (t - t0_r) / 3600``, which the meter keeps in O(1) per start and stop; the exact
instant is found by bisection between two instants the estimate brackets, O(runs) per probe.

:class:`Pricing` recomputes the placement rank of commitment clusters (see :meth:`FleetIndex.commitment_rank`) when
what it depends on changes: at the index's change times (contracts starting or ending), at the instant a
commitment is used up (the driver wakes the scheduler then), and at the first cycle of every whole hour of engine
time (``refresh_s``) while a commitment is active and not used up: its projected shortfall follows its burn rate.
Never on every scheduling pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Context, Decimal
from typing import TYPE_CHECKING

from stargate.engine.ledger import charge

if TYPE_CHECKING:
    from stargate.engine.index import FleetIndex, FloatArray

_EXACT = Context(prec=80)
"""Wide enough that the meter's sums of price × GPUs × start time are exact (no drift over millions of runs)."""
_ZERO = Decimal(0)
_HOUR = Decimal(3600)
_SLACK_S = 0.002
"""Bracket half-width, s, for the millisecond rounding of run times (plus float error, see ``_slack``)."""

REFRESH_S = 3600.0
"""How often, s of engine time, an active commitment's projected shortfall is re-estimated."""


def _dec(t: float) -> Decimal:
    return Decimal(repr(t))


class _Account:
    """One contract's spend: closed runs, runs going on, and the sums behind the linear estimate."""

    __slots__ = ("closed", "found", "rate", "runs", "t0_sum", "version")

    def __init__(self, closed: Decimal) -> None:
        self.closed = closed
        self.runs: dict[str, tuple[int, Decimal, float]] = {}
        """Job id → (GPUs, price per GPU-hour, start s)."""
        self.rate = _ZERO
        """Σ price × GPUs of the runs going on (USD per hour)."""
        self.t0_sum = _ZERO
        """Σ price × GPUs × start s of the runs going on."""
        self.version = 0
        self.found: tuple[int, Decimal, float | None] | None = None
        """(version, committed, answer) of the last :meth:`SpendMeter.exhausted_at`."""


class SpendMeter:
    """Spend to date per contract, USD, from the runs it was told of."""

    __slots__ = ("_accounts", "jobs")

    def __init__(self, spent_usd: Mapping[str, Decimal] | None = None) -> None:
        """A meter whose contracts already spent ``spent_usd`` (contract id → USD) in runs that ended."""
        self._accounts: dict[str, _Account] = {}
        self.jobs: dict[str, str] = {}
        """Running job id → the contract it burns (read-only outside the meter)."""
        for contract, usd in (spent_usd or {}).items():
            self._account(contract).closed += Decimal(usd)

    def _account(self, contract: str) -> _Account:
        acc = self._accounts.get(contract)
        if acc is None:
            acc = self._accounts[contract] = _Account(_ZERO)
        return acc

    def start(self, job_id: str, contract: str | None, gpus: int, price_per_gpu_hour: Decimal, t: float) -> None:
        """Job ``job_id`` runs from ``t`` on ``gpus`` GPUs burning ``contract`` (None: no contract, not metered)."""
        if contract is None:
            return
        if job_id in self.jobs:
            self.stop(job_id, t)
        acc = self._account(contract)
        acc.runs[job_id] = (gpus, price_per_gpu_hour, t)
        pg = price_per_gpu_hour * gpus
        acc.rate = _EXACT.add(acc.rate, pg)
        acc.t0_sum = _EXACT.add(acc.t0_sum, _EXACT.multiply(pg, _dec(t)))
        acc.version += 1
        self.jobs[job_id] = contract

    def stop(self, job_id: str, t: float) -> Decimal | None:
        """Job ``job_id``'s run ends at ``t``; what it spent, USD (None: it ran on no contract, or is not running)."""
        contract = self.jobs.pop(job_id, None)
        if contract is None:
            return None
        acc = self._accounts[contract]
        gpus, price, t0 = acc.runs.pop(job_id)
        usd = charge(price, gpus, max(t - t0, 0.0))
        acc.closed += usd
        pg = price * gpus
        acc.rate = _EXACT.subtract(acc.rate, pg)
        acc.t0_sum = _EXACT.subtract(acc.t0_sum, _EXACT.multiply(pg, _dec(t0)))
        acc.version += 1
        return usd

    def closed_usd(self) -> dict[str, Decimal]:
        """Contract id → USD spent by runs that ended (and the ``spent_usd`` given): what a rebuilt driver is given
        as its ``spent_usd`` when its running jobs are restored from their start times."""
        return {k: acc.closed for k, acc in self._accounts.items() if acc.closed}

    def contract_of(self, job_id: str) -> str | None:
        """The contract a running job burns (None: none, or not running)."""
        return self.jobs.get(job_id)

    def spent(self, contract: str, t: float) -> Decimal:
        """What ``contract`` has spent by ``t`` (not before its runs' starts), USD, exact as the ledger charges it."""
        acc = self._accounts.get(contract)
        if acc is None:
            return _ZERO
        return acc.closed + sum((charge(p, g, max(t - t0, 0.0)) for g, p, t0 in acc.runs.values()), start=_ZERO)

    def estimate(self, contract: str, t: float) -> float:
        """What ``contract`` has spent by ``t`` by the linear estimate (within a few milli-dollars), USD."""
        acc = self._accounts.get(contract)
        if acc is None:
            return 0.0
        return float(acc.closed + (_EXACT.multiply(acc.rate, _dec(t)) - acc.t0_sum) / _HOUR)

    def burn_usd_per_s(self, contract: str) -> float:
        """How fast ``contract``'s spend grows now, USD per s."""
        acc = self._accounts.get(contract)
        return 0.0 if acc is None else float(acc.rate / _HOUR)

    def window(self, contract: str, committed: Decimal) -> tuple[float, float] | None:
        """Two instants the exhaustion of ``committed`` USD lies between by the linear estimate (None: spend does
        not grow). Cheap (O(1)); :meth:`exhausted_at` checks and narrows them."""
        acc = self._accounts.get(contract)
        if acc is None or acc.rate <= 0:
            return None
        t_lin = float((_EXACT.multiply(committed - acc.closed, _HOUR) + acc.t0_sum) / acc.rate)
        half = self._slack(acc, t_lin)
        return t_lin - half, t_lin + half

    @staticmethod
    def _slack(acc: _Account, t: float) -> float:
        """Half-width, s, of the bracket around the linear estimate: rounding to the millisecond and to the
        micro-dollar of each run, and float error on the run times."""
        return _SLACK_S + 1e-15 * abs(t) + len(acc.runs) * 1e-6 * 3600.0 / float(acc.rate)

    def exhausted_at(self, contract: str, committed: Decimal) -> float | None:
        """The first instant, s, at which ``contract``'s spend reaches ``committed`` USD if its runs going on go on
        (the instant of its last start or stop when it is reached by then; None: never, spend does not grow)."""
        acc = self._accounts.get(contract)
        if acc is None:
            return None
        if acc.found is not None and acc.found[0] == acc.version and acc.found[1] == committed:
            return acc.found[2]
        answer = self._exhausted_at(acc, contract, committed)
        acc.found = (acc.version, committed, answer)
        return answer

    def _exhausted_at(self, acc: _Account, contract: str, committed: Decimal) -> float | None:
        since = max((t0 for _, _, t0 in acc.runs.values()), default=-math.inf)
        if acc.closed >= committed:
            return since if math.isfinite(since) else -math.inf
        win = self.window(contract, committed)
        if win is None:
            return None
        lo, hi = win
        lo = max(lo, since)
        width = max(hi - lo, _SLACK_S)
        while self.spent(contract, lo) >= committed:  # the bracket is generous; widen it should it not hold
            if lo <= since:
                return lo
            lo, width = max(since, lo - width), width * 2.0
        while self.spent(contract, hi) < committed:
            hi, width = hi + width, width * 2.0
        while True:  # invariant: spent(lo) < committed <= spent(hi); stop when no float lies between
            mid = lo + (hi - lo) / 2.0
            if not lo < mid < hi:
                return hi
            if self.spent(contract, mid) >= committed:
                hi = mid
            else:
                lo = mid

    def reached(self, contract: str, committed: Decimal, t: float) -> bool:
        """True when ``contract`` has spent at least ``committed`` USD by ``t`` (exact; O(1) unless ``t`` lies
        within milliseconds of the instant)."""
        acc = self._accounts.get(contract)
        if acc is None:
            return committed <= 0
        if acc.closed >= committed:
            return True
        if acc.rate > 0:
            est = acc.closed + (_EXACT.multiply(acc.rate, _dec(t)) - acc.t0_sum) / _HOUR
            margin = Decimal(self._slack(acc, t)) * acc.rate / _HOUR
            if est + margin < committed:
                return False
            if est - margin >= committed:
                return True
        return self.spent(contract, t) >= committed


class Pricing:
    """Keeps the placement rank of commitment clusters true to spend (see the module docstring)."""

    __slots__ = ("_clusters", "_contracts", "_index", "meter", "next_at", "refresh_at", "refresh_s")

    def __init__(self, index: FleetIndex, meter: SpendMeter, refresh_s: float = REFRESH_S) -> None:
        """Pricing over ``index``'s commitment clusters from ``meter``'s spend."""
        self._index, self.meter, self.refresh_s = index, meter, refresh_s
        self._clusters = [c for c in range(index.n) if index.commitment_of(c) is not None]
        self._contracts = sorted({k for c in self._clusters if (k := index.commitment_of(c)) is not None})
        self.next_at = -math.inf
        """When the rank must be recomputed next (-inf: at once)."""
        self.refresh_at = -math.inf

    @staticmethod
    def needed(index: FleetIndex) -> bool:
        """True when ``index`` has a cluster under a commitment (else there is nothing to reprice)."""
        return any(index.commitment_of(c) is not None for c in range(index.n))

    def due(self, now: float) -> bool:
        """True when the rank must be recomputed at ``now``."""
        return now >= self.next_at

    def apply(self, now: float, rank: FloatArray) -> None:
        """Recompute the rank of every commitment cluster at ``now``, in place in ``rank``."""
        idx = self._index
        for c in self._clusters:
            rank[c] = idx.commitment_rank(c, now, self.meter)
        self.refresh_at = (math.floor(now / self.refresh_s) + 1.0) * self.refresh_s
        self.plan(now)

    def plan(self, now: float) -> float:
        """The driver's wake-up for pricing as the meter stands: the instant a commitment is used up (or, while it
        is still far, a lower bound of it, where it is found exactly); inf: none. Also sets :attr:`next_at`, which
        adds the next whole hour of engine time while a commitment is active and not used up: its shortfall is
        refreshed at the first cycle from then on (no wake-up of its own)."""
        wake = refresh = math.inf
        meter, contracts = self.meter, self._index.contracts
        for cid in self._contracts:
            k = contracts[cid]
            committed = k.committed
            if committed is None or not k.start_s <= now < k.end_s or meter.reached(cid, committed, now):
                continue
            refresh = self.refresh_at
            win = meter.window(cid, committed)
            if win is None or win[0] >= k.end_s:
                continue
            if now < win[0]:
                wake = min(wake, win[0])
            else:
                when = meter.exhausted_at(cid, committed)
                if when is not None and now < when < k.end_s:
                    wake = min(wake, when)
        self.next_at = min(wake, refresh)
        return wake
