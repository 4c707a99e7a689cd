"""The cost ledger: exact charges, daily split at UTC midnights, roll-ups that sum to the cent (to the µUSD)."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.engine.ledger import QUANTUM, ROLLUP_KEYS, Ledger, LedgerError, RunCharge, charge

T0 = datetime(2027, 1, 1, tzinfo=UTC)
D = Decimal


def run(
    run_id: str = "r1",
    *,
    start: datetime = T0,
    hours: float = 1.0,
    gpus: int = 8,
    price: str = "10.50",
    list_price: str = "12.00",
    contract: str | None = "oracle-2027",
    team: str = "research",
) -> RunCharge:
    return RunCharge(
        run_id=run_id,
        job_id=f"job-{run_id}",
        queue="training",
        team=team,
        provider="oracle",
        contract=contract,
        cluster="abilene-gb200",
        region="us-central",
        gpu_model="GB200",
        gpus=gpus,
        start=start,
        end=start + timedelta(hours=hours),
        price=D(price),
        list_price=D(list_price),
    )


def _half_even(x: Fraction) -> int:
    q, r = divmod(x.numerator, x.denominator)
    if 2 * r > x.denominator or (2 * r == x.denominator and q % 2):
        q += 1
    return q


def reference_charge(price: Decimal, gpus: int, ms: int) -> Decimal:
    micro = _half_even(Fraction(price) * gpus * Fraction(ms, 1000) / 3600 * 1_000_000)
    return D(micro) * QUANTUM


def test_charge_is_exact_and_quantised() -> None:
    assert charge(D("10.50"), 8, 3600.0) == D("84")
    assert charge(D("10.50"), 8, 3600.0).as_tuple().exponent == -6
    assert charge(D("2.3"), 3, D("1")) == D("0.001917")  # 0.0019166… rounds up
    assert charge(D("1"), 1, D("0.0018")) == D("0")  # exactly 0.5 µUSD: half to even → 0
    assert charge(D("1"), 1, D("0.0054")) == D("0.000002")  # exactly 1.5 µUSD: half to even → 2
    assert charge(D("1"), 1, 0.0015) == D("0.000001")  # float 1.5 ms → 2 ms (half to even) → 0.56 µUSD → 1
    assert charge(D("1"), 1, 0.0025) == D("0.000001")  # float 2.5 ms → 2 ms
    assert charge(D("0"), 100, 1e6) == D("0")


def test_charge_rejects_bad_input() -> None:
    with pytest.raises(LedgerError, match="price_per_gpu_hour"):
        charge(D("-1"), 1, 1.0)
    with pytest.raises(LedgerError, match="price_per_gpu_hour"):
        charge(D("NaN"), 1, 1.0)
    with pytest.raises(LedgerError, match="seconds"):
        charge(D("1"), 1, float("inf"))


@given(
    st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
    st.integers(0, 200_000),
    st.integers(0, 10**10),
)
def test_charge_matches_a_rational_reference(price: Decimal, gpus: int, ms: int) -> None:
    assert charge(price, gpus, D(ms) / 1000) == reference_charge(price, gpus, ms)
    assert charge(price, gpus, ms / 1000) == reference_charge(price, gpus, ms)


def test_a_run_across_midnights_splits_into_days_that_sum_to_its_charge() -> None:
    r = run(start=T0 + timedelta(hours=22), hours=27.0001, gpus=3, price="2.3")
    items = list(Ledger([r]).items())
    assert [i.day.isoformat() for i in items] == ["2027-01-01", "2027-01-02", "2027-01-03"]
    assert items[0].start == r.start and items[0].end == datetime(2027, 1, 2, tzinfo=UTC)
    assert items[1].start == datetime(2027, 1, 2, tzinfo=UTC) and items[2].end == r.end
    assert [i.gpu_hours for i in items[:2]] == [D("6"), D("72")]
    assert [i.cost for i in items[:2]] == [D("13.8"), D("165.6")]
    assert [i.list_cost for i in items[:2]] == [D("72"), D("864")]
    assert sum(i.cost for i in items) == charge(D("2.3"), 3, D(27.0001 * 3600).quantize(D("0.001")))


def test_a_run_ending_at_midnight_has_no_empty_next_day_and_an_empty_run_one_zero_item() -> None:
    items = list(Ledger([run(start=T0 + timedelta(hours=23), hours=1)]).items())
    assert [(i.day.isoformat(), i.cost) for i in items] == [("2027-01-01", D("84"))]
    empty = list(Ledger([run(hours=0)]).items())
    assert [(i.day.isoformat(), i.cost, i.gpu_hours) for i in empty] == [("2027-01-01", D("0"), D("0"))]


def test_instants_in_other_zones_split_at_utc_midnight() -> None:
    plus2 = timezone(timedelta(hours=2))
    r = run(start=datetime(2027, 1, 2, 1, 0, tzinfo=plus2), hours=2)  # 23:00 UTC on 1 January
    items = list(Ledger([r]).items())
    assert [(i.day.isoformat(), i.gpu_hours) for i in items] == [("2027-01-01", D("8")), ("2027-01-02", D("8"))]
    assert items[1].start.tzinfo == UTC


def test_rollups_by_every_key() -> None:
    runs = [
        run("a", hours=2, team="research"),
        run("b", hours=1, team="product", contract=None),
        run("c", start=T0 + timedelta(hours=23), hours=2, team="research"),
    ]
    ledger = Ledger(runs)
    assert ledger.total() == D("420")
    assert ledger.by("team") == {"product": D("84"), "research": D("336")}
    assert ledger.by("contract") == {"": D("84"), "oracle-2027": D("336")}
    assert ledger.by("day") == {"2027-01-01": D("336"), "2027-01-02": D("84")}
    assert ledger.by("run") == {"a": D("168"), "b": D("84"), "c": D("168")}
    assert list(ledger.by("job")) == ["job-a", "job-b", "job-c"]
    for key in ROLLUP_KEYS:
        assert sum(ledger.by(key).values()) == ledger.total()
    with pytest.raises(LedgerError, match="expected one of run, job"):
        ledger.by("colour")


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"start": datetime(2027, 1, 1)}, "runs[1].start"),
        ({"end": T0 - timedelta(seconds=1)}, "runs[1].end"),
        ({"gpus": -1}, "runs[1].gpus"),
        ({"price": D("-0.01")}, "runs[1].price"),
        ({"list_price": D("Infinity")}, "runs[1].list_price"),
        ({"price": 10.5}, "runs[1].price"),
        ({"run_id": "ok"}, "runs[1].run_id"),
    ],
)
def test_a_bad_run_is_named(bad: dict[str, object], field: str) -> None:
    good = run("ok")
    fields = {name: getattr(good, name) for name in RunCharge.__dataclass_fields__}
    fields.update({"run_id": "bad", **bad})
    with pytest.raises(LedgerError) as err:
        Ledger([good, RunCharge(**fields)])  # type: ignore[arg-type]
    assert err.value.field == field


runs_st = st.lists(
    st.tuples(
        st.integers(0, 5 * 86_400_000_000),  # start, µs after T0
        st.integers(0, 4 * 86_400_000_000),  # duration, µs
        st.integers(0, 100_000),  # GPUs
        st.decimals(min_value=0, max_value=100, places=5, allow_nan=False, allow_infinity=False),
        st.sampled_from(["c1", "c2", None]),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(runs_st)
def test_the_ledger_sums_to_contract_spend_and_daily_pieces_to_each_run(specs: list) -> None:  # type: ignore[type-arg]
    runs = [
        RunCharge(
            run_id=f"r{i}",
            job_id=f"j{i % 4}",
            queue="q",
            team=f"t{i % 3}",
            provider="p",
            contract=contract,
            cluster="c",
            region="r",
            gpu_model="H100",
            gpus=gpus,
            start=T0 + timedelta(microseconds=s),
            end=T0 + timedelta(microseconds=s + dur),
            price=price,
            list_price=price * 2,
        )
        for i, (s, dur, gpus, price, contract) in enumerate(specs)
    ]
    ledger = Ledger(runs)
    want: dict[str, Decimal] = defaultdict(Decimal)
    per_run: dict[str, Decimal] = {}
    for r in runs:
        ms = _half_even(Fraction((r.end - r.start) // timedelta(microseconds=1), 1000))
        per_run[r.run_id] = charge(r.price, r.gpus, D(ms) / 1000)
        want[r.contract or ""] += per_run[r.run_id]
    assert ledger.by("contract") == {k: want[k] for k in sorted(want)}
    got: dict[str, Decimal] = defaultdict(Decimal)
    for item in ledger.items():
        got[item.run_id] += item.cost
        r = item.run
        assert item.start.date() == item.day and r.start <= item.start <= item.end <= r.end
        assert item.end <= datetime.combine(item.day + timedelta(days=1), datetime.min.time(), UTC)
        exact = (
            Fraction(r.price) * r.gpus * Fraction((item.end - item.start) // timedelta(microseconds=1), 3600 * 10**6)
        )
        assert abs(Fraction(item.cost) - exact) <= Fraction(r.price) * r.gpus / 3_600_000 + Fraction(1, 10**6)
    assert got == per_run
    for key in ROLLUP_KEYS:
        assert sum(ledger.by(key).values(), D(0)) == ledger.total() == sum(per_run.values(), D(0))
