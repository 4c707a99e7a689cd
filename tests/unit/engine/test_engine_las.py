"""The attained-service policies (las, gittins): order by service, demotion at a checkpoint, promotion, restart cost."""

from __future__ import annotations

import heapq
import math
from dataclasses import replace

import pytest
from engine_builders import FleetBuilder, make_job, scheduler
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.engine import get_policy
from stargate.engine.jobs import PENDING, RUNNING

# One node of 8 GPUs; an 8-GPU job crosses the first threshold (3,600 GPU-s) after 450 s and checkpoints every
# 1,000 s, so it is demoted at 1,000 s.
LAS = {"las_levels": 3, "las_base_gpu_s": 3600.0, "las_factor": 10.0, "restart_cost_s": 60.0}


def _fleet():  # type: ignore[no-untyped-def]
    return FleetBuilder().owned().cluster("a", nodes=1, gpn=8).queue("q").build()


def test_las_starts_the_job_with_least_attained_service_first() -> None:
    s = scheduler(_fleet(), "las", **LAS)
    old = replace(make_job("old").gpus(8).at(0).build(), attained_gpu_s=50_000.0)  # level 2
    s.submit(old)
    s.submit(make_job("new").gpus(8).at(100).build())  # level 0, submitted later
    res = s.cycle(100)
    assert [x.job_id for x in res.starts] == ["new"]


def test_demotion_preempts_only_when_a_higher_level_job_waits() -> None:
    s = scheduler(_fleet(), "las", **LAS)
    s.submit(make_job("a").gpus(8).at(0).ckpt(1000).build())
    res = s.cycle(0)
    assert [x.job_id for x in res.starts] == ["a"]
    assert res.next_wakeup_s is None  # nobody waits: the demotion changes nothing, no wake-up
    s.submit(make_job("b").gpus(8).at(10).ckpt(1000).build())
    res = s.cycle(10)
    assert not res.starts and res.next_wakeup_s == 1000.0  # a's first checkpoint past the threshold
    assert not s.has_work(999.0)
    res = s.cycle(1000.0)
    assert [p.job_id for p in res.preemptions] == ["a"]
    assert res.preemptions[0].progress_s == 1000.0 - 60.0  # nothing lost at the checkpoint; the restart cost
    assert [x.job_id for x in res.starts] == ["b"]


def test_no_preemption_within_a_level() -> None:
    s = scheduler(_fleet(), "las", **LAS)
    s.submit(make_job("a").gpus(8).at(0).ckpt(1000).build())
    s.cycle(0)
    s.submit(replace(make_job("b").gpus(8).at(10).build(), attained_gpu_s=5_000.0))  # level 1, as a will be
    res = s.cycle(10)
    assert res.next_wakeup_s is None or res.next_wakeup_s > 1000.0
    assert not s.cycle(1000.0).preemptions


def test_promotion_bounds_the_wait_of_a_demoted_job() -> None:
    s = scheduler(_fleet(), "las", **LAS, starvation_factor=2.0, promote_after_s=math.inf)
    s.submit(make_job("a").gpus(8).at(0).ckpt(1000).build())
    s.cycle(0)
    s.submit(make_job("b").gpus(8).at(10).ckpt(1000).build())
    s.cycle(10)
    s.cycle(1000.0)  # a stopped after a 1,000 s run: promoted after 2,000 s of waiting
    res = s.cycle(2000.0)  # b demoted at its first checkpoint; a waits at level 1: no preemption yet
    assert not res.preemptions
    assert res.next_wakeup_s == 3000.0
    res = s.cycle(3000.0)
    assert [p.job_id for p in res.preemptions] == ["b"] and [x.job_id for x in res.starts] == ["a"]
    assert res.preemptions[0].progress_s == 2000.0 - 60.0  # b ran two whole intervals


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="las_factor"):
        get_policy("las", las_factor=1.0)
    with pytest.raises(ValueError, match="las_levels"):
        get_policy("gittins", las_levels=0)
    assert get_policy("las", las_levels=4, las_base_gpu_s=10.0, las_factor=2.0).thresholds() == (10.0, 20.0, 40.0)  # type: ignore[attr-defined]


def test_gittins_orders_within_a_level_by_index() -> None:
    s = scheduler(_fleet(), "gittins", **LAS, gittins_min_samples=1)
    svc = s.service
    assert svc is not None
    for g in [1000.0, 1000.0, 1000.0, 3000.0]:
        svc.completed("q", g)
    # Both at level 0 (service < 3,600): the one at 900 GPU-s is likely to finish within the quantum, the one at 0 less
    s.submit(replace(make_job("fresh").gpus(8).at(0).build()))
    s.submit(replace(make_job("almost").gpus(8).at(5).build(), attained_gpu_s=900.0))
    assert [x.job_id for x in s.cycle(5).starts] == ["almost"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3000), st.integers(1, 4000), st.sampled_from([1, 2, 4, 8])), min_size=1, max_size=12
    ),
    st.sampled_from([500.0, 2000.0]),
)
def test_no_job_waits_below_the_top_level_longer_than_the_promotion_bound(
    trace: list[tuple[int, int, int]], bound: float
) -> None:
    """Driven like a clock (finishes, arrivals, wake-ups): at every decision, no pending job below the top level has
    waited since its stop longer than ``promote_after_s``; and every job finishes."""
    s = scheduler(_fleet(), "las", **LAS, promote_after_s=bound, starvation_factor=math.inf)
    t, svc = s.jobs, s.service
    assert svc is not None
    events: list[tuple[float, int, str, int]] = []
    dur: dict[str, float] = {}
    for k, (at, d, g) in enumerate(trace):
        jid = f"j{k}"
        dur[jid] = float(d)
        heapq.heappush(events, (float(at), 1, jid, g))
    run: dict[str, int] = {}
    stopped_at: dict[str, float] = {}
    done: set[str] = set()
    wake = math.inf
    while events or wake < math.inf:
        now = min(events[0][0] if events else math.inf, wake)
        while events and events[0][0] == now:
            _, kind, jid, g = heapq.heappop(events)
            if kind == 1:
                s.submit(make_job(jid).gpus(g).at(now).ckpt(300).build())
            elif kind == 0 and run.get(jid) == g:
                s.finish(jid, now, completed=True)
                done.add(jid)
        res = s.cycle(now)
        for p in res.preemptions:
            stopped_at[p.job_id] = now
            run[p.job_id] = run.get(p.job_id, 0) + 1
        for x in res.starts:
            j = t.ix[x.job_id]
            run[x.job_id] = run.get(x.job_id, 0) + 1
            heapq.heappush(events, (now + dur[x.job_id] - t.progress[j], 0, x.job_id, run[x.job_id]))
        for jid, at in stopped_at.items():
            j = t.ix[jid]
            if t.state[j] == PENDING and svc.level(j) > 0:
                assert now - at <= bound
        wake = res.next_wakeup_s if res.next_wakeup_s is not None else math.inf
        assert all(t.state[t.ix[j]] != RUNNING for j in done)
    assert done == set(dur)
