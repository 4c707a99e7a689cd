"""The services step's plan for one service (no database, no processes): replica states follow their jobs and
health checks, too few replicas start new ones (not during a back-off), too many go in the engine's order (waiting
ones cancelled at once, ready ones drained and cancelled once no request is in flight at them, or after the drain
timeout), and a replica that ends while not draining is a failure."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from stargate.domain.services import ServiceSpec
from stargate.engine.replicas import ReplicaState
from stargate.server.inference.control import (
    DRAIN_MIN_S,
    DRAIN_TIMEOUT_S,
    READY_FAILURES,
    ReplicaFacts,
    backoff_s,
    plan,
    start_timeout_s,
)
from stargate.server.scheduling.services import tick_s
from stargate.store import JobStatus

LOCAL_YAML = Path(__file__).parents[3] / "examples" / "services" / "local.yaml"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SPEC = ServiceSpec.model_validate(yaml.safe_load(LOCAL_YAML.read_text()))
P, S, R, D = ReplicaState.PENDING, ReplicaState.STARTING, ReplicaState.READY, ReplicaState.DRAINING


def replica(
    number: int, state: ReplicaState, status: JobStatus = JobStatus.RUNNING, age_s: float = 10.0, **more: object
) -> ReplicaFacts:
    """Replica ``number`` (job ``j-00000N``, port 2000N) in ``state`` for ``age_s`` seconds, its job in ``status``."""
    since = NOW - timedelta(seconds=age_s)
    return ReplicaFacts(number, f"j-{number:06d}", 100 + number, state, 20000 + number, since, status, **more)  # type: ignore[arg-type]


def test_states_follow_the_jobs_and_the_health_checks() -> None:
    out = plan(
        SPEC,
        4,
        [
            replica(0, P, JobStatus.PLACED),
            replica(1, P),  # its job runs now: starting
            replica(2, S, healthy=True),  # passed its check: ready
            replica(3, R, failing=READY_FAILURES),  # failed its checks: out of the routes
        ],
        NOW,
    )
    assert out.states == [(1, S), (2, R), (3, S)]
    assert (out.start, out.ready, out.live, out.became_ready, out.failures) == (0, 1, 4, True, [])


def test_too_few_replicas_start_new_ones_unless_a_back_off_runs() -> None:
    assert plan(SPEC, 3, [replica(0, R)], NOW).start == 2
    assert plan(SPEC, 3, [replica(0, R)], NOW, may_start=False).start == 0
    assert [backoff_s(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 32, 60]


def test_scale_down_cancels_waiting_replicas_first_then_drains_the_newest_ready() -> None:
    replicas = [replica(0, R, age_s=100), replica(1, R, age_s=50), replica(2, P, JobStatus.PENDING), replica(3, S)]
    out = plan(SPEC, 1, replicas, NOW)
    assert sorted(out.states) == [(1, D), (2, D), (3, D)]
    assert [(n, why) for n, _, why in out.cancel] == [
        (2, "scaled down before it was ready (pending)"),
        (3, "scaled down before it was ready (starting)"),
    ]
    assert (out.ready, out.live, out.left) == (1, 1, 4)


def test_a_drained_replica_stops_once_nothing_is_in_flight_at_it_or_after_the_timeout() -> None:
    young = replica(1, D, age_s=DRAIN_MIN_S / 2)
    busy = replica(2, D, age_s=DRAIN_MIN_S * 2, in_flight=3)
    idle = replica(3, D, age_s=DRAIN_MIN_S * 2)
    stuck = replica(4, D, age_s=DRAIN_TIMEOUT_S + 1, in_flight=1)
    out = plan(SPEC, 1, [replica(0, R), young, busy, idle, stuck], NOW)
    assert [(n, why.split(" after")[0]) for n, _, why in out.cancel] == [
        (3, "scaled down: drained"),
        (4, "scaled down: drain timed out with 1 requests in flight"),
    ]
    assert out.states == [] and out.start == 0


def test_a_replica_whose_job_ended_while_not_draining_is_a_failure_and_its_row_goes() -> None:
    ended = replica(1, R, JobStatus.FAILED, detail="failed: exited with code 137")
    finished = replica(2, D, JobStatus.CANCELLED)
    out = plan(SPEC, 2, [replica(0, R), ended, finished], NOW)
    assert out.gone == [1, 2] and out.start == 1
    assert out.failures == ["replica 1 (j-000001) ended: failed: exited with code 137"]


def test_a_replica_that_never_answers_its_health_check_is_stopped_as_a_failure() -> None:
    late = replica(0, S, age_s=start_timeout_s(SPEC) + 1)
    out = plan(SPEC, 1, [late], NOW)
    assert out.states == [(0, D)] and out.cancel[0][2] == "did not answer GET /health within 60 s"
    assert out.failures == ["replica 0 (j-000000) did not answer GET /health within 60 s"]


def test_the_server_ticks_on_the_engines_rule_a_tenth_of_the_window_from_1_to_10_s() -> None:
    def spec(window_s: float, delay_s: float) -> ServiceSpec:
        data = yaml.safe_load(LOCAL_YAML.read_text())
        data["autoscaling"].update(window_s=window_s, downscale_delay_s=delay_s)
        return ServiceSpec.model_validate(data)

    assert [tick_s(spec(w, d)) for w, d in ((10, 10), (60, 300), (60, 7), (300, 300), (5, 0), (90, 2.5))] == [
        1.0,
        6.0,
        6.0,
        10.0,
        1.0,
        9.0,
    ]
