"""The autoscaling rules on hand-computed traffic (see the formulas in stargate.engine.autoscale)."""

import math
from typing import Any

import pytest
from pydantic import ValidationError

from stargate.domain.services import ReplicaProfile, ServiceSpec
from stargate.engine.autoscale import Autoscaler, Traffic, best_batch
from stargate.engine.replicas import Replica, ReplicaState, replica_terms, to_remove

PROFILE: dict[str, Any] = {
    "gpu_model": "H100-SXM",
    "prefill_tokens_per_s": 10_000.0,
    "decode_tokens_per_s": 3_200.0,  # full batch of 64: a step of 0.02 s
    "max_concurrent_sequences": 64,
    "decode_step_s": 0.01,
    "source": "hand-made for these tests",
}


def spec(**changes: Any) -> ServiceSpec:
    data: dict[str, Any] = {
        "name": "chat",
        "queue": "serve-q",
        "gpus_per_replica": 1,
        "min_replicas": 1,
        "max_replicas": 100,
        "objective": {"tpot_s": 0.02},
        "profiles": [PROFILE],
        "cold_start_s": 60.0,
        "command": "python -m replica",
        "autoscaling": {"policy": "stargate", "window_s": 60, "downscale_delay_s": 0},
    }
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return ServiceSpec.model_validate(data)


def steady(scaler: Autoscaler, rps: float, prompt: int, output: int, in_flight: float, until_s: float = 60) -> None:
    """One-second intervals of ``rps`` arrivals (and as many completions) up to ``until_s``."""
    for t in range(1, int(until_s) + 1):
        n = int(rps)
        scaler.observe(Traffic(float(t), 1.0, n, n * prompt, n, n * output, in_flight))


def test_step_is_the_line_through_the_profile_figures() -> None:
    profile = ReplicaProfile.model_validate(PROFILE)
    assert profile.step_s(1) == pytest.approx(0.01)
    assert profile.step_s(64) == pytest.approx(0.02)
    assert profile.step_s(32) == pytest.approx(0.01 + 0.01 * 31 / 63)


def test_request_rate_wants_rate_over_target() -> None:
    scaler_spec = spec(autoscaling={"policy": "request-rate", "target_requests_per_s": 3})
    scaler = Autoscaler(scaler_spec, scaler_spec.profiles[0])
    steady(scaler, rps=10, prompt=100, output=100, in_flight=5)
    assert scaler.decide(60.0, current=1).replicas == 4  # ceil(10 / 3)


def test_in_flight_wants_ongoing_over_target() -> None:
    scaler_spec = spec(autoscaling={"policy": "in-flight", "target_in_flight": 8})
    scaler = Autoscaler(scaler_spec, scaler_spec.profiles[0])
    steady(scaler, rps=10, prompt=100, output=100, in_flight=50)
    assert scaler.decide(60.0, current=1).replicas == 7  # ceil(50 / 8)


def test_stargate_sizes_slots_from_token_load() -> None:
    s = spec(objective={"tpot_s": 0.015})
    profile = s.profiles[0]
    # b* = largest b with 0.01 + (b - 1) * 0.01 / 63 <= 0.015: b - 1 <= 31.5, b = 32
    assert best_batch(s, profile, 1000, 200) == 32
    scaler = Autoscaler(s, profile)
    steady(scaler, rps=20, prompt=1000, output=200, in_flight=0)
    hold = 1000 / 10_000 + 200 * profile.step_s(32)  # 0.1 s prefill + 200 steps
    expected = math.ceil(20 * hold / (32 * 0.8))
    decision = scaler.decide(60.0, current=1)
    assert decision.replicas == expected and "32 per replica" in decision.reason


def test_stargate_needs_more_replicas_for_longer_outputs_at_the_same_request_rate() -> None:
    s = spec()
    short, long = Autoscaler(s, s.profiles[0]), Autoscaler(s, s.profiles[0])
    steady(short, rps=20, prompt=500, output=50, in_flight=0)
    steady(long, rps=20, prompt=500, output=500, in_flight=0)
    assert long.decide(60.0, 1).replicas > 3 * short.decide(60.0, 1).replicas


def test_stargate_takes_the_window_level_and_does_not_extrapolate_a_rise() -> None:
    # The rule before extrapolated the recent half's rise over the cold start: 200 + 100 / 30 × 60 = 400 requests/s
    # here, 16 replicas; bench/services_quality.py measured that such forecasts cost GPU-hours at equal attainment.
    s = spec()
    scaler = Autoscaler(s, s.profiles[0])
    for t in range(1, 61):  # 100 requests/s for 30 s, then 200
        n = 100 if t <= 30 else 200
        scaler.observe(Traffic(float(t), 1.0, n, n * 100, n, n * 100, 0.0))
    assert scaler.load(60.0).rate == 150
    # b* = 64 (step(64) = 0.02 s = tpot_s); T = 100 / 10,000 + 100 × 0.02 = 2.01 s; 150 × 2.01 / (64 × 0.8) = 5.9
    decision = scaler.decide(60.0, current=1)
    assert decision.replicas == 6 and decision.reason.startswith("up: 150.00 requests/s forecast × 2.01 s each")


def test_stargate_meets_a_jump_with_what_the_new_level_needs_not_more() -> None:
    # 100 requests/s for 60 s, then 140: every decision while the window fills with the new level wants at most the
    # count of 140 requests/s (140 × 2.01 / 51.2 = 5.5: 6); extrapolating the jump over the 180-s cold start asked
    # for 140 + 40 / 30 × 180 = 380 requests/s, 15 replicas.
    s = spec(cold_start_s=180.0)
    scaler = Autoscaler(s, s.profiles[0])
    wanted = []
    for t in range(1, 181):
        n = 100 if t <= 60 else 140
        scaler.observe(Traffic(float(t), 1.0, n, n * 100, n, n * 100, 0.0))
        wanted.append(scaler.decide(float(t), current=6).wanted)
    assert wanted[59] == 4  # 100 × 2.01 / 51.2 = 3.9
    assert max(wanted) == 6 and wanted[-1] == 6


def test_stargate_learns_output_tokens_only_from_completed_requests() -> None:
    # 30 requests/s of 1,000 prompt tokens, none completed yet: D is the default 256 tokens, T = 0.1 + 256 × 0.02 =
    # 5.22 s, 30 × 5.22 / 51.2 = 3.06: 4 replicas. Once requests complete with 50 tokens each: T = 0.1 + 50 × 0.02
    # = 1.1 s, 30 × 1.1 / 51.2 = 0.64: 1 replica.
    s = spec()
    scaler = Autoscaler(s, s.profiles[0])
    for t in range(1, 61):
        scaler.observe(Traffic(float(t), 1.0, 30, 30_000, 0, 0, 0.0))
    assert scaler.wanted(60.0)[0] == 4
    for t in range(61, 121):
        scaler.observe(Traffic(float(t), 1.0, 30, 30_000, 30, 30 * 50, 0.0))
    assert scaler.wanted(120.0)[0] == 1


def test_bounds_and_hysteresis() -> None:
    s = spec(
        min_replicas=2,
        max_replicas=5,
        autoscaling={"policy": "request-rate", "target_requests_per_s": 1, "upscale_delay_s": 10},
    )
    s = s.model_copy(update={"autoscaling": s.autoscaling.model_copy(update={"downscale_delay_s": 30.0})})
    scaler = Autoscaler(s, s.profiles[0])
    steady(scaler, rps=9, prompt=10, output=10, in_flight=0)
    first = scaler.decide(60.0, current=2)
    assert (first.replicas, first.wanted) == (2, 5)  # capped at max_replicas, and not before upscale_delay_s
    assert scaler.decide(70.0, current=2).replicas == 5
    quiet = Autoscaler(s, s.profiles[0])
    steady(quiet, rps=3, prompt=10, output=10, in_flight=0)
    assert quiet.decide(60.0, current=5).replicas == 5  # wanted 3, but not for 30 s yet
    assert quiet.decide(75.0, current=5).replicas == 5
    assert quiet.decide(90.0, current=5).replicas == 3  # 30 s of wanting 3
    assert Autoscaler(s, s.profiles[0]).decide(100.0, current=0).wanted == 2  # no traffic: min_replicas


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"min_replicas": 5, "max_replicas": 2}, "min_replicas 5 above max_replicas 2"),
        ({"objective": {"tpot_s": None}}, "at least one of ttft_s"),
        ({"autoscaling": {"policy": "request-rate"}}, "target_requests_per_s"),
        ({"gpu_models": ["B200"]}, "without a profile (B200)"),
        ({"profiles": [{**PROFILE, "decode_step_s": 0.5}]}, "longer than a full batch's step"),
        ({"profiles": [{**PROFILE, "source": ""}]}, "source"),
    ],
)
def test_bad_specs_are_refused_saying_what_was_expected(change: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where.replace("(", r"\(").replace(")", r"\)")):
        spec(**change)


def test_replicas_are_never_preemptible_and_scale_down_takes_the_least_useful_first() -> None:
    terms = replica_terms(spec(priority_class="serving"), 3, 10.0)
    assert (terms.id, terms.preemptible, terms.priority_class, terms.gpu_models) == (
        "chat~r3",
        False,
        "serving",
        ("H100-SXM",),
    )
    replicas = [
        Replica("chat~r0", 0, ReplicaState.READY, 0.0),
        Replica("chat~r1", 1, ReplicaState.READY, 50.0),
        Replica("chat~r2", 2, ReplicaState.STARTING, 60.0),
        Replica("chat~r3", 3, ReplicaState.PENDING, 70.0),
        Replica("chat~r4", 4, ReplicaState.DRAINING, 80.0),
    ]
    assert [r.number for r in to_remove(replicas, 3)] == [3, 2, 1]
