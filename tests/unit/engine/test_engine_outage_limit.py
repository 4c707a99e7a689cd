"""The engine's bound on outages: a job whose runs outages stop, each before it saved a checkpoint, more than
``max_outage_stops`` times in a row fails as ``outage_limit``; a run that saved one clears the count. The same rule in
the scheduler, the driver (a count restored from the clock's records) and the simulator."""

import pytest
from engine_builders import EPOCH, FleetBuilder, assert_consistent, make_job, scheduler

from stargate.domain import ClusterStatus
from stargate.engine import Driver, JobTerms, get_policy
from stargate.engine.interruptions import gained, outage_count, over_limit
from stargate.engine.policies import FifoPolicy


@pytest.mark.parametrize(
    ("began", "kept", "further"),
    [
        (0.0, 0.0, False),  # stopped before its first checkpoint
        (0.0, 100.0, True),
        (0.0, -60.0, False),  # owes the restart: kept nothing
        (500.0, 440.0, False),  # began at 500 s, stopped before the next checkpoint
        (500.0, 540.0, True),
        (-60.0, -60.0, False),  # stopped again before paying its restart
        (0.0, 0.0, False),  # a checkpoint at 60 s, less a restart cost of 60 s: no further on
    ],
)
def test_a_run_left_its_job_further_on_when_it_kept_more_than_it_began_with(
    began: float, kept: float, further: bool
) -> None:
    assert gained(began, kept) is further


@pytest.mark.parametrize(
    ("before", "kept", "outage", "count"),
    [(0, 0.0, True, 1), (4, 0.0, True, 5), (5, 100.0, True, 0), (3, 0.0, False, 3), (3, 100.0, False, 0)],
)
def test_outage_stops_count_in_a_row_and_any_run_that_got_further_clears_them(
    before: int, kept: float, outage: bool, count: int
) -> None:
    assert outage_count(before, 0.0, kept, outage) == count


def test_past_the_limit_the_job_fails() -> None:
    policy = FifoPolicy(max_outage_stops=5)
    assert not over_limit(policy, 5) and over_limit(policy, 6) and over_limit(FifoPolicy(max_outage_stops=0), 1)


def test_max_outage_stops_is_checked_like_every_setting() -> None:
    with pytest.raises(ValueError, match="max_outage_stops"):
        FifoPolicy(max_outage_stops=-1).validate()
    assert get_policy("gittins").max_outage_stops == 5


def _outage_loop(limit: int, run_s: float, outages: int) -> tuple[list[int], list[tuple[str, str]]]:
    """A job started and stopped by ``outages`` outages of its only cluster, each ``run_s`` after its start."""
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build(), "fifo", max_outage_stops=limit)
    s.submit(make_job("j").gpus(8).ckpt(100).runs(100_000).build())
    counts: list[int] = []
    rejected: list[tuple[str, str]] = []
    now = 0.0
    for _ in range(outages):
        res = s.cycle(now)
        rejected += [(r.job_id, r.reason) for r in res.rejections]
        if not res.starts:
            break
        now += run_s
        counts += [p.outage_stops for p in s.set_cluster_status("a", "down", now)]
        s.set_cluster_status("a", "up", now)
        assert_consistent(s)
    rejected += [(r.job_id, r.reason) for r in s.cycle(now).rejections]
    return counts, rejected


def test_a_job_that_takes_its_cluster_down_as_it_starts_fails_after_the_limit() -> None:
    counts, rejected = _outage_loop(limit=2, run_s=10.0, outages=10)
    assert counts == [1, 2, 3]
    assert rejected == [("j", "outage_limit")]


def test_a_job_that_saves_a_checkpoint_between_outages_is_never_failed_for_them() -> None:
    counts, rejected = _outage_loop(limit=2, run_s=150.0, outages=10)  # each run saves the checkpoint at 100 s
    assert counts == [0] * 10 and rejected == []


def test_an_offline_window_is_never_counted() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build(), "fifo", max_outage_stops=0)
    s.submit(make_job("j").gpus(8).ckpt(100).runs(1000).build())
    s.cycle(0.0)
    (stop,) = s._evict(0, 10.0, "cluster_offline")  # type: ignore[arg-type]
    assert stop.outage_stops == 0 and s.pending_jobs() == ["j"]


def test_the_driver_restores_the_count_and_hands_on_a_stop_and_a_failure_together() -> None:
    fleet = FleetBuilder().owned().cluster("a", nodes=1).build()
    driver = Driver(fleet, FifoPolicy(max_outage_stops=3), EPOCH)
    driver.submit(JobTerms(id="j", queue="q", gpus=8, submit_s=0.0, outage_stops=3))  # restored: 3 in a row
    assert [s.job_id for s in driver.decide(0.0).starts] == ["j"]
    driver.set_cluster_status("a", ClusterStatus.DOWN, 5.0)
    out = driver.decide(5.0)
    assert [(p.job_id, p.reason, p.outage_stops) for p in out.preemptions] == [("j", "cluster_down", 4)]
    assert [(r.job_id, r.reason) for r in out.rejections] == [("j", "outage_limit")]
    assert driver.where == {} and driver.waiting_gpus(5.0, 0.0) == {}
