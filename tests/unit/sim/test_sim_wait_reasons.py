"""The simulator's summary says how long jobs waited per wait reason (``wait_s_by_reason``), from the very engine
judgements the server writes: a small trace where the figures can be worked out by hand."""

from engine_builders_sim import run_sim

from stargate.domain import ClusterStatus
from stargate.sim import Failure
from stargate.traces import TraceJob

REASONS = ("quota", "capacity", "power", "clusters_down", "offline", "order")


def test_capacity_then_a_down_cluster_are_counted_in_job_seconds() -> None:
    # One 8-GPU node: 'a' runs 0–1000 s; 'b' (8 GPUs) waits for capacity 10–1000 s and runs to 1100 s; 'c' arrives
    # at 1050 s while the only cluster is down from 1050 s to 1500 s (b stops and waits too); back up, b runs again
    # 1500–1600 s and c waits for it (capacity).
    jobs = [TraceJob("a", 0.0, 1000.0, 8, "q"), TraceJob("b", 10.0, 100.0, 8, "q"), TraceJob("c", 1050.0, 10.0, 1, "q")]
    out, sim = run_sim(jobs, "stargate", nodes=1, failures=[Failure("a", 1050.0, 450.0)])
    got = out["wait_s_by_reason"]
    assert list(got) == list(REASONS)
    assert got["capacity"] == 990.0 + 100.0
    assert got["clusters_down"] == 2 * 450.0, "b (stopped) and c both wait for the repair"
    assert sum(v for k, v in got.items() if k not in ("capacity", "clusters_down")) == 0.0
    assert sim.driver.wait_counts() == {}, "nothing waits at the end"
    assert ClusterStatus.UP is sim.driver.status["a"]


def test_an_empty_run_reports_every_reason_at_zero() -> None:
    out, _ = run_sim([TraceJob("a", 0.0, 10.0, 1, "q")], "stargate", nodes=1)
    assert out["wait_s_by_reason"] == dict.fromkeys(REASONS, 0.0)
