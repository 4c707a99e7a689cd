"""Review of the budget rule's reason (stargate.engine.budget.BudgetCheck.reason, the text of every ``over_budget``
and ``overridden`` event): a defect found by attacking it, now fixed.

Costs and ceilings are kept to the micro-dollar (six decimal places), and the reason rounded every figure to cents: a
cost a fraction of a cent over the ceiling read as equal to it, and the event said "over" beside figures that were
not. Each figure now shows every decimal it holds.
"""

import re
from datetime import date
from decimal import Decimal

from stargate.domain import Budget, Fleet, Provider, ProviderKind, Site
from stargate.engine import BudgetBook

CEILING = Decimal(1_000_000)
COST = Decimal("1000000.004")
"""A cost need not be whole cents: GPUs × a price with six decimal places × hours, summed over awards."""


def _book() -> BudgetBook:
    fleet = Fleet(
        name="money",
        providers=[Provider(id="cloud", name="cloud", kind=ProviderKind.CLOUD)],
        sites=[Site(id="cloud-us", provider="cloud", region="us")],
        budget=Budget(initial_usd=CEILING, ceiling_usd=CEILING, start=date(2026, 1, 1), end=date(2026, 12, 31)),
    )
    return BudgetBook(fleet)


def _figures(reason: str) -> dict[str, Decimal]:
    """The USD figures the reason names: drawn, cost, the sum and the ceiling."""
    pattern = r"drawn ([\d,.]+) USD .*\+ cost ([\d,.]+) USD = ([\d,.]+) USD, (?:within|over) the ceiling ([\d,.]+) USD"
    found = re.fullmatch(pattern, reason)
    assert found is not None, reason
    names = ("drawn", "cost", "sum", "ceiling")
    return {k: Decimal(v.replace(",", "")) for k, v in zip(names, found.groups(), strict=True)}


def test_the_check_itself_is_exact() -> None:
    check = _book().check(COST, date(2026, 6, 1))
    assert not check.ok and check.cost_usd == COST and check.drawn_usd == 0


def test_an_over_budget_reason_names_the_exact_cost_and_a_sum_above_the_ceiling() -> None:
    check = _book().check(COST, date(2026, 6, 1))
    shown = _figures(check.reason)
    assert shown["cost"] == COST, check.reason
    assert shown["sum"] > shown["ceiling"], check.reason  # "over" beside figures that say so
