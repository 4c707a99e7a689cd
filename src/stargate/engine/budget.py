"""The budget rule: what draws on the investment envelope, when, and whether a new award fits.

A draw is dated. Fleet contracts draw on their **start** day: a ``commitment`` its ``committed_spend_usd``; a
``reserved`` contract its ``value_usd``, else GPUs × price × term hours; ``on_demand`` and ``spot`` draw nothing up
front (their spend is in the ledger). Each building's ``capex_usd`` draws on its planned energisation day. An award
draws its full cost on its award day. ``drawn_by(day)`` is the sum of draws dated on or before ``day``. An award of
cost C on day d is within budget iff ``budget.start <= d <= budget.end`` and ``drawn_by(D) + C <= ceiling`` on every
day D from d to ``budget.end`` (a draw dated later, such as a commitment starting in a later year, counts: the award
is drawn on those days too); a fleet without a budget refuses nothing. Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any

from stargate.domain import ContractKind, Fleet
from stargate.engine.procurement_types import Award

HOURS_PER_DAY = 24


def award_contract_id(request_id: str) -> str:
    """The id of the reserved contract an award for ``request_id`` becomes."""
    return f"award-{request_id}"


@dataclass(frozen=True, slots=True)
class Draw:
    """One dated amount drawn on the budget."""

    day: date
    kind: str
    """'contract', 'building' or 'award'."""
    ref: str
    """The contract, building or award id."""
    amount_usd: Decimal
    what: str
    """How the amount was found, in words (e.g. 'committed spend', '1,000 GPUs × 10.5 USD × 8,760 h')."""


@dataclass(frozen=True, slots=True)
class BudgetConflict:
    """A day the draws break the budget: cumulative draws above the ceiling, or a draw outside the period."""

    day: date
    kind: str
    """'over_ceiling' (cumulative draws exceed the ceiling from this day) or 'outside_period'."""
    drawn_usd: Decimal
    """Cumulative draws on that day, USD."""
    over_usd: Decimal
    """By how much the ceiling is exceeded that day, USD (0 for 'outside_period')."""
    refs: tuple[str, ...]
    """The draws dated that day (ids)."""


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """Whether an amount fits the budget on a day, and the figures behind the answer."""

    ok: bool
    day: date
    cost_usd: Decimal
    drawn_usd: Decimal
    """The most drawn by any day from ``day`` to the budget's end (by ``day`` without a budget), USD."""
    ceiling_usd: Decimal | None
    reason: str


@dataclass(frozen=True, slots=True)
class BudgetReport:
    """The budget as plain figures: every draw, the total, headroom, what is beyond the initial envelope, conflicts.

    Without a budget in the fleet, ``initial_usd``, ``ceiling_usd``, ``start``, ``end``, ``headroom_usd`` and
    ``beyond_initial_usd`` are None and there are no conflicts.
    """

    initial_usd: Decimal | None
    ceiling_usd: Decimal | None
    start: date | None
    end: date | None
    draws: tuple[Draw, ...]
    drawn_usd: Decimal
    headroom_usd: Decimal | None
    """ceiling − drawn (negative when over)."""
    beyond_initial_usd: Decimal | None
    """max(0, drawn − initial)."""
    conflicts: tuple[BudgetConflict, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: money as decimal strings (every digit kept), days as ISO 8601."""

        def usd(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        def day(value: date | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "initial_usd": usd(self.initial_usd),
            "ceiling_usd": usd(self.ceiling_usd),
            "start": day(self.start),
            "end": day(self.end),
            "drawn_usd": str(self.drawn_usd),
            "headroom_usd": usd(self.headroom_usd),
            "beyond_initial_usd": usd(self.beyond_initial_usd),
            "draws": [
                {
                    "day": d.day.isoformat(),
                    "kind": d.kind,
                    "ref": d.ref,
                    "amount_usd": str(d.amount_usd),
                    "what": d.what,
                }
                for d in self.draws
            ],
            "conflicts": [
                {
                    "day": c.day.isoformat(),
                    "kind": c.kind,
                    "drawn_usd": str(c.drawn_usd),
                    "over_usd": str(c.over_usd),
                    "refs": list(c.refs),
                }
                for c in self.conflicts
            ],
        }


def fleet_draws(fleet: Fleet) -> list[Draw]:
    """The draws of a fleet's contracts and buildings (award contracts, ``award-*``, are left to the awards)."""
    draws: list[Draw] = []
    for c in fleet.contracts:
        if c.kind is ContractKind.COMMITMENT and c.committed_spend_usd is not None:
            draws.append(Draw(c.start, "contract", c.id, c.committed_spend_usd, "committed spend"))
        elif c.kind is ContractKind.RESERVED:
            if c.value_usd is not None:
                draws.append(Draw(c.start, "contract", c.id, c.value_usd, "contract value"))
            elif c.gpus is not None and c.price_per_gpu_hour_usd is not None:
                hours = ((c.end - c.start).days + 1) * HOURS_PER_DAY
                amount = c.gpus * c.price_per_gpu_hour_usd * hours
                what = f"{c.gpus:,} GPUs × {c.price_per_gpu_hour_usd} USD per GPU-hour × {hours:,} h"
                draws.append(Draw(c.start, "contract", c.id, amount, what))
    for b in fleet.buildings:
        draws.append(Draw(b.planned_energization, "building", b.id, b.capex_usd, "capital expenditure"))
    return draws


def award_draw(award: Award) -> Draw:
    """An award's draw: its full cost on its award day."""
    hours = ((award.end - award.start).days + 1) * HOURS_PER_DAY
    what = f"{award.gpus:,} GPUs × {award.price} USD per GPU-hour × {hours:,} h"
    return Draw(award.at.date(), "award", award.id, award.cost_usd, what)


class BudgetBook:
    """The draws on a fleet's budget: the fleet's contracts and buildings plus procurement awards.

    A fleet contract whose id is that of an award's contract (``award-<request id>``, added to the fleet after the
    award) is counted once, as the award.
    """

    def __init__(self, fleet: Fleet, awards: Iterable[Award] = ()) -> None:
        self.budget = fleet.budget
        self._fleet_draws = sorted(fleet_draws(fleet), key=lambda d: (d.day, d.kind, d.ref))
        self._awards: list[Draw] = []
        self._award_contracts: set[str] = set()
        self._rebuild()
        for award in awards:
            self.add_award(award)

    def _rebuild(self) -> None:
        kept = [d for d in self._fleet_draws if d.ref not in self._award_contracts or d.kind != "contract"]
        self._fixed = kept
        self._days = [d.day for d in kept]
        running = Decimal(0)
        self._prefix: list[Decimal] = []
        for d in kept:
            running += d.amount_usd
            self._prefix.append(running)

    def add_award(self, award: Award) -> None:
        """Count an award's cost from its award day."""
        self._awards.append(award_draw(award))
        contract = award_contract_id(award.request_id)
        if any(d.ref == contract for d in self._fleet_draws):
            self._award_contracts.add(contract)
            self._rebuild()

    def draws(self) -> list[Draw]:
        """Every draw, by day (then kind, then id)."""
        return sorted([*self._fixed, *self._awards], key=lambda d: (d.day, d.kind, d.ref))

    def drawn_by(self, day: date) -> Decimal:
        """The sum of draws dated on or before ``day``, USD."""
        i = bisect_right(self._days, day)
        fixed = self._prefix[i - 1] if i else Decimal(0)
        return fixed + sum((d.amount_usd for d in self._awards if d.day <= day), Decimal(0))

    def peak(self, day: date, end: date) -> tuple[date, Decimal]:
        """The day from ``day`` to ``end`` with the most drawn by it (the earliest such day), and that amount, USD."""
        drawn = self.drawn_by(day)
        best = (day, drawn)
        later = (d for d in self.draws() if day < d.day <= end)
        for when, todays in groupby(later, key=lambda d: d.day):
            drawn += sum((d.amount_usd for d in todays), Decimal(0))
            if drawn > best[1]:
                best = (when, drawn)
        return best

    def check(self, cost: Decimal, day: date) -> BudgetCheck:
        """Whether spending ``cost`` on ``day`` stays within the budget (see the module rule)."""
        b = self.budget
        if b is None:
            return BudgetCheck(True, day, cost, self.drawn_by(day), None, "no budget is tracked")
        if not b.start <= day <= b.end:
            reason = (
                f"{day.isoformat()} is outside the budget period {b.start.isoformat()} → {b.end.isoformat()}"
                f" (cost {_usd(cost)} USD)"
            )
            return BudgetCheck(False, day, cost, self.drawn_by(day), b.ceiling_usd, reason)
        when, drawn = self.peak(day, b.end)
        ok = drawn + cost <= b.ceiling_usd
        relation = "within" if ok else "over"
        later = "" if when == day else f" (the most on any day from {day.isoformat()} to {b.end.isoformat()})"
        reason = (
            f"drawn {_usd(drawn)} USD by {when.isoformat()}{later} + cost {_usd(cost)} USD = "
            f"{_usd(drawn + cost)} USD, {relation} the ceiling {_usd(b.ceiling_usd)} USD"
        )
        return BudgetCheck(ok, day, cost, drawn, b.ceiling_usd, reason)

    def report(self) -> BudgetReport:
        """Every draw, the total, headroom, what is beyond the initial envelope, and every conflict."""
        draws = self.draws()
        total = sum((d.amount_usd for d in draws), Decimal(0))
        b = self.budget
        if b is None:
            return BudgetReport(None, None, None, None, tuple(draws), total, None, None, ())
        conflicts: list[BudgetConflict] = []
        running = Decimal(0)
        by_day: dict[date, list[Draw]] = {}
        for d in draws:
            by_day.setdefault(d.day, []).append(d)
        for day in sorted(by_day):
            todays = by_day[day]
            running += sum((d.amount_usd for d in todays), Decimal(0))
            refs = tuple(d.ref for d in todays)
            if not b.start <= day <= b.end:
                conflicts.append(BudgetConflict(day, "outside_period", running, Decimal(0), refs))
            if running > b.ceiling_usd:
                conflicts.append(BudgetConflict(day, "over_ceiling", running, running - b.ceiling_usd, refs))
        return BudgetReport(
            b.initial_usd,
            b.ceiling_usd,
            b.start,
            b.end,
            tuple(draws),
            total,
            b.ceiling_usd - total,
            max(Decimal(0), total - b.initial_usd),
            tuple(conflicts),
        )


def _usd(value: Decimal) -> str:
    """An amount for a message, exact: thousands separated, and every decimal it holds (at least cents when it has
    any): 1,000,000 · 1,000,000.50 · 1,000,000.004."""
    if value == value.to_integral_value():
        return f"{value:,.0f}"
    exponent = value.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2  # not a number or infinite: never a budget figure
    return f"{value:,.{places}f}"
