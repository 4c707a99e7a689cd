"""Which pending jobs wait only for down clusters (the ``clusters_down`` wait reason, stargate.engine.waiting's rule),
as the driver both clocks decide through says it."""

from datetime import UTC, date, datetime

import pytest

from stargate.domain import Cluster, ClusterStatus, Fleet, Provider, Queue, Quota, Site, Team
from stargate.domain.reasons import WaitReason
from stargate.engine import Driver, JobTerms, get_policy

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _cluster(cid: str, model: str, gpus: int, **kw: object) -> Cluster:
    return Cluster(id=cid, site="lab-1", gpu_model=model, gpus_per_node=gpus, nodes=1, price_per_gpu_hour_usd=1, **kw)  # type: ignore[arg-type]


FLEET = Fleet(
    name="waiting",
    providers=[Provider(id="lab", name="Lab", kind="owned")],
    sites=[Site(id="lab-1", provider="lab", region="local")],
    clusters=[
        _cluster("a", "H100-SXM", 8),
        _cluster("b", "H100-SXM", 8),
        _cluster("g", "GB200", 4),
        _cluster("later", "GB200", 16, online_from=date(2027, 1, 1)),  # offline now
    ],
    teams=[Team(id="t", name="T")],
    queues=[
        Queue(id="open", team="t", quotas=[Quota(gpu_model="*", gpus=64)]),
        Queue(id="gb-only", team="t", quotas=[Quota(gpu_model="GB200", gpus=64)]),
    ],
)

JOBS = [
    JobTerms(id="h8", queue="open", gpus=8, submit_s=0.0, gpu_models=("H100-SXM",)),
    JobTerms(id="any1", queue="open", gpus=1, submit_s=0.0),
    JobTerms(id="any8", queue="open", gpus=8, submit_s=0.0),  # g is too small for it
    JobTerms(id="gb16", queue="open", gpus=16, submit_s=0.0, gpu_models=("GB200",)),  # only 'later' fits
    JobTerms(id="quota1", queue="gb-only", gpus=1, submit_s=0.0),  # its queue allows GB200 only
    JobTerms(id="nowhere", queue="open", gpus=1, submit_s=0.0, gpu_models=("MI300X",)),  # rejected
]


FILL = [JobTerms(id=f"fill-{i}", queue="open", gpus=n, submit_s=0.0) for i, n in enumerate((8, 8, 4))]


def _down(driver: Driver) -> dict[str, tuple[str, ...]]:
    """Pending job id → the down clusters it waits for, for the jobs whose wait reason is clusters_down."""
    return {j: w.clusters for j, w in driver.wait_reasons().items() if w.reason is WaitReason.CLUSTERS_DOWN}


def _driver(down: set[str], degraded: frozenset[str] = frozenset()) -> Driver:
    """A driver with every job submitted while ``down`` clusters are down (and so still pending)."""
    driver = Driver(FLEET, get_policy("fifo"), EPOCH)
    for cluster in sorted(down):
        driver.set_cluster_status(cluster, ClusterStatus.DOWN, 0.0)
    for cluster in sorted(degraded):
        driver.set_cluster_status(cluster, ClusterStatus.DEGRADED, 0.0)
    for job in FILL:  # every up cluster full: the jobs below stay pending
        driver.submit(job)
    driver.decide(0.0)
    for job in JOBS:
        driver.submit(job)
    driver.decide(1.0)
    return driver


@pytest.mark.parametrize(
    ("down", "expected"),
    [
        (set(), {}),
        ({"a"}, {}),  # b is up: h8 waits for GPUs, not for a repair
        ({"a", "b"}, {"h8": ("a", "b"), "any8": ("a", "b")}),  # g is up but too small for any8
        ({"g"}, {"quota1": ("g",)}),  # gb16 waits for 'later' to come online, not for g (too small anyway)
        ({"a", "b", "g"}, {"h8": ("a", "b"), "any1": ("a", "b", "g"), "any8": ("a", "b"), "quota1": ("g",)}),
    ],
)
def test_both_clocks_name_the_jobs_whose_every_usable_cluster_is_down(
    down: set[str], expected: dict[str, tuple[str, ...]]
) -> None:
    driver = _driver(down)
    assert {j: driver.where[j] for j in expected} == dict.fromkeys(expected)  # all still pending
    got = _down(driver)
    assert {j: c for j, c in got.items() if not j.startswith("fill-")} == expected


def test_a_degraded_cluster_still_takes_work() -> None:
    driver = _driver({"a"}, degraded=frozenset({"b"}))
    assert _down(driver) == {}


def test_a_running_job_is_never_named_and_a_cluster_back_up_clears_the_answer() -> None:
    driver = Driver(FLEET, get_policy("fifo"), EPOCH)
    driver.submit(JobTerms(id="r", queue="open", gpus=4, submit_s=0.0, gpu_models=("GB200",)))
    driver.decide(0.0)
    driver.set_cluster_status("g", ClusterStatus.DOWN, 5.0)  # r stops and waits for g
    driver.decide(5.0)
    assert driver.where["r"] is None and _down(driver) == {"r": ("g",)}
    driver.set_cluster_status("g", ClusterStatus.UP, 9.0)
    driver.decide(9.0)
    assert driver.where["r"] is not None and _down(driver) == {}


def test_once_the_offline_cluster_is_online_it_counts() -> None:
    driver = _driver({"later"})
    assert "gb16" not in _down(driver)  # 'later' is not online yet: gb16 waits for it to come online
    assert driver.wait_reasons()["gb16"].reason is WaitReason.OFFLINE
    online = (datetime(2027, 1, 2, tzinfo=UTC) - EPOCH).total_seconds()
    driver.decide(online)
    assert _down(driver)["gb16"] == ("later",)
