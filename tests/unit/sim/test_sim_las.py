"""The las policy in the simulator: the restart cost is charged exactly once per restart."""

from __future__ import annotations

from engine_builders_sim import run_sim

from stargate.traces import TraceJob

LAS = {"las_levels": 3, "las_base_gpu_s": 3600.0, "las_factor": 10.0, "restart_cost_s": 60.0}


def test_restart_cost_is_charged_once_per_restart_in_the_simulator() -> None:
    jobs = [
        TraceJob("a", 0.0, 3000.0, 8, "q", priority_class="normal", checkpoint_interval_s=1000.0),
        TraceJob("b", 10.0, 200.0, 8, "q", priority_class="normal", checkpoint_interval_s=1000.0),
    ]
    # (class normal: its jobs may preempt; a class with preempts_lower false never stops other jobs, levels or not)
    summary, sim = run_sim(jobs, "las", settings=LAS)
    st_ = sim.state
    # a is demoted and stopped at 1,000 s keeping 940 s; b runs 1,000–1,200; a restarts and runs 2,060 s more
    assert summary["preemptions"] == 1
    assert st_.finish[sim.ix["b"]] == 1200.0
    assert st_.finish[sim.ix["a"]] == 1200.0 + 3000.0 - 940.0
    assert st_.lost_gpu_s == 60.0 * 8  # only the restart cost: a was stopped at a checkpoint
    assert summary["restart_lost_gpu_hours"] == round(60.0 * 8 / 3600.0, 3)
