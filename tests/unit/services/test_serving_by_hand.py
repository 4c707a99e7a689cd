"""The queueing model on traces small enough to compute by hand (see stargate.sim.serving for the formulas)."""

import math

import pytest
from service_helpers import requests, run, spec

from stargate.sim.service_run import ServiceRun


def _service(out: dict, sim: object) -> tuple[dict, ServiceRun]:  # type: ignore[type-arg]
    return out["services"][0], sim.services[0]  # type: ignore[attr-defined]


def test_one_request_alone_takes_its_prefill_and_one_step_to_its_first_token() -> None:
    """1,000 prompt tokens at 10,000 tokens/s: 0.1 s of prefill; step(1) = 0.01 s; 10 tokens: 10 steps."""
    out, sim = run([requests(spec(), [5.0], [1000], [10])])
    s, svc = _service(out, sim)
    assert svc.model.ttft[0] == pytest.approx(0.1 + 0.01)
    assert svc.model.finish[0] - svc.model.arr[0] == pytest.approx(0.1 + 10 * 0.01)
    assert s["tpot_s"]["p50"] == pytest.approx((0.2 - 0.11) / 9, abs=1e-4)
    assert (s["requests_served"], s["attainment_pct"], s["objective_met"]) == (1, 100.0, True)


def test_two_requests_share_a_replica_and_each_step_slows_for_both() -> None:
    """Two slots, step(1) = 0.01 s, step(2) = 0.02 s. A (t=0, 1,000 + 10 tokens) prefills until 0.1; B (t=0.05,
    500 + 4 tokens) prefills 0.05 s, also until 0.1. Both decode at 0.02 s a step: first tokens at 0.12; B's 4th
    token at 0.1 + 4 × 0.02 = 0.18; A alone then, 6 tokens at 0.01 s: done at 0.24."""
    service = spec(profile={"max_concurrent_sequences": 2, "decode_tokens_per_s": 100.0})
    out, sim = run([requests(service, [0.0, 0.05], [1000, 500], [10, 4])])
    _, svc = _service(out, sim)
    m = svc.model
    assert m.ttft == pytest.approx([0.12, 0.07])
    assert [f - a for f, a in zip(m.finish, m.arr, strict=True)] == pytest.approx([0.24, 0.13])
    tpot = [(m.finish[i] - m.arr[i] - m.ttft[i]) / (m.output[i] - 1) for i in (0, 1)]
    assert tpot == pytest.approx([0.12 / 9, 0.02])


def test_a_request_waits_in_the_replica_queue_for_a_free_slot() -> None:
    """One slot at 0.01 s a step. A (t=0, 0.1 s prefill, 5 tokens) ends at 0.15; B (t=0.02) waits until then:
    TTFT 0.15 + 0.1 + 0.01 - 0.02 = 0.24, done at 0.30."""
    service = spec(profile={"max_concurrent_sequences": 1, "decode_tokens_per_s": 100.0})
    out, sim = run([requests(service, [0.0, 0.02], [1000, 1000], [5, 5])])
    _, svc = _service(out, sim)
    assert svc.model.ttft == pytest.approx([0.11, 0.24])
    assert svc.model.finish == pytest.approx([0.15, 0.30])


def test_a_request_before_any_replica_waits_for_the_autoscaler_and_the_cold_start() -> None:
    """No replica at first (min 0). The tick at 10 s sees the request in flight and asks for one; it is placed
    at 10 s and ready 30 s later: TTFT = 40 - 1 + 0.1 + 0.01."""
    service = spec(min_replicas=0, cold_start_s=30.0)
    out, sim = run([requests(service, [1.0], [1000], [10])])
    s, svc = _service(out, sim)
    assert svc.model.ttft[0] == pytest.approx(39.11)
    assert s["scale_events_detail"][0]["at_s"] == 10.0 and s["scale_events_detail"][0]["to"] == 1
    assert s["objective_met"] is False and s["attainment_pct"] == 0.0
    # The replica held its GPU from its placement (10 s) to the end of the service (its request done at 40.2 s).
    assert s["replica_hours"] == pytest.approx((40.2 - 10.0) / 3600, abs=1e-4)
    assert s["cost_usd"] == pytest.approx(round((40.2 - 10.0) / 3600 * 2.0, 2))


def test_replica_time_and_cost_are_the_placement_to_the_last_request() -> None:
    """A replica ready from 0 (warm) on a 2 USD/GPU-hour cluster, 2 GPUs, until its last request ends at 3,600.2."""
    out, sim = run([requests(spec(gpus_per_replica=2), [0.0, 3600.0], [1000, 1000], [10, 10])])
    s, _ = _service(out, sim)
    assert s["replica_hours"] == pytest.approx(3600.2 / 3600, abs=1e-4)
    assert s["gpu_hours"] == pytest.approx(2 * 3600.2 / 3600, abs=1e-4)
    assert s["cost_usd"] == pytest.approx(round(2 * 3600.2 / 3600 * 2.0, 2))
    assert s["end_s"] == pytest.approx(3600.2)


def test_a_service_without_a_training_trace_reports_the_impact_as_not_measured() -> None:
    out, _ = run([requests(spec(), [0.0], [10], [2])])
    assert out["training"] == {"measured": False, "why": "no training trace (--trace)", "jobs": 0}
    assert math.isfinite(out["wall_s"]) and out["services"][0]["requests_unserved"] == 0
