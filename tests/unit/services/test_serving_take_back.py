"""Traffic that comes back while a replica drains: both clocks take the draining replica back (warm) before they
start a new one (cold), by the engine's rule (:func:`stargate.engine.replicas.to_take_back`)."""

from service_helpers import requests, run, spec

from stargate.engine.replicas import Replica, ReplicaState, to_take_back


def test_the_latest_to_begin_draining_is_taken_back_first_and_only_draining_ones() -> None:
    replicas = [
        Replica("chat~r0", 0, ReplicaState.READY, 0.0),
        Replica("chat~r1", 1, ReplicaState.DRAINING, 10.0),
        Replica("chat~r2", 2, ReplicaState.DRAINING, 30.0),
        Replica("chat~r3", 3, ReplicaState.PENDING, 40.0),
    ]
    assert [r.number for r in to_take_back(replicas, 1)] == [2]
    assert [r.number for r in to_take_back(replicas, 5)] == [2, 1]
    assert to_take_back(replicas, 0) == []


def test_the_simulator_takes_a_draining_replica_back_instead_of_cold_starting_one() -> None:
    """2 requests/s (each 50 s long: 5,000 tokens at 0.01 s a step) until 20 s, none until 26 s, then 2/s again
    until 50 s. request-rate at 1 request/s per replica over a 10-s window, no delays: 2 replicas, then 1 as the
    window's rate falls (replica 1 drains, its requests still running), then 2 again while it still drains."""
    service = spec(
        min_replicas=1,
        max_replicas=2,
        cold_start_s=5.0,
        autoscaling={
            "policy": "request-rate",
            "target_requests_per_s": 1.0,
            "window_s": 10,
            "upscale_delay_s": 0,
            "downscale_delay_s": 0,
        },
    )
    arrival = [i / 2 for i in range(40)] + [26 + i / 2 for i in range(48)]
    out, sim = run([requests(service, arrival, [100] * len(arrival), [5000] * len(arrival))])
    svc = sim.services[0]
    counts = [(e["from"], e["to"]) for e in out["services"][0]["scale_events_detail"]]
    assert (2, 1) in counts and counts.index((1, 2), counts.index((2, 1))) > 0, counts
    assert svc.next_number == 2, "a third replica was started (cold) while replica 1 drained"
    back_at = next(e["at_s"] for e in out["services"][0]["scale_events_detail"][1:] if e["to"] == 2)
    later = [i for i, a in enumerate(svc.model.arr) if a > back_at]
    assert any(svc.model.served_by[i] == 1 for i in later), "replica 1, taken back, took no new request"
