"""Monte Carlo risk on a real local Ray: the summary does not depend on the workers; clear errors, never a hang.

One Ray cluster for the module runs in a child process (the ``cluster`` fixture); the tests connect to it as drivers
through ``ray_address``, as ``stargate plan --ray-address`` does. One test starts and stops a Ray of its own (the
default path). The child shuts its Ray down when its stdin closes, so no Ray process outlives the module.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from datetime import date

import pytest

from stargate.domain.planning import OutageRisk, Risk, Triangular
from stargate.engine.plan_types import (
    Action,
    Commitment,
    DemandLine,
    FixedPayment,
    Plan,
    PlanInputs,
    RiskSummary,
    Supply,
)
from stargate.planning.montecarlo import RayUnavailable, check_reachable, run_risk

pytestmark = pytest.mark.slow

SCENARIOS = 120

_CLUSTER = """
import logging, sys
import ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
         object_store_memory=128 * 1024 * 1024)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
ray.shutdown()
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The address of a 2-CPU Ray cluster running in a child process for this module."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CLUSTER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        address = child.stdout.readline().strip()
        assert address, "the Ray cluster did not start"
        yield address
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def problem() -> tuple[PlanInputs, Plan, Risk]:
    """24 months, two models, a building coming online, a commitment, signings and a budget: every risk on."""
    n = 24
    months = tuple(date(2026 + i // 12, i % 12 + 1, 1) for i in range(n))
    late = tuple(0.0 if t < 5 else 400.0 for t in range(n))
    supplies = (
        Supply("own", "owned", "own", "gb200", (600.0,) * n, 0.1),
        Supply("new", "owned", "own", "gb200", late, 0.1, building="b", online_month=5),
        Supply("com", "commitment", "cw", "h100", (300.0,) * n, 2.0, "k"),
        Supply("od", "on_demand", "aws", "h100", (200.0,) * n, 4.0),
    )
    inputs = PlanInputs(
        scenario="ray",
        months=months,
        hours=tuple(730.0 for _ in range(n)),
        demand=(
            DemandLine("train", "training", "gb200", tuple(900.0 * 1.02**t for t in range(n))),
            DemandLine("serve", "inference", "h100", tuple(350.0 for _ in range(n))),
        ),
        supplies=supplies,
        fixed=(FixedPayment("b", "capex", "own", tuple(2e6 if t < 5 else 0.0 for t in range(n))),),
        commitments=(Commitment("k", "cw", (200 * 2.0 * 730.0,) * n, ("com",)),),
        markets=(),
        builds=(),
        rofr=(),
        site_power=(),
        envelope_usd=tuple(1e7 + 2.2e6 * (t + 1) for t in range(n)),
        unmet_penalty_usd_per_gpu_hour=10.0,
        over_budget_penalty=None,
    )
    plan = Plan(
        "ray",
        "optimal",
        0.0,
        (),
        (Action("sign", "m", "cw", "gb200", 2, 3, 200, 12, 2.5, 200 * 2.5 * 730 * 12),),
        0.0,
        0.0,
        None,
    )
    risk = Risk(
        building_delay_months=Triangular(low=0, mode=2, high=8),
        demand_growth_sigma=0.3,
        capex_overrun=Triangular(low=0.9, mode=1.1, high=1.8),
        outages=OutageRisk(probability_per_month=0.05, capacity_lost=0.5, months=2),
        recourse_usd_per_gpu_hour=6.0,
    )
    return inputs, plan, risk


@pytest.fixture(scope="module")
def in_process() -> RiskSummary:
    inputs, plan, risk = problem()
    return run_risk(inputs, plan, risk, SCENARIOS, 42, workers=0)


def test_one_and_two_ray_workers_give_the_in_process_summary(cluster: str, in_process: RiskSummary) -> None:
    inputs, plan, risk = problem()
    seen: list[tuple[int, int]] = []
    one = run_risk(inputs, plan, risk, SCENARIOS, 42, workers=1, ray_address=cluster)
    two = run_risk(
        inputs, plan, risk, SCENARIOS, 42, workers=2, ray_address=cluster, progress=lambda d, t: seen.append((d, t))
    )
    assert one == in_process
    assert two == in_process
    assert in_process.spend_usd.p10 < in_process.spend_usd.p90  # the risks do move the figures
    assert 0 < in_process.budget_breach_probability < 1
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (SCENARIOS, SCENARIOS)
    assert len(seen) == 8  # 4 chunks per worker, one call each


def test_another_seed_gives_another_summary(cluster: str, in_process: RiskSummary) -> None:
    inputs, plan, risk = problem()
    other = run_risk(inputs, plan, risk, SCENARIOS, 43, workers=2, ray_address=cluster)
    assert other.seed == 43
    assert other.shortfall_gpu_hours != in_process.shortfall_gpu_hours
    assert other.spend_usd != in_process.spend_usd


def test_a_ray_started_for_the_run_is_stopped_after_it(in_process: RiskSummary) -> None:
    import ray

    inputs, plan, risk = problem()
    assert not ray.is_initialized()
    assert run_risk(inputs, plan, risk, SCENARIOS, 42, workers=2) == in_process
    assert not ray.is_initialized()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_address_nothing_listens_on_fails_fast_naming_the_option() -> None:
    inputs, plan, risk = problem()
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(RayUnavailable, match="--ray-address") as caught:
        run_risk(inputs, plan, risk, 10, 0, workers=1, ray_address=address)
    assert time.monotonic() - started < 5
    assert address in str(caught.value) and "--workers 0" in str(caught.value)


def test_a_port_that_is_not_ray_is_refused_before_ray_waits_on_it() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(RayUnavailable, match="not a Ray cluster"):
            check_reachable(address, timeout_s=1.0)
        assert time.monotonic() - started < 3
        for conn in accepted:
            conn.close()


@contextmanager
def grpc_server(hang: str | None = None) -> Iterator[int]:
    """The port of a gRPC server that is not Ray: every call is UNIMPLEMENTED but ``hang`` ("service/method"),
    which gets no answer while the server runs."""
    import grpc  # a dependency (pyproject.toml): never skipped

    release = threading.Event()
    handlers = []
    if hang is not None:
        service, method = hang.split("/")
        waits = grpc.unary_unary_rpc_method_handler(lambda request, context: release.wait(30) and b"")
        handlers.append(grpc.method_handlers_generic_handler(service, {method: waits}))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        release.set()
        server.stop(grace=None)


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_grpc_server_that_is_not_ray_fails_fast_naming_the_option(
    scheme: str, capfd: pytest.CaptureFixture[str]
) -> None:
    import ray

    inputs, plan, risk = problem()
    with grpc_server() as port:
        address = f"{scheme}127.0.0.1:{port}"
        started = time.monotonic()
        with pytest.raises(RayUnavailable, match="--ray-address") as caught:
            run_risk(inputs, plan, risk, 10, 0, workers=1, ray_address=address)
        assert time.monotonic() - started < 10
    message = str(caught.value)
    assert address in message and "not a Ray cluster" in message and "--workers 0" in message
    assert "\n" not in message
    assert not ray.is_initialized()
    assert capfd.readouterr().err == ""  # nothing of Ray's or gRPC's own logging


def test_a_ray_call_left_unanswered_is_refused_at_the_deadline() -> None:
    with grpc_server(hang="ray.rpc.NodeInfoGcsService/GetClusterId") as port:
        started = time.monotonic()
        with pytest.raises(RayUnavailable, match="no answer to a Ray call within 1 s"):
            check_reachable(f"127.0.0.1:{port}", timeout_s=1.0)
        assert time.monotonic() - started < 4


def test_the_ray_cluster_passes_the_check(cluster: str) -> None:
    check_reachable(cluster)  # a GCS asking for a token answers as Ray


@pytest.mark.parametrize("address", ["127.0.0.1:0", "127.0.0.1:99999", ":6379", "host:port"])
def test_a_malformed_address_is_refused_with_what_was_expected(address: str) -> None:
    with pytest.raises(RayUnavailable, match="expected HOST:PORT"):
        check_reachable(address)


def test_the_bundled_plan_solved_on_highs_is_its_own_no_risk_scenario() -> None:
    """The risk model's dispatch (cheapest first, commitment floors, the penalty, the hard budget) agrees with the
    LP: with no risk, a scenario of the stargate-2025 plan spends what the plan spends and leaves what it leaves."""
    from pathlib import Path

    from stargate.engine.plan_risk import scenario_outcome
    from stargate.planning.run import compute
    from stargate.planning.scenario_file import load_scenario

    loaded = load_scenario(Path(__file__).parents[2] / "examples" / "stargate-2025" / "plan.yaml")
    run = compute(loaded.scenario, loaded.fleet, loaded.history, scenarios=0)
    outcome = scenario_outcome(run.inputs, run.plan, Risk(), 0, 0)
    assert outcome.spend_usd == pytest.approx(run.plan.spend_usd, rel=1e-9)
    # actions are whole GPUs, the LP's signings fractional: a few GPU-hours of rounding at most
    assert outcome.shortfall_gpu_hours == pytest.approx(run.plan.unmet_gpu_hours, rel=1e-6)
    assert not outcome.breached
    risky = run_risk(run.inputs, run.plan, loaded.scenario.risk, 200, 1, workers=0)
    assert risky.spend_usd.p10 < risky.spend_usd.p90
