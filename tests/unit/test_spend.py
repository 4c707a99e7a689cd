"""Spend to date: the SpendMeter (exact as the ledger charges), the exact instant a commitment is used up, and the
Driver API built on it (spent, waiting_gpus, spent_usd for a rebuild)."""

import math
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.domain import Cluster, ClusterStatus, Contract, Fleet, Provider, Queue, Site, Team
from stargate.engine import Driver, FleetIndex, JobTerms, get_policy
from stargate.engine.ledger import charge
from stargate.engine.spend import SpendMeter

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86_400.0


def commitment_fleet(committed: Decimal, price: str = "10", energy: str | None = None) -> Fleet:
    """One commitment cluster (16 GPUs at ``price`` USD per GPU-hour under commitment 'c1' for 2025) and one owned
    cluster of 16 GPUs (energy priced at ``energy`` USD per MWh, else unpriced)."""
    return Fleet(
        name="spend",
        as_of=EPOCH.date(),
        providers=[Provider(id="az", name="Az", kind="cloud"), Provider(id="own", name="Own", kind="owned")],
        sites=[
            Site(id="az-us", provider="az", region="us"),
            Site(id="home", provider="own", region="us", pue=1.2, energy_usd_per_mwh=energy),  # type: ignore[arg-type]
        ],
        clusters=[
            Cluster(
                id="az-h100",
                site="az-us",
                gpu_model="H100-SXM",
                gpus_per_node=8,
                nodes=2,
                price_per_gpu_hour_usd=Decimal("12.29"),
                contract="c1",
            ),
            Cluster(
                id="home-h100", site="home", gpu_model="H100-SXM", gpus_per_node=8, nodes=2, price_per_gpu_hour_usd=3
            ),
        ],
        contracts=[
            Contract(
                id="c1",
                provider="az",
                kind="commitment",
                start=date(2025, 1, 1),
                end=date(2025, 12, 31),
                price_per_gpu_hour_usd=Decimal(price),
                committed_spend_usd=committed,
            )
        ],
        teams=[Team(id="t", name="T")],
        queues=[Queue(id="q", team="t")],
    )


def job(jid: str, gpus: int = 8, at: float = 0.0, run_s: float = 30 * DAY, models: tuple[str, ...] = ()) -> JobTerms:
    return JobTerms(id=jid, queue="q", gpus=gpus, submit_s=at, estimate_s=run_s, gpu_models=models)


# -- the meter ----------------------------------------------------------------------------------------------------
def test_meter_charges_runs_as_the_ledger_does() -> None:
    m = SpendMeter({"k": Decimal("5")})
    m.start("a", "k", 8, Decimal("10"), 0.0)
    m.start("b", "k", 2, Decimal("2.5"), 1800.0)
    m.start("free", None, 8, Decimal("99"), 0.0)  # no contract: not metered
    assert m.spent("k", 3600.0) == Decimal("5") + Decimal("80") + Decimal("2.5")
    assert m.stop("a", 900.0) == charge(Decimal("10"), 8, 900.0) == Decimal("20")
    assert m.stop("a", 1000.0) is None  # stopped already
    assert m.spent("k", 3600.0) == Decimal("5") + Decimal("20") + Decimal("2.5")
    assert m.spent("other", 3600.0) == 0
    assert m.estimate("k", 3600.0) == 27.5


def test_exhausted_at_is_none_when_spend_does_not_grow_and_the_last_change_when_already_spent() -> None:
    m = SpendMeter({"k": Decimal("100")})
    assert m.exhausted_at("k", Decimal("200")) is None
    m.start("a", "k", 1, Decimal("1"), 50.0)
    assert m.exhausted_at("k", Decimal("100")) == 50.0


runs = st.lists(
    st.tuples(
        st.integers(1, 4096),  # GPUs
        st.decimals(Decimal("0.000001"), Decimal("100000"), places=6),  # USD per GPU-hour
        st.floats(0.0, 3e8, allow_nan=False),  # start, s
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(runs, st.decimals(Decimal("0.000001"), Decimal("1e12"), places=6), st.decimals(Decimal(0), Decimal("1e9")))
def test_exhausted_at_is_the_exact_first_instant(
    runs: list[tuple[int, Decimal, float]], committed: Decimal, closed: Decimal
) -> None:
    """spend < committed strictly before the instant, >= from it on (and at the next float)."""
    m = SpendMeter({"k": closed})
    for i, (g, p, t0) in enumerate(runs):
        m.start(f"j{i}", "k", g, p, t0)
    at = m.exhausted_at("k", committed)
    assert at is not None
    since = max(t0 for *_, t0 in runs)
    assert m.spent("k", at) >= committed
    assert m.spent("k", math.nextafter(at, math.inf)) >= committed
    assert m.reached("k", committed, at)
    if at > since:
        before = math.nextafter(at, -math.inf)
        assert m.spent("k", before) < committed
        assert not m.reached("k", committed, before)
    else:  # reached by the last start: spent already by then
        assert at == since


# -- the driver API -------------------------------------------------------------------------------------------------
def test_driver_spent_and_waiting_gpus() -> None:
    fleet = commitment_fleet(Decimal("1e9"))
    d = Driver(fleet, get_policy("stargate"), EPOCH)
    d.submit(job("a", 16))  # fills the commitment cluster (marginal 0 beats the owned cluster)
    d.submit(job("b", 16))  # fills the owned one
    d.submit(job("h", 8, models=("H100-SXM",)))
    d.submit(job("any", 8, at=100.0))
    res = d.decide(100.0)
    assert {(s.job_id, s.cluster_id, s.contract_id) for s in res.starts} == {
        ("a", "az-h100", "c1"),
        ("b", "home-h100", None),
    }
    assert d.waiting_gpus(200.0, 150.0) == {"H100-SXM": 8}  # 'any' has waited 100 s only
    assert d.waiting_gpus(200.0, 0.0) == {"H100-SXM": 8, "*": 8}
    assert d.spent("c1", 3700.0) == charge(Decimal("10"), 16, 3600.0) == Decimal("160")
    d.finish("a", 7300.0, completed=True)
    assert d.spent("c1", 1e7) == Decimal("320")  # closed after 7,200 s of running
    res = d.decide(7300.0)
    assert {s.job_id for s in res.starts} == {"h", "any"}
    assert d.waiting_gpus(7300.0, 0.0) == {}


def test_a_stopped_job_waits_from_its_stop_and_its_run_is_closed() -> None:
    fleet = commitment_fleet(Decimal("1e9"))
    d = Driver(fleet, get_policy("stargate"), EPOCH)
    d.submit(job("a", 16))
    d.submit(job("b", 16))
    d.decide(0.0)
    assert d.where["a"] == ("az-h100", tuple(range(16)))
    assert d.waiting_gpus(10 * DAY, 0.0) == {}
    d.set_cluster_status("az-h100", ClusterStatus.DOWN, DAY)
    d.decide(DAY)  # the owned cluster is full: 'a' waits
    assert d.where["a"] is None
    assert d.waiting_gpus(DAY + 10.0, 5.0) == {"*": 16}
    assert d.waiting_gpus(DAY + 10.0, 11.0) == {}
    assert d.spent("c1", 5 * DAY) == charge(Decimal("10"), 16, DAY)


def test_a_rebuilt_driver_continues_where_the_last_left() -> None:
    """spent_usd (closed runs) + the running runs restored from their start = the first driver's spend, to the
    micro-dollar, and the commitment runs out at the same instant."""
    committed = Decimal("100000")
    fleet = commitment_fleet(committed)
    policy = get_policy("stargate")
    a = Driver(fleet, policy, EPOCH)
    a.submit(job("one", 8, run_s=3 * DAY))
    a.submit(job("two", 8, run_s=90 * DAY))
    a.decide(0.0)
    a.finish("one", 2.5 * DAY + 0.123, completed=True)
    closed = {"c1": charge(Decimal("10"), 8, 2.5 * DAY + 0.123)}
    assert a.meter.closed_usd() == closed
    at = 3 * DAY + 17.5
    where = a.where["two"]
    assert where is not None
    b, lost = Driver.rebuilt(
        fleet, policy, EPOCH, [(job("two", 8, run_s=90 * DAY), where, 0.0)], [], at, spent_usd=closed
    )
    assert lost == []
    for t in (at, 10 * DAY, 40 * DAY + 0.5):
        assert b.spent("c1", t) == a.spent("c1", t)
    assert b.meter.exhausted_at("c1", committed) == a.meter.exhausted_at("c1", committed)
    first, second = a.decide(at), b.decide(at)
    win = a.meter.window("c1", committed)  # far: woken at a lower bound, then at the instant (see test_marginal)
    assert win is not None and first.next_wakeup_s == second.next_wakeup_s == win[0]


def test_restored_runs_are_metered_at_the_price_charged_when_they_started() -> None:
    fleet = commitment_fleet(Decimal("1e9"))
    index = FleetIndex.from_fleet(fleet, EPOCH)
    assert index.charge_terms(index.cluster_ix["az-h100"], 0.0) == (Decimal("10"), "c1")
    assert index.charge_terms(index.cluster_ix["az-h100"], 400 * DAY) == (Decimal("12.29"), None)
    assert index.charge_terms(index.cluster_ix["home-h100"], 0.0) == (Decimal("3"), None)
