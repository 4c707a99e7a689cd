"""The health state machine of one executor, with explicit times: down only after down_after_s of failed checks
(0: at once), degraded while some nodes failed, up again at the first healthy check."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from stargate.domain import ClusterStatus
from stargate.executors.base import Health
from stargate.server.scheduling.health import HealthTracker, worse

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
UP, DEGRADED, DOWN = ClusterStatus.UP, ClusterStatus.DEGRADED, ClusterStatus.DOWN
REFUSED = Health(reachable=False, reason="slurm: connection refused")
FINE = Health(reachable=True, nodes=4)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_unreachable_marks_down_only_after_down_after_s() -> None:
    t = HealthTracker("slurm-east", down_after_s=60.0)
    assert t.judge(REFUSED, at(0), UP) == (UP, "")
    assert t.judge(REFUSED, at(30), UP) == (UP, "")
    assert t.judge(REFUSED, at(59.9), UP) == (UP, "")
    assert t.judge(REFUSED, at(60), UP) == (DOWN, "executor slurm-east unreachable for 60 s: slurm: connection refused")
    assert t.judge(REFUSED, at(90), DOWN) == (
        DOWN,
        "executor slurm-east unreachable for 90 s: slurm: connection refused",
    )


def test_zero_down_after_marks_down_at_the_first_failed_check() -> None:
    t = HealthTracker("ray", down_after_s=0.0)
    status, reason = t.judge(Health(reachable=False, reason="ray: timed out after 5 s"), at(0), UP)
    assert status is DOWN and reason == "executor ray unreachable for 0 s: ray: timed out after 5 s"


def test_a_healthy_check_in_between_restarts_the_count() -> None:
    t = HealthTracker("slurm", down_after_s=60.0)
    t.judge(REFUSED, at(0), UP)
    assert t.judge(FINE, at(50), UP) == (UP, "")
    assert t.failing_since is None
    assert t.judge(REFUSED, at(100), UP) == (UP, "")  # 60 s since the first failure, but only 0 s of this streak
    assert t.judge(REFUSED, at(159), UP)[0] is UP
    assert t.judge(REFUSED, at(160), UP)[0] is DOWN


def test_up_again_at_the_first_healthy_check_with_a_reason() -> None:
    t = HealthTracker("slurm", down_after_s=0.0)
    assert t.judge(REFUSED, at(0), UP)[0] is DOWN
    assert t.judge(FINE, at(10), DOWN) == (UP, "executor slurm healthy again")


def test_some_nodes_failed_is_degraded_and_every_node_failed_is_down_after_the_delay() -> None:
    t = HealthTracker("slurm", down_after_s=20.0)
    some = Health(reachable=True, reason="node1 down", nodes=4, failed_nodes=1)
    assert t.judge(some, at(0), UP) == (DEGRADED, "executor slurm: 1 of 4 nodes failed: node1 down")
    every = Health(reachable=True, reason="all drained", nodes=4, failed_nodes=4)
    assert t.judge(every, at(5), DEGRADED) == (DEGRADED, "")  # failing, not for 20 s yet: stays as it was
    assert t.judge(every, at(25), DEGRADED) == (DOWN, "executor slurm: every node failed (4) for 20 s: all drained")
    assert t.judge(some, at(30), DOWN)[0] is DEGRADED


def test_a_down_cluster_stays_down_while_checks_keep_failing_after_a_restart() -> None:
    fresh = HealthTracker("slurm", down_after_s=60.0)  # a new leader: no failing streak in memory
    assert fresh.judge(REFUSED, at(0), DOWN) == (DOWN, "")


def test_worse_prefers_down_then_degraded() -> None:
    assert worse(UP, DOWN) is DOWN and worse(DEGRADED, UP) is DEGRADED and worse(DOWN, DEGRADED) is DOWN


@given(
    st.lists(st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=100.0)), min_size=1, max_size=30),
    st.floats(min_value=0.0, max_value=200.0),
)
def test_down_exactly_when_the_failing_streak_lasted_down_after_s(
    checks: list[tuple[bool, float]], down_after: float
) -> None:
    t = HealthTracker("e", down_after_s=down_after)
    clock, status, streak = 0.0, UP, None
    for ok, gap in checks:
        clock += gap
        status, _ = t.judge(FINE if ok else REFUSED, at(clock), status)
        streak = None if ok else (clock if streak is None else streak)
        if ok:
            assert status is UP
        else:  # a streak always starts from up: it stays up until it lasted down_after_s
            lasted = (at(clock) - at(streak)).total_seconds()
            assert status is (DOWN if lasted >= down_after else UP)
