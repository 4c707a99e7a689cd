"""The driver both clocks decide through: priority resolution, policy configuration, fleet updates, rebuilding."""

from datetime import UTC, datetime

import pytest

from stargate.domain import Cluster, ClusterStatus, Fleet, PriorityClass, Provider, Queue, Quota, Scheduling, Site, Team
from stargate.engine import Driver, JobTerms, Override, PriorityRule, Reason, get_policy, policy_for
from stargate.engine.scheduling import effective, problems

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _fleet(**changes: object) -> Fleet:
    base = Fleet(
        name="driver",
        providers=[Provider(id="lab", name="Lab", kind="owned")],
        sites=[Site(id="lab-1", provider="lab", region="local")],
        clusters=[
            Cluster(id="a", site="lab-1", gpu_model="H100-SXM", gpus_per_node=8, nodes=1, price_per_gpu_hour_usd=1),
            Cluster(id="b", site="lab-1", gpu_model="H100-SXM", gpus_per_node=8, nodes=1, price_per_gpu_hour_usd=2),
        ],
        priority_classes=[
            PriorityClass(name="batch", value=100, preempts_lower=False),
            PriorityClass(name="normal", value=500),
            PriorityClass(name="polite", value=900, preempts_lower=False),
            PriorityClass(name="high", value=1000),
        ],
        teams=[Team(id="t", name="T")],
        queues=[
            Queue(id="open", team="t", quotas=[Quota(gpu_model="*", gpus=64)]),
            Queue(
                id="narrow",
                team="t",
                quotas=[Quota(gpu_model="*", gpus=64)],
                priority_classes=["normal", "high"],
                default_priority_class="high",
            ),
        ],
    )
    return base.model_copy(update=changes)


def _job(i: str, queue: str = "open", gpus: int = 8, cls: str | None = None, at: float = 0.0) -> JobTerms:
    return JobTerms(id=i, queue=queue, gpus=gpus, submit_s=at, priority_class=cls, estimate_s=3600.0)


def test_priority_rule_defaults_allows_and_refuses() -> None:
    rule = PriorityRule(_fleet())
    assert rule.resolve("open", None).name == "batch"  # type: ignore[union-attr]  # lowest of all
    assert rule.resolve("narrow", None).name == "high"  # type: ignore[union-attr]  # the queue's default
    assert rule.resolve("narrow", "batch") is None  # defined, but the queue does not allow it
    assert rule.resolve("open", "nope") is None  # not defined
    assert rule.resolve("open", "polite").preempts_lower is False  # type: ignore[union-attr]
    assert rule.allowed("narrow") == ("normal", "high")


def test_a_class_the_queue_does_not_allow_is_rejected_by_the_next_decision() -> None:
    driver = Driver(_fleet(), get_policy("stargate"), EPOCH)
    driver.submit(_job("x", queue="narrow", cls="batch"))
    out = driver.decide(0.0)
    assert [(r.job_id, r.reason) for r in out.rejections] == [("x", Reason.PRIORITY_CLASS_NOT_ALLOWED)]
    assert "x" not in driver.where


@pytest.mark.parametrize(("cls", "preempts"), [("high", True), ("polite", False)])
def test_preempts_lower_of_the_class_decides_whether_a_job_may_stop_others(cls: str, preempts: bool) -> None:
    driver = Driver(_fleet(), get_policy("stargate"), EPOCH)
    driver.submit(_job("low-a", cls="normal"))
    driver.submit(_job("low-b", cls="normal"))
    assert len(driver.decide(0.0).starts) == 2  # both clusters full
    driver.submit(_job("urgent", cls=cls, at=10.0))
    out = driver.decide(10.0)
    assert bool(out.preemptions) is preempts
    assert ("urgent" in {s.job_id for s in out.starts}) is preempts


def test_a_status_only_fleet_change_stops_the_jobs_of_a_cluster_going_down() -> None:
    fleet = _fleet()
    driver = Driver(fleet, get_policy("stargate"), EPOCH)
    driver.submit(_job("j", cls="normal"))
    [start] = driver.decide(0.0).starts
    down = [
        c.model_copy(update={"status": ClusterStatus.DOWN}) if c.id == start.cluster_id else c for c in fleet.clusters
    ]
    assert driver.update_fleet(fleet.model_copy(update={"clusters": down}), 100.0)
    out = driver.decide(100.0)
    assert [(p.job_id, p.reason) for p in out.preemptions] == [("j", Reason.CLUSTER_DOWN)]
    assert [s.cluster_id for s in out.starts] != [start.cluster_id] and len(out.starts) == 1  # moved
    bigger = [c.model_copy(update={"nodes": 2}) for c in fleet.clusters]
    assert not driver.update_fleet(fleet.model_copy(update={"clusters": bigger}), 200.0)


def test_rebuilding_puts_jobs_back_and_reports_those_it_cannot() -> None:
    clusters = [c.model_copy(update={"status": ClusterStatus.DOWN}) if c.id == "b" else c for c in _fleet().clusters]
    fleet = _fleet(clusters=clusters)
    gone = JobTerms(id="on-gone", queue="open", gpus=1, submit_s=0.0, priority_class="normal", checkpoint_interval_s=20)
    running = [
        (_job("on-a", cls="normal"), ("a", tuple(range(8))), 0.0),
        (gone, ("gone", (0,)), 0.0),
        (_job("on-b", cls="normal"), ("b", tuple(range(8))), 0.0),
        (_job("twice", gpus=1, cls="normal"), ("a", (0,)), 0.0),  # GPU 0 of a is on-a's
    ]
    driver, lost = Driver.rebuilt(fleet, get_policy("stargate"), EPOCH, running, [_job("wait", cls="normal")], 50.0)
    assert [(g.job.id, g.why.split(":")[0], g.progress_s) for g in lost] == [
        ("on-gone", "cluster 'gone' is no longer in the fleet", 40.0),  # ran 50 s: two 20-s checkpoints kept
        ("twice", "placement on 'a' no longer valid", 0.0),
    ]
    out = driver.decide(50.0)
    assert [(p.job_id, p.reason) for p in out.preemptions] == [("on-b", Reason.CLUSTER_DOWN)]
    assert driver.where["on-a"] == ("a", tuple(range(8)))
    assert out.starts == []  # cluster a is full and b is down: the requeued job and the pending one wait
    driver.submit(_job("twice", gpus=1, cls="normal", at=60.0))  # a refused restore left nothing behind
    assert driver.sched.free_gpus()["a"] == 0


def test_policy_options_layer_on_the_fleet_section_by_one_rule() -> None:
    section = Scheduling(policy="stargate", settings={"runtime_weight": 3, "burst_after_s": "inf"})
    assert effective(section) == ("stargate", {"runtime_weight": 3, "burst_after_s": "inf"})
    assert effective(section, Override(settings={"runtime_weight": 2})) == (
        "stargate",
        {"runtime_weight": 2, "burst_after_s": "inf"},
    )
    assert effective(section, Override(policy="srtf")) == ("srtf", {})  # another policy: the section's settings go
    assert policy_for(section).burst_after_s == float("inf")
    found = problems(Scheduling(policy="srtf", settings={"runtime_weight": 2, "scan_depth": 0}))
    assert [(p.dotted(), p.found) for p in found] == [
        ("scheduling.settings.runtime_weight", "'runtime_weight'"),
        ("scheduling.settings.scan_depth", "0"),
    ]
    assert [p.dotted() for p in problems(Scheduling(policy="lottery"))] == ["scheduling.policy"]
