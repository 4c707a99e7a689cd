"""The market step's search: the cheapest feasible quote for a request on a day, and which clauses keep providers
out (exclusivity). Quotes are kept per GPU model sorted by price, so a decision reads quotes only up to the first
price that cannot win, not every quote."""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from stargate.domain import Contract
from stargate.domain.limits import MAX_USD
from stargate.engine.procurement_types import Quote

HOURS_PER_DAY = 24


def whole_nodes(gpus: int, gpus_per_node: int) -> int:
    """``gpus`` rounded up to whole nodes of ``gpus_per_node``, GPUs."""
    return -(-gpus // gpus_per_node) * gpus_per_node


def term_cost(gpus: int, price: Decimal, term_days: int) -> Decimal:
    """gpus × price × term hours, USD, exactly."""
    return gpus * price * (term_days * HOURS_PER_DAY)


@dataclass(frozen=True, slots=True)
class Choice:
    """The winning quote of a market step and the terms it gives the request."""

    quote: Quote
    start: date
    gpus: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class Exclusion:
    """An active exclusivity clause: only ``provider`` may sell GPUs in scope until ``until``."""

    contract_id: str
    provider: str
    gpu_models: frozenset[str]
    until: date

    def keeps_out(self, provider: str, gpu_model: str, day: date) -> bool:
        """True when this clause bars ``provider`` from selling ``gpu_model`` on ``day``."""
        return provider != self.provider and day <= self.until and (not self.gpu_models or gpu_model in self.gpu_models)

    def words(self) -> str:
        """The clause, for an event's reason."""
        scope = ", ".join(sorted(self.gpu_models)) or "all GPU models"
        return (
            f"exclusivity of contract '{self.contract_id}' ({self.provider}, {scope}, until {self.until.isoformat()})"
        )


def exclusions(contracts: list[Contract]) -> list[Exclusion]:
    """Every exclusivity clause of ``contracts``, by contract id."""
    return [
        Exclusion(c.id, c.provider, frozenset(c.exclusivity.gpu_models), c.exclusivity.until)
        for c in sorted(contracts, key=lambda c: c.id)
        if c.exclusivity is not None
    ]


def excluded_by(excl: list[Exclusion], provider: str, gpu_model: str, day: date) -> Exclusion | None:
    """The first clause keeping ``provider`` out of ``gpu_model`` on ``day``, or None."""
    for e in excl:
        if e.keeps_out(provider, gpu_model, day):
            return e
    return None


def quote_start(quote: Quote, request_start: date, day: date) -> date:
    """When capacity from ``quote`` can start for a request made on ``day``: max(request start, day + lead time)."""
    return max(request_start, day + timedelta(days=quote.lead_time_days))


def valid_on(quote: Quote, day: date) -> bool:
    """True when ``quote`` may be taken on ``day``."""
    return quote.valid_from <= day and (quote.valid_until is None or day <= quote.valid_until)


class QuoteIndex:
    """Quotes per GPU model, sorted by (price, provider, id)."""

    def __init__(self) -> None:
        self._by_model: dict[str, list[tuple[Decimal, str, str, Quote]]] = {}

    def add(self, quote: Quote) -> None:
        """Index ``quote``."""
        insort(self._by_model.setdefault(quote.gpu_model, []), (quote.price, quote.provider, quote.id, quote))

    def remove(self, quote: Quote) -> None:
        """Forget ``quote``."""
        rows = self._by_model.get(quote.gpu_model, [])
        self._by_model[quote.gpu_model] = [r for r in rows if r[2] != quote.id]

    def has_model(self, gpu_model: str) -> bool:
        """True when any quote for ``gpu_model`` is known (valid or not)."""
        return bool(self._by_model.get(gpu_model))

    def cheapest(
        self,
        gpu_model: str,
        gpus: int,
        request_start: date,
        term_days: int,
        day: date,
        excl: list[Exclusion],
    ) -> tuple[Choice | None, list[tuple[Quote, Exclusion]]]:
        """The winning quote for a request on ``day`` (cheapest price; ties: earlier start, provider id, quote id),
        and the quotes that would have been feasible but for an exclusivity clause (with the clause), in price order.

        Feasible: valid on the day, for the model, ``max_gpus`` null or at least the GPUs (rounded up to whole
        nodes), cost at most 10^14 USD, provider not kept out by an active exclusivity clause.
        """
        best: Choice | None = None
        best_key: tuple[Decimal, date, str, str] | None = None
        skipped: list[tuple[Quote, Exclusion]] = []
        for price, provider, qid, q in self._by_model.get(gpu_model, ()):
            if best_key is not None and price > best_key[0]:
                break
            if not valid_on(q, day):
                continue
            n = whole_nodes(gpus, q.gpus_per_node)
            if q.max_gpus is not None and q.max_gpus < n:
                continue
            cost = term_cost(n, price, term_days)
            if cost > MAX_USD:
                continue
            clause = excluded_by(excl, provider, gpu_model, day)
            if clause is not None:
                skipped.append((q, clause))
                continue
            start = quote_start(q, request_start, day)
            key = (price, start, provider, qid)
            if best_key is None or key < best_key:
                best, best_key = Choice(q, start, n, cost), key
        return best, skipped

    def naive_cheapest(
        self,
        gpu_model: str,
        gpus: int,
        request_start: date,
        term_days: int,
        day: date,
        excl: list[Exclusion],
    ) -> Choice | None:
        """The same answer as :meth:`cheapest` by filtering and sorting every quote (the benchmark's baseline)."""
        rows = [r[3] for rows in self._by_model.values() for r in rows]
        feasible = []
        for q in rows:
            n = whole_nodes(gpus, q.gpus_per_node)
            if (
                q.gpu_model == gpu_model
                and valid_on(q, day)
                and (q.max_gpus is None or q.max_gpus >= n)
                and term_cost(n, q.price, term_days) <= MAX_USD
                and excluded_by(excl, q.provider, gpu_model, day) is None
            ):
                feasible.append((q.price, quote_start(q, request_start, day), q.provider, q.id, q, n))
        if not feasible:
            return None
        feasible.sort(key=lambda r: r[:4])
        price, start, _, _, q, n = feasible[0]
        return Choice(q, start, n, term_cost(n, price, term_days))
