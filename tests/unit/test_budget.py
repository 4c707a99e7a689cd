"""The budget rule: dated draws of contracts, buildings and awards; drawn_by; the within-budget check; the report
with headroom, what is beyond the initial envelope, and conflicts (examples/stargate-2025 plus Oracle's 300 B USD
commitment from 2027)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.domain import Budget, Building, Contract, ContractKind, Fleet, Provider, ProviderKind, Site
from stargate.engine import BudgetBook
from stargate.engine.procurement_types import Award
from stargate.fleetfile import load_fleet

EXAMPLE = Path("examples/stargate-2025")
B = 1_000_000_000


def _contract(cid: str, kind: ContractKind, start: date, **kw: object) -> Contract:
    return Contract.model_validate(
        {"id": cid, "provider": "cloud", "kind": kind, "start": start, "end": date(2027, 12, 31), **kw}
    )


def _fleet(*contracts: Contract, budget: Budget | None = None, capex: Decimal | None = None) -> Fleet:
    buildings = []
    if capex is not None:
        buildings.append(
            Building(
                id="hall",
                site="campus",
                floor_area_sq_ft=1000,
                it_power_mw=10.0,
                gpus=1000,
                gpu_model="GB200",
                capex_usd=capex,
                planned_energization=date(2025, 9, 30),
                actual_energization=date(2025, 6, 1),
            )
        )
    return Fleet(
        name="money",
        providers=[
            Provider(id="cloud", name="cloud", kind=ProviderKind.CLOUD),
            Provider(id="own", name="own", kind=ProviderKind.OWNED),
        ],
        sites=[Site(id="cloud-us", provider="cloud", region="us"), Site(id="campus", provider="own", region="tx")],
        buildings=buildings,
        contracts=list(contracts),
        budget=budget,
    )


def _award(rid: str, at: datetime, cost: Decimal) -> Award:
    return Award(
        id=f"award-{rid}",
        request_id=rid,
        provider="cloud",
        site="cloud-us",
        gpu_model="GB200",
        gpus=8,
        gpus_per_node=8,
        price=Decimal(1),
        start=at.date(),
        end=at.date(),
        cost_usd=cost,
        via="market",
        quote_id="q",
        at=at,
        override_reason=None,
        override_by=None,
    )


BUDGET = Budget(initial_usd=Decimal(100), ceiling_usd=Decimal(1000), start=date(2025, 1, 1), end=date(2026, 12, 31))


def test_each_kind_draws_on_its_day() -> None:
    fleet = _fleet(
        _contract("commit", ContractKind.COMMITMENT, date(2025, 2, 1), committed_spend_usd=Decimal(300)),
        _contract("valued", ContractKind.RESERVED, date(2025, 3, 1), gpus=8, price_per_gpu_hour_usd=1, value_usd=50),
        _contract(
            "priced",
            ContractKind.RESERVED,
            date(2027, 12, 30),  # two days: 8 GPUs × 0.5 USD × 48 h = 192 USD
            gpus=8,
            price_per_gpu_hour_usd=Decimal("0.5"),
        ),
        _contract("od", ContractKind.ON_DEMAND, date(2025, 1, 1), price_per_gpu_hour_usd=3),
        _contract("spot", ContractKind.SPOT, date(2025, 1, 1), price_per_gpu_hour_usd=1),
        budget=BUDGET,
        capex=Decimal("123.45"),
    )
    book = BudgetBook(fleet)
    assert [(d.day, d.ref, d.amount_usd) for d in book.draws()] == [
        (date(2025, 2, 1), "commit", Decimal(300)),
        (date(2025, 3, 1), "valued", Decimal(50)),
        (date(2025, 9, 30), "hall", Decimal("123.45")),  # the planned day, not the actual one
        (date(2027, 12, 30), "priced", Decimal(192)),
    ]
    assert book.drawn_by(date(2025, 1, 31)) == 0
    assert book.drawn_by(date(2025, 2, 1)) == 300
    assert book.drawn_by(date(2025, 9, 29)) == 350 and book.drawn_by(date(2025, 9, 30)) == Decimal("473.45")


def test_the_check_is_within_iff_inside_the_period_and_at_most_the_ceiling() -> None:
    book = BudgetBook(
        _fleet(_contract("c", ContractKind.COMMITMENT, date(2025, 2, 1), committed_spend_usd=600), budget=BUDGET)
    )
    assert book.check(Decimal(400), date(2025, 2, 1)).ok  # exactly the ceiling
    over = book.check(Decimal("400.000001"), date(2025, 2, 1))
    assert not over.ok and over.drawn_usd == 600 and "over the ceiling 1,000 USD" in over.reason
    before = book.check(Decimal(1000), date(2025, 1, 31))  # nothing is drawn yet, but the commitment is from 02-01
    assert not before.ok and before.drawn_usd == 600, before
    assert "by 2025-02-01 (the most on any day from 2025-01-31 to 2026-12-31)" in before.reason, before.reason
    assert book.check(Decimal(400), date(2025, 1, 31)).ok
    outside = book.check(Decimal(1), date(2027, 1, 1))
    assert not outside.ok and "outside the budget period" in outside.reason
    assert BudgetBook(_fleet()).check(Decimal(10**14), date(2025, 1, 1)).ok  # no budget tracked


def test_awards_draw_on_their_award_day_and_count_once() -> None:
    award = _award("r1", datetime(2025, 5, 5, 23, tzinfo=UTC), Decimal(250))
    book = BudgetBook(_fleet(budget=BUDGET), [award])
    assert book.drawn_by(date(2025, 5, 4)) == 0 and book.drawn_by(date(2025, 5, 5)) == 250
    as_contract = _contract("award-r1", ContractKind.RESERVED, date(2025, 6, 1), gpus=8, price_per_gpu_hour_usd=1,
                            value_usd=250)  # fmt: skip
    both = BudgetBook(_fleet(as_contract, budget=BUDGET), [award])
    assert both.report().drawn_usd == 250 and [d.kind for d in both.draws()] == ["award"]


def test_the_report_gives_headroom_beyond_initial_and_conflicts() -> None:
    fleet = _fleet(
        _contract("a", ContractKind.COMMITMENT, date(2025, 2, 1), committed_spend_usd=600),
        _contract("b", ContractKind.COMMITMENT, date(2025, 8, 1), committed_spend_usd=500),
        _contract("c", ContractKind.COMMITMENT, date(2027, 1, 1), committed_spend_usd=1),
        budget=BUDGET,
    )
    report = BudgetBook(fleet).report()
    assert report.drawn_usd == 1101 and report.headroom_usd == -101 and report.beyond_initial_usd == 1001
    assert [(c.day, c.kind, c.over_usd, c.refs) for c in report.conflicts] == [
        (date(2025, 8, 1), "over_ceiling", Decimal(100), ("b",)),
        (date(2027, 1, 1), "outside_period", Decimal(0), ("c",)),
        (date(2027, 1, 1), "over_ceiling", Decimal(101), ("c",)),
    ]
    plain = report.to_dict()
    assert json.loads(json.dumps(plain)) == plain and plain["headroom_usd"] == "-101"
    assert plain["conflicts"][0] == {
        "day": "2025-08-01", "kind": "over_ceiling", "drawn_usd": "1100", "over_usd": "100", "refs": ["b"]
    }  # fmt: skip


def test_stargate_2025_with_oracles_300_billion_from_2027_shows_the_conflict() -> None:
    base = load_fleet(EXAMPLE)
    kept = [c for c in base.contracts if not c.id.startswith("oracle")]
    before = BudgetBook(base.model_copy(update={"contracts": kept})).report()
    # 10 B (Azure 2025-01) + 250 B (Azure 2025-10) + 11.9 + 4 + 6.5 B (CoreWeave) + 33,876,799,999.98 (8 buildings)
    assert before.drawn_usd == Decimal("316276799999.98") and before.conflicts == ()
    assert before.headroom_usd == Decimal("183723200000.02")
    assert before.beyond_initial_usd == Decimal("216276799999.98")
    oracle = Contract(
        id="oracle-2027",
        provider="oci",
        kind=ContractKind.COMMITMENT,
        start=date(2027, 1, 1),
        end=date(2031, 12, 31),
        committed_spend_usd=Decimal(300 * B),
    )
    report = BudgetBook(base.model_copy(update={"contracts": [*kept, oracle]})).report()
    assert [(c.day, c.kind, c.over_usd, c.refs) for c in report.conflicts] == [
        (date(2027, 1, 1), "over_ceiling", Decimal("116276799999.98"), ("oracle-2027",))
    ]
    assert report.headroom_usd == Decimal("-116276799999.98")


@settings(max_examples=200, deadline=None)
@given(
    commitments=st.lists(
        st.tuples(st.integers(0, 729), st.integers(0, 600)), min_size=0, max_size=6
    ),  # (start day after 2025-01-01, committed USD)
    awards=st.lists(st.tuples(st.integers(0, 729), st.integers(0, 600)), max_size=4),
    offset=st.integers(0, 729),
    cost=st.integers(0, 1200),
)
def test_an_award_is_within_budget_iff_no_day_from_it_to_the_end_passes_the_ceiling(
    commitments: list[tuple[int, int]], awards: list[tuple[int, int]], offset: int, cost: int
) -> None:
    """Against the rule itself, day by day: the check never lets an award through that takes any later day's
    cumulative draws past the ceiling, and never refuses one that does not."""
    first = date(2025, 1, 1)
    contracts = [
        _contract(f"c{i}", ContractKind.COMMITMENT, first + timedelta(days=start), committed_spend_usd=amount)
        for i, (start, amount) in enumerate(commitments)
    ]
    made = [
        _award(f"r{i}", datetime.combine(first + timedelta(days=d), datetime.min.time(), UTC), Decimal(amount))
        for i, (d, amount) in enumerate(awards)
    ]
    book = BudgetBook(_fleet(*contracts, budget=BUDGET), made)
    day = first + timedelta(days=offset)
    every_day = [day + timedelta(days=n) for n in range((BUDGET.end - day).days + 1)]
    fits = all(book.drawn_by(d) + cost <= BUDGET.ceiling_usd for d in every_day)
    check = book.check(Decimal(cost), day)
    assert check.ok is fits, check.reason
    assert check.drawn_usd == max(book.drawn_by(d) for d in every_day)
