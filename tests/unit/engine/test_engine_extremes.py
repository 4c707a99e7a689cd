"""The engine never crashes on a value the domain accepts: extreme durations, checkpoint intervals, priorities and
online windows, driven through preemption (priority, cluster down) and clusters going offline.

Regression: a checkpoint interval of 5e-324 s made every cycle that preempted raise ``OverflowError: cannot convert
float infinity to integer`` (``floor(ran / ckpt)`` in ``JobTable.kept_progress``), stopping the scheduler for every
team.
"""

import math
import sys
from datetime import date

from engine_builders import EPOCH, FleetBuilder, assert_consistent, make_job, scheduler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stargate.domain.limits import MAX_DATE, MAX_DURATION_S, MIN_DATE

# Every float the engine may be handed for a duration: what the job spec accepts (1 s to 100 years) and, since the
# engine must not rely on the edge's bounds, anything finite and positive down to the smallest subnormal.
durations = st.one_of(
    st.none(),
    st.sampled_from([5e-324, sys.float_info.min, 1e-300, 1e-9, 1.0, float(MAX_DURATION_S), 1e300, sys.float_info.max]),
    st.floats(min_value=5e-324, max_value=float(MAX_DURATION_S), allow_nan=False, allow_infinity=False),
)
priorities = st.sampled_from([0, 1, 100, 500, 1000, 1_000_000])
days = st.one_of(st.sampled_from([MIN_DATE, MAX_DATE, EPOCH.date()]), st.dates(MIN_DATE, MAX_DATE))
instants = st.one_of(
    st.sampled_from([0.0, 1.0, 1e-300, 5e-324, 86_400.0, 7e9, -1.6e9]),  # 2200 and 1970 seen from the 2025 epoch
    st.floats(min_value=-1.7e9, max_value=7.0e9, allow_nan=False, allow_infinity=False),
)
jobs_st = st.lists(
    st.tuples(st.integers(1, 16), priorities, durations, durations, st.booleans()), min_size=1, max_size=12
)
windows = st.tuples(st.one_of(st.none(), days), st.one_of(st.none(), days))
ops_st = st.lists(
    st.tuples(st.sampled_from(["cycle", "down", "up", "finish", "submit"]), st.integers(0, 20), instants),
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=jobs_st, window_a=windows, window_b=windows, ops=ops_st)
def test_engine_survives_extreme_accepted_values(
    jobs: list[tuple[int, int, float | None, float | None, bool]],
    window_a: tuple[date | None, date | None],
    window_b: tuple[date | None, date | None],
    ops: list[tuple[str, int, float]],
) -> None:
    fleet = (
        FleetBuilder()
        .owned()
        .cluster("a", nodes=2, gpn=8, online_from=window_a[0], online_until=window_a[1])
        .cluster("b", nodes=1, gpn=8, online_from=window_b[0], online_until=window_b[1])
        .cluster("c", nodes=1, gpn=8)
        .build()
    )
    s = scheduler(fleet)
    for i, (g, prio, dur, ckpt, pre) in enumerate(jobs):
        job = make_job(f"j{i}").gpus(g).prio(prio, pre).runs(dur)
        s.submit((job.ckpt(ckpt) if ckpt is not None else job).build())
    extra = 0
    for op, k, now in [*ops, ("cycle", 0, 7.0e9)]:
        if op == "cycle":
            res = s.cycle(now)
            for p in res.preemptions:
                assert math.isfinite(p.progress_s) and p.progress_s >= 0.0
        elif op in ("down", "up"):
            for p in s.set_cluster_status("abc"[k % 3], op, now):
                assert math.isfinite(p.progress_s) and p.progress_s >= 0.0
        elif op == "finish" and s.running_jobs():
            s.finish(sorted(s.running_jobs())[k % len(s.running_jobs())])
        elif op == "submit":  # a high-priority job that reclaims GPUs by preemption
            extra += 1
            s.submit(make_job(f"x{extra}").gpus(8).prio(1_000_000).at(max(now, 0.0)).runs(1.0).build())
        assert_consistent(s)


def test_tiny_checkpoint_interval_is_preempted_without_overflow() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build())
    s.submit(make_job("low").gpus(8).prio(100).ckpt(5e-324).runs(1e9).build())
    s.cycle(0.0)
    s.submit(make_job("vip").gpus(8).prio(1000).at(10).runs(10).build())
    res = s.cycle(10.0)
    assert [(p.job_id, p.progress_s) for p in res.preemptions] == [("low", 10.0)]


def test_cluster_going_offline_evicts_a_tiny_checkpoint_job_without_overflow() -> None:
    fleet = FleetBuilder().owned().cluster("a", nodes=1, online_until=date(2025, 1, 1)).build()
    s = scheduler(fleet)
    s.submit(make_job("low").gpus(8).prio(100).ckpt(5e-324).runs(1e9).build())
    assert [x.job_id for x in s.cycle(0.0).starts] == ["low"]
    res = s.cycle(86_400.0)  # the day after online_until: the cluster goes offline
    assert [(p.job_id, p.reason, p.progress_s) for p in res.preemptions] == [("low", "cluster_offline", 86_400.0)]
