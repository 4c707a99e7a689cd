"""Preemption: higher priority displaces lower; the victim keeps progress up to its last checkpoint."""

import ast
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from engine_builders import FleetBuilder, make_job, scheduler

from stargate.engine import Reason, preemption
from stargate.engine.preemption import VictimView, pick_victims


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


def test_a_job_that_may_not_preempt_does_not_stop_the_scan_for_one_behind_it_that_may() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build())
    s.submit(make_job("low").gpus(8).prio(100).runs(1000).build())
    s.cycle(0.0)
    s.submit(make_job("polite").gpus(8).prio(2000, may_preempt=False).at(1).runs(10).build())
    s.submit(make_job("vip").gpus(8).prio(1000).at(1).runs(10).build())
    res = s.cycle(1.0)
    assert [(p.job_id, p.reason) for p in res.preemptions] == [("low", Reason.PRIORITY)]
    assert [x.job_id for x in res.starts] == ["vip"] and s.pending_jobs() == ["low", "polite"]


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


def _view(fits: Callable[[int, int, int], bool] = lambda queue, cluster, gpus: True) -> VictimView:
    """Cluster 0 (rank 0) runs jobs 0 and 1 (4 GPUs each, priority 1, started at 0 and 10 s); cluster 1 (rank 1)
    runs job 2 (8 GPUs, priority 5). Nothing is free."""
    return VictimView(
        total=np.array([8, 8]),
        avail=np.array([0.0, 0.0]),
        rank=np.array([0.0, 1.0]),
        running=[[(100.0, 0, 4), (200.0, 1, 4)], [(50.0, 2, 8)]],
        priority=[1, 1, 5],
        preemptible=[True, True, True],
        started=[0.0, 10.0, 0.0],
        gpus=[4, 4, 8],
        fits=fits,
    )


def test_victims_are_picked_from_the_view_alone() -> None:
    view = _view()
    assert pick_victims(view, queue=0, gpus=4, priority=10, clusters=[0, 1]) == [1], "fewest GPUs, latest start"
    assert pick_victims(view, queue=0, gpus=8, priority=10, clusters=[0, 1]) == [1, 0], "a tie goes to the lower rank"
    assert pick_victims(view, queue=0, gpus=8, priority=10, clusters=[1]) == [2]
    assert pick_victims(view, queue=0, gpus=8, priority=5, clusters=[1]) is None, "equal priority is no victim"
    assert pick_victims(view, queue=0, gpus=9, priority=10, clusters=[0, 1]) is None, "no cluster is big enough"
    no_quota_on_0 = _view(lambda queue, cluster, gpus: cluster != 0)
    assert pick_victims(no_quota_on_0, queue=0, gpus=4, priority=10, clusters=[0, 1]) == [2]


def test_victim_selection_does_not_import_the_scheduler() -> None:
    tree = ast.parse(Path(preemption.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m is not None and m.startswith("stargate.engine.scheduler") for m in imported), imported
