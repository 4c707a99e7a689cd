"""Simulator runs: every job accounted for, determinism of the full decision log, failures, bursting."""

import json

import numpy as np
import pytest
from engine_builders_sim import run_sim
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.sim import Failure
from stargate.traces import TraceJob


def _jobs(n: int = 300, seed: int = 7) -> list[TraceJob]:
    rng = np.random.default_rng(seed)
    submit = np.cumsum(rng.exponential(60.0, n))
    gpus = rng.choice([1, 1, 1, 2, 4, 8, 16], n)
    dur = rng.lognormal(7.0, 1.2, n)
    queue = rng.choice(["q", "q", "q", "ghost"], n)
    prio = rng.choice([None, None, "high"], n)
    return [
        TraceJob(f"j{i}", float(submit[i]), float(dur[i]), int(gpus[i]), str(queue[i]), priority_class=prio[i])
        for i in range(n)
    ]


@pytest.mark.parametrize("policy", ["fifo", "stargate", "srtf"])
def test_every_job_is_accounted_for_and_the_run_is_deterministic(policy: str) -> None:
    jobs = _jobs()
    a, sim_a = run_sim(jobs, policy, nodes=2, record_log=True, seed=3)
    b, sim_b = run_sim(jobs, policy, nodes=2, record_log=True, seed=3)
    assert sim_a.state.log == sim_b.state.log and len(sim_a.state.log) > 400
    for key in ("avg_jct_s", "p99_wait_s", "preemptions", "gpu_utilization", "cost_usd"):
        assert a[key] == b[key]
    assert a["jobs_finished"] + a["jobs_rejected"] + a["jobs_pending_at_end"] == a["jobs_total"] == 300
    assert a["jobs_pending_at_end"] == 0
    assert a["rejected_by_reason"] == {"unknown_queue": sum(j.queue == "ghost" for j in jobs)}


def test_stargate_is_no_worse_than_fifo_and_preempts_for_high_priority() -> None:
    jobs = _jobs(seed=11)
    fifo, _ = run_sim(jobs, "fifo", nodes=2)
    ours, _ = run_sim(jobs, "stargate", nodes=2)
    assert ours["avg_jct_s"] <= fifo["avg_jct_s"]
    assert ours["preemptions"] > 0 and fifo["preemptions"] == 0


def test_until_stops_early_and_leaves_jobs_pending() -> None:
    out, _ = run_sim(_jobs(), "stargate", nodes=2, until_s=3600.0)
    assert out["jobs_pending_at_end"] > 0
    assert out["jobs_finished"] + out["jobs_rejected"] + out["jobs_pending_at_end"] == 300


def test_a_failure_requeues_jobs_which_keep_checkpointed_progress() -> None:
    jobs = [TraceJob("long", 0.0, 10_000.0, 8, "q", checkpoint_interval_s=1000.0)]
    out, sim = run_sim(jobs, "stargate", nodes=1, failures=[Failure("a", 2500.0, 500.0)], record_log=True)
    assert out["preemptions_by_reason"] == {"cluster_down": 1}
    # 2,000 s checkpointed at the failure; restart at 3,000 s; 8,000 s left → finish at 11,000 s.
    assert sim.state.finish[0] == 11_000.0
    assert [r[1:] for r in sim.state.log[1:3]] == [("failure", "a"), ("preempt", "long", "cluster_down", 2000.0)]


def test_bursting_waits_then_uses_the_cloud_and_reports_cloud_gpu_hours() -> None:
    jobs = [TraceJob("a", 0.0, 7200.0, 8, "q"), TraceJob("b", 10.0, 3600.0, 8, "q")]
    at_once, _ = run_sim(jobs, "stargate", nodes=1, cloud_nodes=10)
    assert at_once["cloud_gpu_hours"] == 8.0 and at_once["avg_jct_s"] == (7200 + 3600) / 2
    waited, sim = run_sim(jobs, "stargate", nodes=1, cloud_nodes=10, settings={"burst_after_s": 600.0})
    assert sim.state.first_start[1] == 610.0 and waited["cloud_gpu_hours"] == 8.0
    never, _ = run_sim(jobs, "stargate", nodes=1, cloud_nodes=10, settings={"burst_after_s": 1e9})
    assert never["cloud_gpu_hours"] == 0.0 and never["avg_jct_s"] == (7200 + 7190 + 3600) / 2
    per_gpu, sim = run_sim(
        jobs,
        "stargate",
        nodes=1,
        cloud_nodes=10,
        trim=0,
        settings={"burst_after_s": 0.0, "burst_wait_per_gpu_hour_s": 100.0},
    )
    assert sim.state.first_start[1] == 10.0 + 100.0 * 8 * 1.0
    assert per_gpu["cost_by_provider"] == {"cl": 8 * 4.0, "own": 8 * 2.0}


def test_middle_window_drops_jobs_at_each_end() -> None:
    out, _ = run_sim(_jobs(), "stargate", nodes=2, trim=50)
    mw = out["middle_window"]
    assert (
        mw["jobs"] == 200
        and mw["trim_jobs"] == 50
        and mw["avg_jct_h"] == pytest.approx(mw["avg_jct_s"] / 3600, abs=1e-4)
    )


def test_random_failures_follow_the_seed() -> None:
    jobs = _jobs(seed=5)
    a, sim_a = run_sim(jobs, "stargate", nodes=2, seed=1, mtbf_s=4 * 3600.0, mttr_s=600.0, record_log=True)
    _, sim_b = run_sim(jobs, "stargate", nodes=2, seed=1, mtbf_s=4 * 3600.0, mttr_s=600.0, record_log=True)
    _, sim_c = run_sim(jobs, "stargate", nodes=2, seed=2, mtbf_s=4 * 3600.0, mttr_s=600.0, record_log=True)
    assert sim_a.state.log == sim_b.state.log and sim_a.state.log != sim_c.state.log
    assert any(e[1] == "failure" for e in sim_a.state.log)
    assert a["jobs_pending_at_end"] == 0 and a["jobs_finished"] + a["jobs_rejected"] == 300


def test_until_charges_the_runs_still_going_up_to_the_horizon() -> None:
    jobs = [TraceJob("a", 0.0, 36_000.0, 8, "q")]
    out, _ = run_sim(jobs, "stargate", nodes=1, until_s=5 * 3600.0)
    assert out["jobs_pending_at_end"] == 1
    assert out["gpu_hours"] == 40.0 and out["cost_usd"] == 40.0  # 8 GPUs × 5 h at 1 USD per GPU-hour
    assert out["makespan_s"] == 18_000.0 and out["gpu_utilization"] == 1.0


def test_overlapping_outages_keep_the_cluster_down_until_the_last_one_ends() -> None:
    jobs = [TraceJob("a", 0.0, 100.0, 8, "q"), TraceJob("b", 1000.0, 100.0, 8, "q")]
    failures = [Failure("a", 500.0, 4500.0), Failure("a", 600.0, 100.0)]
    out, sim = run_sim(jobs, "stargate", nodes=1, failures=failures, record_log=True)
    assert out["max_wait_s"] == 4000.0 and sim.state.first_start[1] == 5000.0
    assert [e[1] for e in sim.state.log if e[1] in ("failure", "repair")] == ["failure", "repair"]


def test_a_random_repair_within_a_failure_window_does_not_bring_the_cluster_back() -> None:
    jobs = [TraceJob(f"j{i}", i * 50.0, 40.0, 8, "q") for i in range(2000)]
    window = Failure("a", 20_000.0, 40_000.0)
    _, sim = run_sim(jobs, "stargate", nodes=1, failures=[window], mtbf_s=3000.0, mttr_s=300.0, seed=4)
    started = sim.state.first_start
    assert not np.any((started > 20_000.0) & (started < 60_000.0))


def test_a_job_with_an_absurd_run_time_is_rejected_and_every_figure_stays_finite() -> None:
    jobs = [TraceJob("a", 0.0, 100.0, 8, "q"), TraceJob("huge", 10.0, 1e308, 8, "q")]
    jobs.append(TraceJob("late", 1e308, 100.0, 8, "q"))
    out, _ = run_sim(jobs, "stargate", nodes=1, scale_arrivals=0.5)
    assert out["rejected_by_reason"] == {"duration_out_of_range": 1, "submit_out_of_range": 1}
    assert out["jobs_finished"] == 1 and out["jobs_pending_at_end"] == 0
    json.dumps(out, allow_nan=False)  # strict JSON: no NaN or Infinity anywhere
    assert out["gpu_hours"] == round(800 / 3600, 3)


def test_with_no_finished_job_jct_figures_are_none_and_speeds_count_only_what_was_processed() -> None:
    jobs = [TraceJob("a", 0.0, 36_000.0, 8, "q"), TraceJob("b", 10.0, 100.0, 8, "q")]
    out, _ = run_sim(jobs, "fifo", nodes=1, until_s=3600.0, trim=0)
    assert out["jobs_finished"] == 0
    assert all(out[k] is None for k in ("avg_jct_s", "p50_jct_s", "p95_jct_s", "p99_jct_s"))
    assert out["avg_wait_s"] == 0.0 and out["max_wait_s"] == 0.0  # 'a' started at once; 'b' never did
    assert out["jobs_per_s"] == 0.0  # nothing settled, though two jobs were read
    json.dumps(out, allow_nan=False)
    nobody, _ = run_sim([TraceJob("c", 5000.0, 10.0, 8, "q")], "fifo", nodes=1, until_s=100.0)
    assert nobody["avg_wait_s"] is None and nobody["max_wait_s"] is None and nobody["p99_wait_s"] is None


@pytest.mark.parametrize(
    ("config", "name"),
    [
        ({"seed": -1}, "seed"),
        ({"scale_arrivals": float("nan")}, "scale_arrivals"),
        ({"scale_arrivals": float("inf")}, "scale_arrivals"),
        ({"mttr_s": 0.0}, "mttr_s"),
        ({"mtbf_s": float("nan")}, "mtbf_s"),
    ],
)
def test_a_configuration_no_run_can_use_is_refused_by_name(config: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=f"simulation setting {name}: found .*; expected"):
        run_sim([TraceJob("a", 0.0, 10.0, 8, "q")], "stargate", **config)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 3000)), min_size=1, max_size=5))
def test_no_run_starts_while_any_outage_is_open(windows: list[tuple[int, int]]) -> None:
    jobs = [TraceJob(f"j{i}", i * 100.0, 50.0, 8, "q") for i in range(80)]
    failures = [Failure("a", float(at), float(d)) for at, d in windows]
    _, sim = run_sim(jobs, "stargate", nodes=1, failures=failures, record_log=True)
    starts = [e[0] for e in sim.state.log if e[1] == "start"]
    assert starts and not any(at <= s < at + d for s in starts for at, d in windows)


def test_a_horizon_after_the_last_job_does_not_stretch_the_run() -> None:
    jobs = [TraceJob("a", 0.0, 100.0, 8, "q"), TraceJob("b", 10.0, 50.0, 8, "q")]
    out, sim = run_sim(jobs, "stargate", nodes=2, failures=[Failure("a", 10_000.0, 60.0)], until_s=5_000.0)
    assert out["jobs_finished"] == 2 and sim.state.end_s == 100.0  # the outage after the horizon changes nothing


def test_a_job_stopped_by_outages_as_it_starts_fails_past_the_limit_in_the_simulator() -> None:
    """Outages 5 s after each restart, before the first checkpoint (1,000 s): the job's fourth stop in a row fails it
    (max_outage_stops 3), and nothing runs after that."""
    jobs = [TraceJob("j", 0.0, 10_000.0, 8, "q", checkpoint_interval_s=1000.0)]
    failures = [Failure("a", 5.0 + 20.0 * k, 10.0) for k in range(6)]
    out, _ = run_sim(jobs, "stargate", nodes=1, failures=failures, settings={"max_outage_stops": 3})
    assert out["preemptions_by_reason"] == {"cluster_down": 4}
    assert out["rejected_by_reason"] == {"outage_limit": 1} and out["jobs_finished"] == 0
    saved = [Failure("a", 1500.0 + 2000.0 * k, 10.0) for k in range(4)]  # each run saves a checkpoint first
    out, _ = run_sim(jobs, "stargate", nodes=1, failures=saved, settings={"max_outage_stops": 0})
    assert out["jobs_finished"] == 1 and out["preemptions_by_reason"] == {"cluster_down": 4}
