"""Services and a training trace on one fleet: replicas get GPUs through the same driver, preempting preemptible
training through the normal preemption path, and give them back when the service ends."""

import pytest
from service_helpers import fleet, requests, run, spec

from stargate.sim import Failure
from stargate.traces import TraceJob


def _training(preemptible: bool = True) -> TraceJob:
    """8 GPUs for 1,000 s from t=0 at class 'normal', a checkpoint every 60 s."""
    return TraceJob(
        id="train-1",
        submit_s=0.0,
        duration_s=1000.0,
        gpus=8,
        queue="train",
        priority_class="normal",
        preemptible=preemptible,
        checkpoint_interval_s=60.0,
    )


def test_a_replica_preempts_preemptible_training_and_the_job_finishes_later() -> None:
    """The service starts at 100 s on the one 8-GPU node the job holds: the job stops (keeping 60 s of
    checkpointed work, restarts cost nothing here), the replica serves two requests until 100.3 s, then the job
    runs its last 940 s."""
    service = requests(spec(gpus_per_replica=8), [0.0, 0.1], [1000, 1000], [10, 10])
    out, sim = run([service], [_training()], requests_at_s=100.0, settings={"restart_cost_s": 0.0})
    s, t = out["services"][0], out["training"]
    assert s["requests_served"] == 2 and s["placements"] == 1
    assert t["measured"] is True
    assert (t["preemptions_with_services"], t["preemptions_without_services"]) == (1, 0)
    assert t["without_services"]["mean_jct_s"] == pytest.approx(1000.0)
    # Stopped at 100 s with 60 s checkpointed; restarted when the service ended (its second request at 100.3 s).
    restart = sim.services[0].end_s
    assert restart == pytest.approx(100.3)
    assert t["with_services"]["mean_jct_s"] == pytest.approx(restart + 940.0, abs=1.0)
    assert t["mean_jct_change_pct"] > 0


def test_a_replica_waits_for_non_preemptible_training_and_its_requests_wait_with_it() -> None:
    """The job holds the node until 1,000 s and may not be preempted: the replica is placed then and cold starts
    20 s; the request (at 100 s) has its first token after 1,020 + 0.1 + 0.01 s."""
    service = requests(spec(gpus_per_replica=8, cold_start_s=20.0), [0.0], [1000], [10])
    out, sim = run([service], [_training(preemptible=False)], requests_at_s=100.0)
    assert sim.services[0].model.ttft[0] == pytest.approx(1020.11 - 100.0)
    assert out["training"]["mean_jct_change_pct"] == 0.0


def test_requests_on_a_replica_lost_with_its_cluster_start_over_once_it_is_back() -> None:
    """The cluster fails at 0.15 s for 10 s: the replica's request (0.1 s of prefill, then decoding) is handed back
    and served once the replica is placed again after the repair (warm start is only at the service's start:
    a cold start of 5 s)."""
    service = requests(spec(cold_start_s=5.0), [0.0], [1000], [20])
    out, sim = run([service], failures=[Failure("c", 0.15, 10.0)])
    s, m = out["services"][0], sim.services[0].model
    assert (s["requests_served"], s["requests_restarted"], s["placements"]) == (1, 1, 2)
    assert m.ttft[0] == pytest.approx(10.15 + 5.0 + 0.1 + 0.01)
    assert m.finish[0] == pytest.approx(15.25 + 20 * 0.01)


def test_a_replica_failed_by_the_outage_limit_is_replaced_and_the_service_goes_on() -> None:
    """The same outage with max_outage_stops 0: the replica, stopped before any checkpoint, fails (outage_limit),
    as the server's would; the service does not end: its next tick starts another replica, which serves the
    request."""
    service = requests(spec(cold_start_s=5.0), [0.0], [1000], [20])
    out, _ = run([service], failures=[Failure("c", 0.15, 10.0)], settings={"max_outage_stops": 0})
    s = out["services"][0]
    assert s["rejected"] is None
    assert (s["requests_served"], s["requests_restarted"], s["placements"]) == (1, 1, 2)


def test_a_service_the_fleet_cannot_place_serves_nothing_and_says_why() -> None:
    """Replicas of 16 GPUs on a fleet of one 8-GPU node: the engine rejects the replica; every request unserved."""
    service = requests(spec(gpus_per_replica=16), [0.0, 1.0], [10, 10], [2, 2])
    out, _ = run([service], the_fleet=fleet(nodes=1))
    s = out["services"][0]
    assert (s["requests_served"], s["requests_unserved"], s["attainment_pct"]) == (0, 2, 0.0)
    assert s["rejected"] is not None and s["gpu_hours"] == 0.0
