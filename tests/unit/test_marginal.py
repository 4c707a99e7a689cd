"""Marginal cost that tells the truth: owned capacity costs its energy, a commitment nothing until it is used up
and its price from that exact instant, and a commitment heading for a shortfall is preferred (use it or lose it)."""

import math
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stargate.domain import Cluster, Contract, Fleet, GpuModel, Provider, Queue, Site, Team
from stargate.engine import Driver, FleetIndex, JobRequest, JobTerms, Scheduler, get_policy
from stargate.engine.index import TIER_WEIGHT
from stargate.engine.spend import SpendMeter

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86_400.0


def _cluster(cid: str, site: str, nodes: int = 2, price: str = "3", model: str = "H100-SXM", **kw: object) -> Cluster:
    return Cluster(
        id=cid,
        site=site,
        gpu_model=model,
        gpus_per_node=8,
        nodes=nodes,
        price_per_gpu_hour_usd=Decimal(price),
        **kw,  # type: ignore[arg-type]
    )


def _commitment(kid: str, end: date, committed: str, price: str = "10") -> Contract:
    return Contract(
        id=kid,
        provider="az",
        kind="commitment",
        start=date(2025, 1, 1),
        end=end,
        price_per_gpu_hour_usd=Decimal(price),
        committed_spend_usd=Decimal(committed),
    )


def _fleet(clusters: list[Cluster], contracts: list[Contract], energy: str | None = "55", pue: float = 1.2) -> Fleet:
    return Fleet(
        name="marginal",
        as_of=EPOCH.date(),
        gpu_models=[GpuModel(name="X1", bf16_dense_tflops=100.0, hbm_gib=80, tdp_w=1234.5)],
        providers=[Provider(id="az", name="Az", kind="cloud"), Provider(id="own", name="Own", kind="owned")],
        sites=[
            Site(id="az-us", provider="az", region="us"),
            Site(id="home", provider="own", region="us", pue=pue, energy_usd_per_mwh=energy),  # type: ignore[arg-type]
            Site(id="dark", provider="own", region="us"),
        ],
        clusters=clusters,
        contracts=contracts,
        teams=[Team(id="t", name="T")],
        queues=[Queue(id="q", team="t")],
    )


# -- owned capacity: its energy ---------------------------------------------------------------------------------------
def test_owned_energy_price_is_tdp_times_pue_times_energy_price() -> None:
    fleet = _fleet(
        [
            _cluster("home-h100", "home"),
            _cluster("home-x1", "home", model="X1"),
            _cluster("dark-h100", "dark", price="3.5"),
            _cluster("rented", "az-us", price="2"),
        ],
        [],
        energy="61.37",
        pue=1.25,
    )
    idx = FleetIndex.from_fleet(fleet, EPOCH)
    # 700 W × 1.25 × 61.37 USD/MWh / 1e6 = 0.05369875 → 0.053699 USD per GPU-hour (to the micro-dollar)
    # 1234.5 W × 1.25 × 61.37 / 1e6 = 0.09470158 → 0.094702; the site without an energy price: not priced
    assert idx.energy_usd == [Decimal("0.053699"), Decimal("0.094702"), None, None]
    charged, burnt, rank = idx.prices(0.0)
    assert charged == [0.053699, 0.094702, 3.5, 2.0]  # unpriced owned capacity keeps its list price in the ledger
    assert rank.tolist() == [0.053699, 0.094702, 0.0, TIER_WEIGHT + 2.0]  # capex is sunk: 0 at the margin
    assert burnt == [None, None, None, None]
    s = Scheduler(idx, get_policy("stargate"))
    s.submit(_req("j"))
    (start,) = s.cycle(0.0).starts
    assert (start.cluster_id, start.price_usd_per_gpu_hour) == ("dark-h100", 3.5)  # marginal 0 < 0.053699


def _req(jid: str, gpus: int = 16, at: float = 0.0) -> JobRequest:
    return JobRequest(id=jid, queue="q", gpus=gpus, gpu_models=("H100-SXM",), submit_s=at, duration_s=30 * DAY)


def test_the_energy_figure_for_a_built_in_gpu() -> None:
    fleet = _fleet([_cluster("home-h100", "home")], [], energy="55", pue=1.2)
    idx = FleetIndex.from_fleet(fleet, EPOCH)
    assert idx.energy_usd == [Decimal("0.0462")]  # 700 W × 1.2 × 55 USD/MWh / 1e6
    d = Driver(fleet, get_policy("stargate"), EPOCH)
    d.submit(JobTerms(id="j", queue="q", gpus=8, submit_s=0.0, estimate_s=3600.0))
    (start,) = d.decide(0.0).starts
    assert start.price_usd_per_gpu_hour == 0.0462


# -- a commitment: 0 until used up, its price from that instant ------------------------------------------------------
runs = st.lists(st.tuples(st.integers(1, 2048), st.floats(0.0, 200 * DAY, allow_nan=False)), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(runs, st.decimals(Decimal(1), Decimal("5e8"), places=6), st.decimals(Decimal(0), Decimal("1e6"), places=2))
def test_commitment_margin_is_zero_strictly_before_the_instant_and_its_price_from_it(
    runs: list[tuple[int, float]], committed: Decimal, closed: Decimal
) -> None:
    fleet = _fleet([_cluster("az-h100", "az-us", contract="c1")], [_commitment("c1", date(2025, 12, 31), "1")])
    idx = FleetIndex.from_fleet(fleet, EPOCH)
    k = idx.contracts["c1"]
    idx.contracts["c1"] = type(k)(k.id, k.prepaid, k.start_s, k.end_s, k.price, k.kind, committed, k.price_usd)
    meter = SpendMeter({"c1": closed})
    for i, (g, t0) in enumerate(runs):
        meter.start(f"j{i}", "c1", g, Decimal("10"), t0)
    at = meter.exhausted_at("c1", committed)
    assert at is not None
    since = max(t0 for _, t0 in runs)
    assume(since < at < k.end_s)
    before = math.nextafter(at, -math.inf)
    assert meter.spent("c1", before) < committed <= meter.spent("c1", at)
    assert idx.commitment_rank(0, before, meter) <= 0.0  # marginal 0 (less the use-it-or-lose-it value)
    assert idx.commitment_rank(0, at, meter) == 10.0
    assert idx.prices(at, meter)[2].tolist() == [10.0]
    assert idx.prices(before, meter)[2].tolist()[0] <= 0.0


def test_through_the_driver_a_commitment_used_up_moves_the_next_job_to_cheaper_capacity() -> None:
    """A 16-GPU job burns a 1,000 USD commitment at 160 USD/h: used up 6.25 h in (22,500 s, to the millisecond's
    rounding). The driver wakes exactly then; a job placed an instant before lands on the commitment (0 at the margin),
    one placed at the instant on owned capacity (0.0462 USD/GPU-hour of energy against 10)."""
    fleet = _fleet(
        [_cluster("az-h100", "az-us", nodes=3, contract="c1"), _cluster("home-h100", "home")],
        [_commitment("c1", date(2025, 12, 31), "1000")],
    )
    policy = get_policy("stargate")

    def run_to(until: float) -> tuple[Driver, list[float]]:
        d = Driver(fleet, policy, EPOCH)
        d.submit(JobTerms(id="burn", queue="q", gpus=16, submit_s=0.0, estimate_s=30 * DAY))
        res = d.decide(0.0)
        assert [(s.cluster_id, s.price_usd_per_gpu_hour) for s in res.starts] == [("az-h100", 10.0)]
        wakes = []
        while res.next_wakeup_s is not None and res.next_wakeup_s <= until:
            wakes.append(res.next_wakeup_s)
            res = d.decide(res.next_wakeup_s)
        return d, wakes

    d, wakes = run_to(30_000.0)
    exhausted = d.meter.exhausted_at("c1", Decimal(1000))
    assert exhausted is not None and abs(exhausted - 22_500.0) < 0.01
    assert exhausted in wakes  # the driver woke the scheduler at that instant
    assert d.spent("c1", math.nextafter(exhausted, -math.inf)) < 1000 <= d.spent("c1", exhausted)

    early, _ = run_to(math.nextafter(exhausted, -math.inf))
    t = math.nextafter(exhausted, -math.inf)
    early.submit(JobTerms(id="next", queue="q", gpus=8, submit_s=t, estimate_s=3600.0))
    (start,) = early.decide(t).starts
    assert (start.cluster_id, start.contract_id, start.price_usd_per_gpu_hour) == ("az-h100", "c1", 10.0)

    late, _ = run_to(exhausted)
    late.submit(JobTerms(id="next", queue="q", gpus=8, submit_s=exhausted, estimate_s=3600.0))
    (start,) = late.decide(exhausted).starts
    assert (start.cluster_id, start.contract_id, start.price_usd_per_gpu_hour) == ("home-h100", None, 0.0462)


# -- use it or lose it ------------------------------------------------------------------------------------------------
def _two_commitments() -> Fleet:
    return _fleet(
        [_cluster("a", "az-us", contract="ka"), _cluster("b", "az-us", contract="kb")],
        [_commitment("ka", date(2025, 1, 10), "1000"), _commitment("kb", date(2025, 1, 10), "1000")],
    )


def test_a_commitment_heading_for_a_shortfall_ranks_first_with_numbers() -> None:
    """10-day terms of 1,000 USD at 10 USD/GPU-hour, at day 5. 'ka' spent 500: at 100 USD/day it spends the other
    500 by the end, S = 0, rank 0. 'kb' spent 100: at 20 USD/day it spends 100 more of the 900 left, S = 800, rank
    0 - 10 × 800 / 900 = -8.888…"""
    idx = FleetIndex.from_fleet(_two_commitments(), EPOCH)
    meter = SpendMeter({"ka": Decimal(500), "kb": Decimal(100)})
    _, _, rank = idx.prices(5 * DAY, meter)
    assert rank[0] == 0.0
    assert math.isclose(rank[1], -10 * 800 / 900, rel_tol=1e-12)
    s = Scheduler(idx, get_policy("stargate"), spend=meter)
    s.submit(_req("j", gpus=8, at=5 * DAY))
    assert [x.cluster_id for x in s.cycle(5 * DAY).starts] == ["b"]


def test_commitments_both_on_track_tie_and_the_first_wins() -> None:
    idx = FleetIndex.from_fleet(_two_commitments(), EPOCH)
    meter = SpendMeter({"ka": Decimal(500), "kb": Decimal(600)})
    assert idx.prices(5 * DAY, meter)[2].tolist() == [0.0, 0.0]
    s = Scheduler(idx, get_policy("stargate"), spend=meter)
    s.submit(_req("j", gpus=8, at=5 * DAY))
    assert [x.cluster_id for x in s.cycle(5 * DAY).starts] == ["a"]


def test_without_spend_a_commitment_is_worth_its_whole_price_and_beats_reserved() -> None:
    fleet = _fleet(
        [_cluster("r", "az-us", contract="res"), _cluster("c", "az-us", contract="kc")],
        [
            Contract(
                id="res",
                provider="az",
                kind="reserved",
                start=date(2025, 1, 1),
                end=date(2025, 12, 31),
                gpus=16,
                price_per_gpu_hour_usd=Decimal(4),
            ),
            _commitment("kc", date(2025, 12, 31), "1000"),
        ],
    )
    idx = FleetIndex.from_fleet(fleet, EPOCH)
    assert idx.prices(0.0)[2].tolist() == [0.0, -10.0]  # all of it would be lost: S = R
    s = Scheduler(idx, get_policy("stargate"))
    s.submit(_req("j", gpus=8))
    assert [x.cluster_id for x in s.cycle(0.0).starts] == ["c"]


def test_the_shortfall_is_refreshed_hourly_not_on_every_pass() -> None:
    """At 0 nothing is spent: both commitments rank -10 (all would be lost). A job then burns 'ka' at 80 USD/h, on
    track to spend its 1,000 USD in 12.5 h: its rank becomes 0, but only from the first cycle of the next hour."""
    d = Driver(_two_commitments(), get_policy("stargate"), EPOCH)
    d.submit(JobTerms(id="burn", queue="q", gpus=8, submit_s=0.0, estimate_s=30 * DAY))
    assert [s.cluster_id for s in d.decide(0.0).starts] == ["a"]
    assert d.sched.windows.rank.tolist() == [-10.0, -10.0]
    d.submit(JobTerms(id="short", queue="q", gpus=1, submit_s=1800.0, estimate_s=60.0))
    d.decide(1800.0)
    assert d.sched.windows.rank.tolist() == [-10.0, -10.0]  # same hour: not recomputed
    assert d.sched.pricing is not None and d.sched.pricing.next_at == 3600.0
    d.finish("short", 1860.0, completed=True)
    assert d.has_work(3600.0)
    d.decide(3600.0)
    assert d.sched.windows.rank.tolist() == [0.0, -10.0]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(8, 16),
    st.decimals(Decimal(1), Decimal(50), places=2),
    st.decimals(Decimal(1), Decimal("500000"), places=6),
    st.floats(0.0, 3 * DAY, allow_nan=False),
)
def test_through_the_driver_the_margin_flips_at_the_exact_instant(
    gpus: int, price: Decimal, committed: Decimal, start: float
) -> None:
    """Any burn, price and commitment: the driver wakes at the instant spend reaches the commitment; an instant
    before, a job lands on the commitment at 0 at the margin, at the instant on owned capacity at its energy price."""
    fleet = _fleet(
        [_cluster("az-h100", "az-us", nodes=3, contract="c1"), _cluster("home-h100", "home")],
        [_commitment("c1", date(2025, 12, 31), str(committed), price=str(price))],
    )
    policy = get_policy("stargate")

    def run_to(until: float) -> tuple[Driver, list[float]]:
        d = Driver(fleet, policy, EPOCH)
        d.submit(JobTerms(id="burn", queue="q", gpus=gpus, submit_s=start, estimate_s=400 * DAY))
        res = d.decide(start)
        assert [s.cluster_id for s in res.starts] == ["az-h100"]
        wakes = []
        while res.next_wakeup_s is not None and res.next_wakeup_s <= until:
            wakes.append(res.next_wakeup_s)
            res = d.decide(res.next_wakeup_s)
        return d, wakes

    probe, _ = run_to(start)
    at = probe.meter.exhausted_at("c1", committed)
    assume(at is not None and start < at < 360 * DAY)
    assert at is not None
    before = math.nextafter(at, -math.inf)
    assert probe.spent("c1", before) < committed <= probe.spent("c1", at)

    early, _ = run_to(before)
    early.submit(JobTerms(id="next", queue="q", gpus=8, submit_s=before, estimate_s=3600.0))
    assert [(s.cluster_id, s.price_usd_per_gpu_hour) for s in early.decide(before).starts] == [
        ("az-h100", float(price))
    ]
    late, wakes = run_to(at)
    assert wakes[-1] == at  # woken at the instant itself
    late.submit(JobTerms(id="next", queue="q", gpus=8, submit_s=at, estimate_s=3600.0))
    assert [(s.cluster_id, s.price_usd_per_gpu_hour) for s in late.decide(at).starts] == [("home-h100", 0.0462)]
