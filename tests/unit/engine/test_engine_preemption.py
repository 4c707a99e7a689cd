"""Preemption: higher priority displaces lower; the victim keeps progress up to its last checkpoint."""

from engine_builders import FleetBuilder, make_job, scheduler


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
