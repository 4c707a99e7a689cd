"""The queueing model against the M/M/c closed form (Erlang C) on a Poisson trace.

One replica of c slots whose decode step does not depend on the batch (``decode_step_s`` equal to the full batch's
step), no prefill (empty prompts), and geometric output lengths (mean 1/p tokens, so a service time of D steps is
close to exponential: its squared coefficient of variation is 1 - p = 0.99), at a fixed replica count
(min = max = 1). Then a request holds one of c servers for an (almost) exponential time after waiting in FIFO order:
an M/M/c queue. Erlang C gives the mean wait and the utilization is λ / (c μ).

Tolerance: waits are autocorrelated, so the standard error of the mean wait is estimated by batch means (20
batches after a warm-up); the test allows 4 standard errors, plus 1 % for the geometric service time (an M/G/c wait
scales about with (1 + CV²) / 2 = 0.995). The seed is fixed: the test is deterministic.
"""

import math

import numpy as np
import pytest
from service_helpers import requests, run, spec

C, STEP_S, MEAN_TOKENS, RHO = 4, 0.01, 100, 0.8
N, WARMUP, BATCHES = 100_000, 5_000, 20


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    """The mean wait in queue of an M/M/c queue, s."""
    a = lam / mu
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam)


def test_mean_wait_and_utilization_match_erlang_c() -> None:
    mu = 1.0 / (MEAN_TOKENS * STEP_S)
    lam = RHO * C * mu
    rng = np.random.default_rng(7)
    arrival = np.cumsum(rng.exponential(1 / lam, N))
    output = rng.geometric(1 / MEAN_TOKENS, N)
    service = spec(
        max_replicas=1,
        min_replicas=1,
        profile={
            "max_concurrent_sequences": C,
            "decode_tokens_per_s": C / STEP_S,
            "decode_step_s": STEP_S,
            "prefill_tokens_per_s": 1e9,
        },
        objective={"ttft_s": 1.0},
    )
    out, sim = run([requests(service, arrival.tolist(), [0] * N, output.tolist())])
    m = sim.services[0].model
    assert out["services"][0]["requests_served"] == N and out["services"][0]["placements"] == 1
    ttft = np.array(m.ttft)
    finish = np.array(m.finish)
    wait = ttft - STEP_S  # TTFT = wait + prefill (0) + one step
    held = finish - np.array(m.arr) - wait  # each request's service time, D steps
    assert held == pytest.approx(output * STEP_S)

    expected = erlang_c_wait(lam, mu, C)
    batches = wait[WARMUP:].reshape(BATCHES, -1).mean(axis=1)
    se = batches.std(ddof=1) / math.sqrt(BATCHES)
    measured = float(wait[WARMUP:].mean())
    assert abs(measured - expected) <= 4 * se + 0.01 * expected, (measured, expected, se)

    utilization = held.sum() / (C * finish.max())
    assert utilization == pytest.approx(RHO, rel=4 * math.sqrt(2 / N) + 0.005)
