"""Review of node-shaped placement, learned estimates and attained-service policies: defects found by a reviewer.

Each test states what the documentation promises; the xfail ones fail today (strict, so a fix is noticed).
"""

from datetime import UTC, datetime

import pytest

from stargate.cli.jobfile import JobFileError, loads_job
from stargate.domain import Cluster, Fleet, Provider, Queue, Site, Team
from stargate.engine import Driver, JobTerms, Override, policy_for

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _fleet(nodes: int = 2, gpn: int = 8) -> Fleet:
    return Fleet(
        name="review",
        providers=[Provider(id="own", name="Own", kind="owned")],
        sites=[Site(id="s1", provider="own", region="here")],
        clusters=[
            Cluster(id="c", site="s1", gpu_model="H100-SXM", gpus_per_node=gpn, nodes=nodes, price_per_gpu_hour_usd=0)
        ],
        teams=[Team(id="t", name="T")],
        queues=[Queue(id="q", team="t", default_priority_class="normal")],
    )


def _driver(policy: str = "stargate") -> Driver:
    fleet = _fleet()
    return Driver(fleet, policy_for(fleet.scheduling, Override(policy, {})), EPOCH)


def test_a_job_asking_for_more_nodes_than_any_cluster_has_is_rejected() -> None:
    driver = _driver()
    driver.submit(JobTerms(id="n4", queue="q", gpus=16, submit_s=0.0, nodes=4))  # 4 nodes x 4 GPUs; the cluster has 2
    out = driver.decide(0.0)
    assert [s.job_id for s in out.starts] == []
    assert [(r.job_id, r.reason) for r in out.rejections] == [("n4", "no_cluster_fits")]


def test_a_spread_job_takes_free_gpus_on_partly_used_nodes() -> None:
    driver = _driver()
    for jid in ("x", "y"):  # 6 GPUs each: one node each, 2 GPUs left free on each node
        driver.submit(JobTerms(id=jid, queue="q", gpus=6, submit_s=0.0, estimate_s=3600.0))
    assert len(driver.decide(0.0).starts) == 2
    driver.submit(JobTerms(id="s", queue="q", gpus=4, submit_s=1.0, spread=True, estimate_s=60.0))
    out = driver.decide(1.0)
    assert [s.job_id for s in out.starts] == ["s"]
    assert len({g // 8 for g in out.starts[0].gpu_ids}) == 2  # 2 GPUs on each node


def test_a_packed_job_waits_for_one_node_even_with_enough_free_gpus() -> None:
    driver = _driver()
    for jid in ("x", "y"):
        driver.submit(JobTerms(id=jid, queue="q", gpus=6, submit_s=0.0, estimate_s=3600.0))
    driver.decide(0.0)
    driver.submit(JobTerms(id="p", queue="q", gpus=4, submit_s=1.0, estimate_s=60.0))
    assert driver.decide(1.0).starts == []


def test_nodes_not_dividing_gpus_says_why() -> None:
    with pytest.raises(JobFileError) as caught:
        loads_job("name: x\nqueue: q\ngpus: 6\nnodes: 4\ncommand: 'true'\n", "job.yaml")
    [problem] = caught.value.problems
    assert (problem.path, problem.line, problem.found) == ("nodes", 4, "4 nodes for 6 GPUs")
    assert "divides gpus" in problem.expected


def test_gittins_preempts_a_demoted_job_on_a_fleet_with_the_default_priority_classes() -> None:
    fleet = _fleet(nodes=1).model_copy(update={"queues": [Queue(id="q", team="t")]})
    policy = policy_for(fleet.scheduling, Override("gittins", {"las_base_gpu_s": 1.0, "restart_cost_s": 0.0}))
    driver = Driver(fleet, policy, EPOCH)
    driver.submit(JobTerms(id="long", queue="q", gpus=8, submit_s=0.0, checkpoint_interval_s=10.0))
    driver.decide(0.0)
    driver.submit(JobTerms(id="new", queue="q", gpus=8, submit_s=100.0))  # long was demoted at 10 s
    out = driver.decide(100.0)
    assert [p.job_id for p in out.preemptions] == ["long"]
    assert [s.job_id for s in out.starts] == ["new"]


def test_gittins_preempts_a_demoted_job_when_the_queue_defaults_to_a_preempting_class() -> None:
    fleet = _fleet(nodes=1)
    policy = policy_for(fleet.scheduling, Override("gittins", {"las_base_gpu_s": 1.0, "restart_cost_s": 0.0}))
    driver = Driver(fleet, policy, EPOCH)
    driver.submit(JobTerms(id="long", queue="q", gpus=8, submit_s=0.0, checkpoint_interval_s=10.0))
    driver.decide(0.0)
    driver.submit(JobTerms(id="new", queue="q", gpus=8, submit_s=100.0))
    out = driver.decide(100.0)
    assert [p.job_id for p in out.preemptions] == ["long"]
    assert [(p.job_id, p.progress_s) for p in out.preemptions] == [("long", 100.0)]  # stopped at a checkpoint


def test_a_rebuilt_gittins_driver_applies_a_demotion_already_due_and_preempts_at_once() -> None:
    """A server rebuilds its driver (e.g. after a preemption): a running job whose demotion instant has passed must
    still make way for a newer job of a higher level in the same decision, with no later event needed."""
    fleet = _fleet()
    policy = policy_for(fleet.scheduling, Override("gittins", {"las_base_gpu_s": 1.0, "restart_cost_s": 5.0}))
    g1 = JobTerms(id="g1", queue="q", gpus=16, submit_s=0.0, checkpoint_interval_s=2.0, attained_gpu_s=64.0)
    g2 = JobTerms(id="g2", queue="q", gpus=16, submit_s=4.0, checkpoint_interval_s=2.0)
    g3 = JobTerms(id="g3", queue="q", gpus=16, submit_s=9.0)
    running = [(g2, ("c", tuple(range(16))), 4.0)]
    driver, lost = Driver.rebuilt(fleet, policy, EPOCH, running, [g1, g3], 9.0)
    assert lost == []
    out = driver.decide(9.0)
    assert [p.job_id for p in out.preemptions] == ["g2"]
    assert [s.job_id for s in out.starts] == ["g3"]


@pytest.mark.parametrize(
    ("progress", "ran", "kept"),
    [
        (0.0, 10.0, -60.0),  # stopped before its first checkpoint: one restart owed
        (-60.0, 30.0, -60.0),  # stopped again while reloading: still one restart owed, not two
        (-60.0, 100.0, -60.0),  # reloaded, then 40 s of work short of a checkpoint
        (-60.0, 125.0, 50.0 - 60.0),  # reloaded, one 50-s checkpoint reached
        (100.0, 120.0, 200.0 - 60.0),  # two checkpoints, less the reload
        (100.0, 0.0, 100.0),  # never ran: owes nothing
    ],
)
def test_a_stop_keeps_the_last_checkpoint_less_one_restart(progress: float, ran: float, kept: float) -> None:
    from stargate.engine.jobs import checkpointed

    assert checkpointed(progress, ran, 50.0, 60.0) == kept
