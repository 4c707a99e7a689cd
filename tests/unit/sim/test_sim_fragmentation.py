"""Fragmentation in the summary, and the cap on the burst wait, measured through whole simulator runs."""

import math

import pytest
from engine_builders_sim import run_sim

from stargate.engine import get_policy
from stargate.traces import TraceJob


def test_gpus_free_but_split_over_nodes_count_as_fragmented_while_the_head_waits() -> None:
    # Two 8-GPU nodes; two 5-GPU jobs leave 3 + 3 GPUs free, so a 6-GPU job waits for a node from 10 s to 1,000 s.
    jobs = [TraceJob("a", 0.0, 1000.0, 5, "q"), TraceJob("b", 0.0, 1000.0, 5, "q"), TraceJob("c", 10.0, 100.0, 6, "q")]
    out, sim = run_sim(jobs, "stargate", nodes=2)
    assert sim.state.first_start[2] == 1000.0, "the 6-GPU job runs on one node, once one is free"
    assert out["fragmented_gpu_hours"] == pytest.approx(6 * 990 / 3600, abs=1e-3)
    busy_h = (2 * 5 * 1000 + 6 * 100) / 3600
    assert out["fragmented_share"] == pytest.approx((6 * 990 / 3600) / (busy_h + 6 * 990 / 3600), abs=1e-4)


def test_a_head_short_of_gpus_in_number_is_not_fragmentation() -> None:
    jobs = [TraceJob("a", 0.0, 1000.0, 8, "q"), TraceJob("b", 0.0, 1000.0, 5, "q"), TraceJob("c", 10.0, 100.0, 6, "q")]
    out, sim = run_sim(jobs, "stargate", nodes=2)
    assert sim.state.first_start[2] == 1000.0
    assert out["fragmented_gpu_hours"] == 0.0, "3 GPUs free for a 6-GPU job: too few, not fragmented"


def test_the_burst_wait_is_capped() -> None:
    pol = get_policy("stargate", burst_after_s=0.0, burst_wait_per_gpu_hour_s=300.0, burst_wait_max_s=7200.0)
    assert pol.burst_wait_s(1, 3600.0) == 300.0
    assert pol.burst_wait_s(512, 35 * 86_400.0) == 7200.0, "the largest job waits the cap, not weeks"
    assert get_policy("stargate").burst_wait_max_s == 2 * 86_400.0, "the default cap: 2 days"
    with pytest.raises(ValueError, match="burst_wait_max_s"):
        get_policy("stargate", burst_wait_max_s=-1.0)
    # A 10-hour 8-GPU job behind a full owned node would wait 300 s × 80 GPU-hours = 24,000 s; the cap says 3,600 s.
    jobs = [TraceJob("own", 0.0, 100_000.0, 8, "q"), TraceJob("big", 1.0, 36_000.0, 8, "q")]
    settings = {"burst_after_s": 0.0, "burst_wait_per_gpu_hour_s": 300.0, "burst_wait_max_s": 3600.0}
    _, sim = run_sim(jobs, "stargate", nodes=1, cloud_nodes=2, settings=settings)
    assert sim.state.first_start[1] == 3601.0
    settings["burst_wait_max_s"] = math.inf
    _, sim = run_sim(jobs, "stargate", nodes=1, cloud_nodes=2, settings=settings)
    assert sim.state.first_start[1] == 24_001.0
