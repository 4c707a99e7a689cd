"""Preemption: higher priority displaces lower; the victim keeps progress up to its last checkpoint."""

import pytest
from engine_builders import FleetBuilder, make_job, scheduler

from stargate.engine import Reason


def test_high_priority_preempts_the_lowest_priority_most_recent_job() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build())
    s.submit(make_job("old").gpus(4).prio(100).ckpt(600).runs(10_000).build())
    s.cycle(0.0)
    s.submit(make_job("new").gpus(4).prio(100).ckpt(600).at(1000).runs(10_000).build())
    s.cycle(1000.0)
    s.submit(make_job("vip").gpus(4).prio(1000).at(2000).runs(100).build())
    res = s.cycle(2000.0)
    assert [(p.job_id, p.reason, p.progress_s) for p in res.preemptions] == [("new", "priority", 600.0)]
    assert [x.job_id for x in res.starts] == ["vip"]
    assert s.pending_jobs() == ["new"]
    s.finish("vip")
    res = s.cycle(2100.0)
    assert [x.job_id for x in res.starts] == ["new"] and s.progress_s("new") == 600.0


def test_non_preemptible_and_equal_priority_jobs_are_not_displaced() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build())
    s.submit(make_job("keep").gpus(8).prio(100, preemptible=False).runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("vip").gpus(8).prio(1000).at(1).runs(10).build())
    s.submit(make_job("peer").gpus(8).prio(100).at(1).runs(10).build())
    res = s.cycle(1.0)
    assert res.preemptions == [] and res.starts == []


def test_fifo_never_preempts() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build(), "fifo")
    s.submit(make_job("low").gpus(8).prio(100).runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("vip").gpus(8).prio(1000).at(1).runs(10).build())
    assert s.cycle(1.0).preemptions == []


@pytest.mark.parametrize("may_preempt", [False, True])
def test_a_job_whose_class_does_not_preempt_lower_waits_for_it(may_preempt: bool) -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build())
    s.submit(make_job("low").gpus(8).prio(100).runs(1000).build())
    s.cycle(0.0)
    s.submit(make_job("vip").gpus(8).prio(1000, may_preempt=may_preempt).at(1).runs(10).build())
    res = s.cycle(1.0)
    if may_preempt:
        assert [(p.job_id, p.reason) for p in res.preemptions] == [("low", Reason.PRIORITY)]
        assert [x.job_id for x in res.starts] == ["vip"]
        return
    assert res.preemptions == [] and res.starts == [] and s.pending_jobs() == ["vip"]
    s.finish("low")
    assert [x.job_id for x in s.cycle(1000.0).starts] == ["vip"]


@pytest.mark.parametrize("may_preempt", [False, True])
def test_a_job_that_may_not_preempt_is_never_given_victims_while_some_gpus_are_free(may_preempt: bool) -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build())
    s.submit(make_job("low").gpus(4).prio(100).runs(1000).build())
    s.cycle(0.0)
    s.submit(make_job("vip").gpus(8).prio(1000, may_preempt=may_preempt).at(1).runs(10).build())
    res = s.cycle(1.0)
    assert [p.job_id for p in res.preemptions] == (["low"] if may_preempt else [])
    assert [x.job_id for x in res.starts] == (["vip"] if may_preempt else [])


def test_reasons_are_strings_with_the_stored_values() -> None:
    assert Reason.PRIORITY == "priority" and f"{Reason.CLUSTER_DOWN}" == "cluster_down"
    assert Reason("priority_class_not_allowed") is Reason.PRIORITY_CLASS_NOT_ALLOWED
    assert {r.value for r in Reason} >= {"duration_out_of_range", "submit_out_of_range", "exceeds_quota"}
