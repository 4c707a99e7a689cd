"""One engine, two clocks: the same trace through the simulator and through the real server decides the same.

The trace has a few hundred jobs in four queues and four priority classes (one that may not preempt), gangs of up to
three 8-GPU nodes, preemptible and non-preemptible work, an outage of a cluster, and an on-demand cloud that jobs burst
to after a wait. Both decision logs (instant, job, cluster, GPU ids, preemptions and their reasons, rejections,
finishes) must be equal, on SQLite and on PostgreSQL, under the fleet's policy and under ``stargate up
--policy/--set``. A Hypothesis variant runs small random traces on small random fleets (SQLite).
"""

import random
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration.server.differential_support import Row, serve, simulate
from stargate.domain import (
    Cluster,
    Contract,
    ContractKind,
    Fleet,
    PriorityClass,
    Provider,
    ProviderKind,
    Queue,
    Quota,
    Scheduling,
    Site,
    Team,
)
from stargate.engine import Override
from stargate.fleetfile import dump_fleet, load_fleet
from stargate.server.terms import ENGINE_EPOCH
from stargate.sim.simulator import Failure
from stargate.traces import TraceJob

FLEET = Path(__file__).parent / "fleet" / "differential.yaml"


def _t0() -> float:
    """2026-01-01 (the fleet's as_of date) in engine seconds: when the traces start."""
    return (datetime(2026, 1, 1, tzinfo=UTC) - ENGINE_EPOCH).total_seconds()


QUEUES = {
    # queue: (share, GPU choices, classes, preemptible probability)
    "research-train": (0.3, (8, 8, 16, 24), (None, "high", "normal"), 0.8),
    "research-batch": (0.35, (1, 2, 4), (None, "normal", "high"), 1.0),
    "product-serve": (0.2, (1, 2, 4, 8), (None, "urgent"), 0.0),
    "infra-ops": (0.15, (1, 8, 64), (None, "batch", "high"), 0.5),
}


def make_trace(seed: int, n: int, span_s: int, estimated: float = 1.0) -> list[TraceJob]:
    """``n`` jobs over ``span_s`` seconds from :func:`_t0`, whole seconds throughout (both clocks see the same
    floats); a share ``estimated`` of them state their run time as their estimate (the rest get learned ones)."""
    rng = random.Random(seed)
    t0 = _t0()
    names, weights = list(QUEUES), [QUEUES[q][0] for q in QUEUES]
    jobs = []
    for i in range(n):
        queue = rng.choices(names, weights)[0]
        _, sizes, classes, p_preempt = QUEUES[queue]
        duration = float(rng.choice((60, 300, 900, 1800, 3600, 7200)) + rng.randrange(0, 600))
        preemptible = rng.random() < p_preempt
        jobs.append(
            TraceJob(
                id=f"t{i:04d}",
                submit_s=t0 + rng.randrange(0, span_s),
                duration_s=duration,
                gpus=rng.choice(sizes),
                queue=queue,
                priority_class=rng.choice(classes),
                preemptible=preemptible,
                checkpoint_interval_s=600.0 if preemptible else None,
                estimated_duration_s=duration if rng.random() < estimated else None,
            )
        )
    return jobs


def _kinds(log: list[Row]) -> set[str]:
    """What the log shows: start, start-gang, start-cloud, preempt-<reason>, reject-<reason>, finish."""
    out = set()
    for row in log:
        out.add(str(row[1]))
        if row[1] == "start":
            out |= {"start-gang"} if len(row[4]) > 8 else set()
            out |= {"start-cloud"} if row[3] == "cloud-h100" else set()
        if row[1] in ("preempt", "reject"):
            out.add(f"{row[1]}-{row[3]}")
    return out


@pytest.mark.parametrize(
    ("db_url", "override"),
    [
        ("sqlite", Override()),
        ("sqlite", Override(settings={"runtime_weight": 2.0})),
        ("sqlite", Override(policy="srtf")),
        ("sqlite", Override(policy="las")),
        ("sqlite", Override(policy="gittins")),  # the default policy (this fleet pins stargate)
        pytest.param("postgresql", Override(), marks=pytest.mark.postgres),
        pytest.param("postgresql", Override(policy="srtf"), marks=pytest.mark.postgres),
    ],
    ids=[
        "sqlite-fleet",
        "sqlite-set-runtime-weight",
        "sqlite-srtf",
        "sqlite-las",
        "sqlite-gittins",
        "postgresql-fleet",
        "postgresql-srtf",
    ],
    indirect=["db_url"],
)
def test_the_simulator_and_the_server_make_the_same_decisions(override: Override, db_url: str, tmp_path: Path) -> None:
    fleet = load_fleet(FLEET)
    jobs = make_trace(seed=7, n=200, span_s=7 * 3600)
    outages = [Failure("lab-a", _t0() + 3 * 3600, 2 * 3600)]
    expected = simulate(fleet, jobs, outages, override)
    got = serve(FLEET, db_url, tmp_path / "home", jobs, outages, override)
    for i, (e, g) in enumerate(zip(expected, got, strict=False)):
        assert e == g, f"first difference at row {i}: simulator {e}, server {g}"
    assert len(expected) == len(got)
    shown = _kinds(expected)
    wanted = {"start-gang", "start-cloud", "preempt-cluster_down", "reject-no_cluster_fits", "finish"}
    wanted |= {"reject-priority_class_not_allowed"}
    wanted |= {"preempt-priority"} if override.policy != "srtf" else set()
    assert wanted <= shown, f"the trace no longer exercises {sorted(wanted - shown)}"
    if override:  # the options reach the decisions (else this case would prove nothing about deploying them)
        assert expected != simulate(fleet, jobs, outages, Override())


@pytest.mark.parametrize("override", [Override(), Override(policy="srtf")], ids=["fleet", "srtf"])
def test_learned_estimates_decide_the_same_in_both_clocks(override: Override, tmp_path: Path) -> None:
    """Jobs that state no estimate get one learned from completed jobs, on both clocks alike (SQLite)."""
    fleet = load_fleet(FLEET)
    jobs = make_trace(seed=11, n=200, span_s=7 * 3600, estimated=0.2)
    outages = [Failure("lab-a", _t0() + 3 * 3600, 2 * 3600)]
    expected = simulate(fleet, jobs, outages, override)
    got = serve(FLEET, f"sqlite:///{tmp_path}/stargate.db", tmp_path / "home", jobs, outages, override)
    for i, (e, g) in enumerate(zip(expected, got, strict=False)):
        assert e == g, f"first difference at row {i}: simulator {e}, server {g}"
    assert len(expected) == len(got)
    # the learned estimates matter: the policy's default for every job without one decides otherwise
    assert expected != simulate(fleet, jobs, outages, override, estimates="trace")


SMALL = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
PRIORITY_CLASSES = [
    PriorityClass(name="batch", value=100, preempts_lower=False),
    PriorityClass(name="normal", value=500),
    PriorityClass(name="high", value=1000),
]


@st.composite
def small_fleets(draw: st.DrawFn) -> Fleet:
    """1–3 owned clusters of 4- or 8-GPU nodes, maybe an on-demand cloud, 1–3 queues, any of the three policies."""
    clusters = [
        Cluster(
            id=f"c{i}",
            site="lab-1",
            gpu_model="H100-SXM",
            gpus_per_node=draw(st.sampled_from((4, 8))),
            nodes=draw(st.integers(1, 2)),
            price_per_gpu_hour_usd=draw(st.sampled_from((0, 1, 2))),
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    providers = [Provider(id="lab", name="Lab", kind=ProviderKind.OWNED)]
    sites = [Site(id="lab-1", provider="lab", region="local")]
    contracts = []
    settings_: dict[str, int] = {}
    if draw(st.booleans()):
        providers.append(Provider(id="cloud", name="Cloud", kind=ProviderKind.CLOUD))
        sites.append(Site(id="cloud-1", provider="cloud", region="us"))
        od = dict(gpu_model="H100-SXM", price_per_gpu_hour_usd=6)
        clusters.append(Cluster(id="cloud", site="cloud-1", gpus_per_node=8, nodes=1, contract="od", **od))
        kind, start, end = ContractKind.ON_DEMAND, date(2019, 1, 1), date(2030, 1, 1)
        contracts.append(Contract(id="od", provider="cloud", kind=kind, start=start, end=end, **od))
        settings_["burst_after_s"] = draw(st.sampled_from((0, 600, 1800)))
    queues = [
        Queue(
            id=f"q{i}",
            team="t",
            cohort=draw(st.sampled_from((None, "all"))),
            quotas=[Quota(gpu_model="*", gpus=draw(st.sampled_from((4, 8, 16, 64))))],
            priority_classes=draw(st.sampled_from(([], ["batch", "normal"], ["normal", "high"]))),
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    return Fleet(
        name="small",
        as_of=date(2026, 1, 1),
        providers=providers,
        sites=sites,
        clusters=clusters,
        contracts=contracts,
        teams=[Team(id="t", name="T")],
        queues=queues,
        priority_classes=PRIORITY_CLASSES,
        scheduling=Scheduling(policy=draw(st.sampled_from(("stargate", "srtf", "fifo"))), settings=settings_),
    )


@st.composite
def small_traces(draw: st.DrawFn, fleet: Fleet) -> tuple[list[TraceJob], list[Failure]]:
    """4–25 jobs over two hours on ``fleet``'s queues, and maybe one outage of one of its clusters."""
    t0 = _t0()
    jobs = []
    for i in range(draw(st.integers(4, 25))):
        duration = float(draw(st.integers(1, 40)) * 60)
        preemptible = draw(st.booleans())
        jobs.append(
            TraceJob(
                id=f"j{i:02d}",
                submit_s=t0 + draw(st.integers(0, 7200)),
                duration_s=duration,
                gpus=draw(st.sampled_from((1, 2, 4, 8, 16))),
                queue=draw(st.sampled_from([q.id for q in fleet.queues])),
                priority_class=draw(st.sampled_from((None, "batch", "normal", "high"))),
                preemptible=preemptible,
                checkpoint_interval_s=float(draw(st.sampled_from((60, 300)))) if preemptible else None,
                estimated_duration_s=draw(st.sampled_from((duration, None))),
            )
        )
    outages = []
    if draw(st.booleans()):
        cluster = draw(st.sampled_from([c.id for c in fleet.clusters]))
        outages.append(Failure(cluster, t0 + draw(st.integers(0, 7200)), float(draw(st.integers(1, 60)) * 60)))
    return jobs, outages


@SMALL
@given(data=st.data())
def test_small_random_traces_decide_the_same_in_both_clocks(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    fleet = data.draw(small_fleets())
    jobs, outages = data.draw(small_traces(fleet))
    home = tmp_path_factory.mktemp("small")
    path = home / "fleet.yaml"
    path.write_text(dump_fleet(fleet), encoding="utf-8")
    expected = simulate(fleet, jobs, outages, Override())
    got = serve(path, f"sqlite:///{home}/stargate.db", home / "home", jobs, outages, Override())
    assert got == expected
