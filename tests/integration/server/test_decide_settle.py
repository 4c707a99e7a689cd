"""One server cycle places everything that can start now, even past the policy's per-queue scan depth."""

from datetime import UTC, datetime

from stargate.domain import Cluster, Fleet, Provider, Queue, Quota, Site, Team
from stargate.engine import FleetIndex, JobRequest, Scheduler, get_policy
from stargate.server.decide import settle

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


def _job(i: int, priority: int = 500) -> JobRequest:
    return JobRequest(
        id=f"j{i}",
        queue="q",
        gpus=1,
        gpu_models=(),
        priority=priority,
        preemptible=True,
        submit_s=float(i),
        duration_s=100.0,
        checkpoint_interval_s=None,
        allowed_providers=(),
        allowed_regions=(),
        progress_s=0.0,
    )


def test_a_cycle_places_past_the_scan_depth_in_one_result() -> None:
    sched = Scheduler(FleetIndex.from_fleet(FLEET, epoch=datetime(2026, 1, 1, tzinfo=UTC)), get_policy("stargate"))
    for i in range(200):
        sched.submit(_job(i))
    res = settle(sched, 1000.0)
    assert len(res.starts) == 128 and not res.more, "128 GPUs free: 128 one-GPU jobs start in one server cycle"
    ids = [g for s in res.starts for g in s.gpu_ids]
    assert len(ids) == len(set(ids)) == 128
    assert sched.n_pending == 72
