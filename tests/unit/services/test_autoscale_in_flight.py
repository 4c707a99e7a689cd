"""The autoscaler never scales a service to zero while requests are in flight (they would never be served)."""

from typing import Any

from stargate.domain.services import ServiceSpec
from stargate.engine.autoscale import Autoscaler, Traffic


def _spec(policy: dict[str, Any]) -> ServiceSpec:
    return ServiceSpec.model_validate(
        {
            "name": "chat",
            "queue": "serve",
            "gpus_per_replica": 1,
            "min_replicas": 0,
            "max_replicas": 4,
            "objective": {"ttft_s": 1.0},
            "profiles": [
                {
                    "gpu_model": "H100-SXM",
                    "prefill_tokens_per_s": 10_000.0,
                    "decode_tokens_per_s": 1_000.0,
                    "max_concurrent_sequences": 10,
                    "source": "hand-made",
                }
            ],
            "autoscaling": {"window_s": 10, "downscale_delay_s": 0, **policy},
        }
    )


def _quiet_but_waiting(policy: dict[str, Any]) -> Autoscaler:
    """No arrival in the window, 3 requests waiting all along (3 request-seconds per 1 s interval)."""
    spec = _spec(policy)
    scaler = Autoscaler(spec, spec.profiles[0])
    for t in range(1, 11):
        scaler.observe(Traffic(float(t), 1.0, 0, 0, 0, 0, 3.0))
    return scaler


def test_every_policy_wants_one_replica_while_requests_wait_without_arrivals() -> None:
    for policy in ({"policy": "stargate"}, {"policy": "request-rate", "target_requests_per_s": 5}):
        scaler = _quiet_but_waiting(policy)
        decision = scaler.decide(10.0, current=0)
        assert (decision.wanted, decision.replicas) == (1, 1), policy
        assert "3.0 requests in flight need a replica" in decision.reason


def test_with_nothing_in_flight_a_quiet_service_still_scales_to_zero() -> None:
    spec = _spec({"policy": "stargate"})
    scaler = Autoscaler(spec, spec.profiles[0])
    for t in range(1, 11):
        scaler.observe(Traffic(float(t), 1.0, 0, 0, 0, 0, 0.0))
    assert scaler.decide(10.0, current=1).replicas == 0
