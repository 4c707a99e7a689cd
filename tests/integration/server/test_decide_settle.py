"""One decision places everything that can start now, even past the policy's per-queue scan depth (both clocks
decide through the driver, so this holds for the server's cycle and the simulator's instant alike)."""

from datetime import UTC, datetime

from stargate.domain import Cluster, Fleet, Provider, Queue, Quota, Site, Team
from stargate.engine import Driver, JobTerms, get_policy

FLEET = Fleet(
    name="settle",
    providers=[Provider(id="lab", name="Lab", kind="owned")],
    sites=[Site(id="lab-1", provider="lab", region="local")],
    clusters=[
        Cluster(id="big", site="lab-1", gpu_model="H100-SXM", gpus_per_node=8, nodes=16, price_per_gpu_hour_usd=1)
    ],
    teams=[Team(id="t", name="T")],
    queues=[Queue(id="q", team="t", quotas=[Quota(gpu_model="*", gpus=1000)])],
)


def _job(i: int) -> JobTerms:
    return JobTerms(id=f"j{i}", queue="q", gpus=1, submit_s=float(i), estimate_s=100.0)


def test_a_cycle_places_past_the_scan_depth_in_one_result() -> None:
    driver = Driver(FLEET, get_policy("stargate"), epoch=datetime(2026, 1, 1, tzinfo=UTC))
    for i in range(200):
        driver.submit(_job(i))
    res = driver.decide(1000.0)
    assert len(res.starts) == 128 and res.rounds > 1, "128 GPUs free: 128 one-GPU jobs start in one decision"
    ids = [g for s in res.starts for g in s.gpu_ids]
    assert len(ids) == len(set(ids)) == 128
    assert sum(1 for p in driver.where.values() if p is None) == 72
