"""Fourth review of the outage bound (``max_outage_stops``, ``outage_limit``) in the pure engine.

The documented rule (docs/reference/scheduling.md, health.md): a job fails as ``outage_limit`` when its runs, more
than ``max_outage_stops`` times *in a row*, were stopped by an outage before they saved a checkpoint; "a run that
saved a checkpoint sets the count back to 0". Each test began as a strict xfail where the engine departed from it.
"""

import pytest
from engine_builders import FleetBuilder, assert_consistent, make_job, scheduler

from stargate.engine import Reason
from stargate.engine.interruptions import gained, outage_count, over_limit
from stargate.engine.jobs import checkpointed
from stargate.engine.policies import FifoPolicy, get_policy


def _flaky(policy: str = "stargate", **settings: float) -> object:
    return scheduler(FleetBuilder().owned().cluster("a", nodes=1).build(), policy, **settings)


def test_a_run_that_saved_checkpoints_and_was_preempted_breaks_the_row_of_outage_stops() -> None:
    s = _flaky(max_outage_stops=1)
    s.submit(make_job("j").gpus(8).prio(100).ckpt(100).runs(100_000).build())
    assert [x.job_id for x in s.cycle(0.0).starts] == ["j"]
    (stop,) = s.set_cluster_status("a", "down", 10.0)  # before its first checkpoint: 1 in a row
    assert stop.outage_stops == 1
    s.set_cluster_status("a", "up", 10.0)
    assert [x.job_id for x in s.cycle(10.0).starts] == ["j"]
    # This run goes on for 1000 s and saves ten checkpoints, then a job of higher priority preempts it.
    s.submit(make_job("vip").gpus(8).prio(1000).at(1010.0).runs(10).build())
    res = s.cycle(1010.0)
    assert [(p.job_id, p.reason) for p in res.preemptions] == [("j", Reason.PRIORITY)]
    assert res.preemptions[0].progress_s >= 1000.0  # it kept its checkpoints: the row of outage stops is broken
    s.finish("vip", 1020.0, completed=True)
    assert [x.job_id for x in s.cycle(1020.0).starts] == ["j"]
    (stop,) = s.set_cluster_status("a", "down", 1030.0)  # one outage stop since the run that saved checkpoints
    s.set_cluster_status("a", "up", 1030.0)
    rejected = [(r.job_id, r.reason) for r in s.cycle(1030.0).rejections]
    assert_consistent(s)
    assert (stop.outage_stops, rejected) == (1, [])


@pytest.mark.parametrize("ran_s", [0.0, -5.0])
def test_a_run_that_did_no_work_never_clears_the_count(ran_s: float) -> None:
    policy = get_policy("gittins")  # restart_cost_s 60
    began = 480.0  # progress left by earlier runs (a checkpoint at 600 s, less two restarts)
    kept = checkpointed(began, ran_s, 600.0, policy.restart_cost_s)
    assert outage_count(3, began, kept, True) == 4 and not over_limit(policy, 4)


def test_a_run_shorter_than_its_restart_that_checkpoints_often_is_judged_by_its_work() -> None:
    """Held: with checkpoints every 30 s and a 60 s restart, a run of 100 s after a stop that owes 30 s keeps more
    than it began with (cleared); runs of 45 s and 30 s do not (counted)."""
    policy = get_policy("gittins")
    cost = policy.restart_cost_s
    assert cost == 60.0
    owed = -30.0  # a stop kept its first checkpoint (30 s) less the restart: 30 s owed
    for ran, saved in ((100.0, True), (45.0, False), (30.0, False)):
        kept = checkpointed(owed, ran, 30.0, cost)
        assert gained(owed, kept) is saved, ran
        assert outage_count(2, owed, kept, True) == (0 if saved else 3)


def test_a_job_that_gains_nothing_between_outages_is_not_requeued_for_ever() -> None:
    s = _flaky("gittins", max_outage_stops=2)
    s.submit(make_job("j").gpus(8).ckpt(30).runs(100_000).build())
    now, kept, counts, rejected = 0.0, [], [], []
    for _ in range(10):
        res = s.cycle(now)
        rejected += [(r.job_id, r.reason) for r in res.rejections]
        if not res.starts:
            break
        now += 80.0
        for p in s.set_cluster_status("a", "down", now):
            kept.append(p.progress_s)
            counts.append(p.outage_stops)
        s.set_cluster_status("a", "up", now)
    rejected += [(r.job_id, r.reason) for r in s.cycle(now).rejections]
    assert kept[1:] == [kept[0]] * (len(kept) - 1)  # no run gained anything over the one before
    assert rejected == [("j", "outage_limit")], (kept, counts)


@pytest.mark.parametrize("limit", [0, 10**9])
def test_extreme_limits_behave(limit: int) -> None:
    """Held: 0 fails a job at its first outage stop without a checkpoint; 10**9 (the highest allowed) never in
    practice, and 10**9 + 1 is refused as every setting is."""
    policy = FifoPolicy(max_outage_stops=limit)
    policy.validate()
    assert outage_count(0, 0.0, 0.0, True) == 1 and over_limit(policy, 1) is (limit < 1)
    assert over_limit(policy, outage_count(limit, 0.0, 0.0, True))
    with pytest.raises(ValueError, match="max_outage_stops"):
        FifoPolicy(max_outage_stops=10**9 + 1).validate()
    with pytest.raises(ValueError, match="max_outage_stops"):
        FifoPolicy(max_outage_stops=True).validate()  # type: ignore[arg-type]
