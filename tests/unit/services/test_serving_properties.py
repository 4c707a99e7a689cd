"""Property: whatever the trace, the settings, training jobs and outages, every request is served exactly once,
by one replica that held GPUs when it finished, or is reported unserved; never by two replicas."""

import math
from itertools import pairwise
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from service_helpers import fleet, requests, run, spec

from stargate.sim import Failure
from stargate.traces import TraceJob

request = st.tuples(
    st.sampled_from([0.0, 0.001, 0.5, 3.0, 20.0]) | st.floats(0, 30),
    st.integers(0, 5_000),
    st.integers(1, 300),
)
policies = st.sampled_from(
    [
        {"policy": "stargate"},
        {"policy": "request-rate", "target_requests_per_s": 0.5},
        {"policy": "in-flight", "target_in_flight": 2},
    ]
)


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    gaps = draw(st.lists(request, min_size=1, max_size=60))
    low = draw(st.integers(0, 2))
    return {
        "arrival": np.cumsum([g for g, _, _ in gaps]).tolist(),
        "prompt": [p for _, p, _ in gaps],
        "output": [o for _, _, o in gaps],
        "slots": draw(st.integers(1, 8)),
        "gpus": draw(st.integers(1, 2)),
        "min": low,
        "max": draw(st.integers(max(low, 1), 4)),
        "cold": draw(st.sampled_from([0.0, 5.0, 30.0])),
        "autoscaling": {**draw(policies), "window_s": 20, "downscale_delay_s": draw(st.sampled_from([0, 15, 60]))},
        "tick": draw(st.sampled_from([1.0, 5.0, 10.0])),
        "nodes": draw(st.integers(1, 3)),
        "jobs": draw(st.lists(st.tuples(st.floats(0, 100), st.floats(1, 500), st.integers(1, 2)), max_size=3)),
        "failure": draw(st.none() | st.tuples(st.integers(0, 59), st.floats(0, 2), st.floats(0.5, 100))),
        "at": draw(st.sampled_from([0.0, 50.0])),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_every_request_is_served_exactly_once_by_one_placed_replica(case: dict[str, Any]) -> None:
    service = spec(
        gpus_per_replica=case["gpus"],
        min_replicas=case["min"],
        max_replicas=case["max"],
        cold_start_s=case["cold"],
        autoscaling=case["autoscaling"],
        profile={"max_concurrent_sequences": case["slots"], "decode_tokens_per_s": 50.0 * case["slots"]},
    )
    jobs = [
        TraceJob(f"j{k}", at, duration, gpus, "train", priority_class="normal", checkpoint_interval_s=30.0)
        for k, (at, duration, gpus) in enumerate(sorted(case["jobs"]))
    ]
    failures = []
    if case["failure"]:  # shortly after a request's arrival: likely while requests are in flight
        k, after, lasts = case["failure"]
        failures.append(Failure("c", case["at"] + case["arrival"][k % len(case["arrival"])] + after, lasts))
    out, sim = run(
        [requests(service, case["arrival"], case["prompt"], case["output"])],
        jobs,
        the_fleet=fleet(nodes=case["nodes"], gpus_per_node=2),
        tick_s=case["tick"],
        requests_at_s=case["at"],
        failures=failures,
    )
    svc = sim.services[0]
    m, n = svc.model, len(case["arrival"])
    finish = np.array(m.finish)
    served = ~np.isnan(finish)
    s = out["services"][0]
    # Nothing stops this run early and the fleet can always place a replica: every request is served ...
    assert s["requests_served"] == int(served.sum()) == n and s["requests_unserved"] == 0
    # ... once: the model counted as many finishes as there are requests with a finish time.
    assert m.done == n and not svc.replicas and svc.ended
    for i in range(n):
        e2e = m.finish[i] - m.arr[i]
        assert 0 < m.ttft[i] <= e2e + 1e-9 and math.isfinite(e2e)
        # ... by one replica that held GPUs at that instant.
        holding = [r for r in svc.runs if r.number == m.served_by[i] and r.start_s <= m.finish[i] <= r.end_s + 1e-9]
        assert len(holding) == 1, (i, m.served_by[i], svc.runs)
    # A replica's placements never overlap in time.
    for number in {r.number for r in svc.runs}:
        spans = sorted((r.start_s, r.end_s) for r in svc.runs if r.number == number)
        assert all(a_end <= b_start + 1e-9 for (_, a_end), (b_start, _) in pairwise(spans))
    assert out["training"]["measured"] is bool(jobs)
    event(f"restarted: {m.restarts > 0}, placements > 1: {len(svc.runs) > 1}, scaled: {bool(svc.events)}")
    assert s["gpu_hours"] == round(sum((r.end_s - r.start_s) * r.gpus for r in svc.runs) / 3600, 4)
