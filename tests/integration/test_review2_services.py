"""A second reviewer's attacks on inference services, after the first review's fixes: a new scheduler leader's first
tick, traffic that returns while a replica drains, and a percent-encoded slash in a service's name. Each test marked
xfail(strict) shows a defect while it is there.

The leader's tick is the server's own (:func:`stargate.server.scheduling.services._tick` over a real
:class:`TrafficReader`), the plan is :func:`stargate.server.inference.control.plan`, and the proxy is the real one on
a real uvicorn (the harness of tests/integration/server/services_support.py) in front of a loopback 'replica' that
records what reaches it.
"""

from datetime import UTC, datetime, timedelta

from integration.server.services_support import live, local_spec, ready_routes
from integration.server.stargate_harness import Harness
from integration.test_review_services import recorder
from stargate.domain.services import ServiceSpec
from stargate.engine.replicas import ReplicaState
from stargate.server.inference.control import ReplicaFacts, plan
from stargate.server.inference.traffic import Interval
from stargate.server.scheduling.services import ControlState, Service, _control, _tick
from stargate.store import JobStatus
from stargate.store.repositories import services as service_repo


def _leader_counts(spec: ServiceSpec, ticks: int, new_leader: bool) -> list[int]:
    """The counts a leader's ticks keep for a service at 3 replicas whose one proxy process (started 100 s before)
    steadily carries 6 requests/s of 200 prompt and 50 output tokens, each 1.1 s in flight. ``new_leader``: the
    leader began leading now (the process's row is older than its lead), else it read the row from the start."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    began = start + timedelta(seconds=100)
    state = ControlState(began if new_leader else start - timedelta(seconds=1))
    service = Service("chat", "alpha", "active", spec, 3, 3, 3, [], {}, "")
    control = _control(state, service, 0.0)
    counts = []
    for k in range(1, ticks + 1):
        elapsed = 100 + k * control.tick_s  # seconds since the process started
        counters = {
            "arrived": int(6 * elapsed),
            "prompt_tokens": int(6 * elapsed) * 200,
            "completed": int(6 * elapsed),
            "output_tokens": int(6 * elapsed) * 50,
            "failed": 0,
            "in_flight_s": 6.6 * elapsed,
            "in_flight": 7,
        }
        now = start + timedelta(seconds=elapsed)
        rows = [("chat", "proxy-1", start, now, counters)]
        intervals = state.reader.take(rows, now)
        decision = _tick(service, control, intervals.get("chat", Interval()), now, k * control.tick_s, 3, ["H100-SXM"])
        assert decision is not None
        counts.append(decision.replicas)
    return counts


def test_a_new_leader_does_not_scale_down_a_steady_service() -> None:
    spec = ServiceSpec.model_validate(local_spec(autoscaling={"window_s": 20, "downscale_delay_s": 10}))
    assert _leader_counts(spec, 15, new_leader=False) == [3] * 15  # the old leader keeps 3 under this load
    counts = _leader_counts(spec, 15, new_leader=True)
    assert counts == [3] * 15, f"the new leader's counts, one per {spec.autoscaling.window_s / 10:g}-s tick: {counts}"


def test_traffic_back_during_a_drain_keeps_the_draining_replica() -> None:
    spec = ServiceSpec.model_validate(local_spec(cold_start_s=180))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ready = ReplicaFacts(0, "j-000001", 1, ReplicaState.READY, 20001, now - timedelta(hours=1), JobStatus.RUNNING)
    draining = ReplicaFacts(
        1, "j-000002", 2, ReplicaState.DRAINING, 20002, now - timedelta(seconds=1), JobStatus.RUNNING, in_flight=3
    )
    the_plan = plan(spec, 2, [ready, draining], now)  # the autoscaler wants 2 again, 1 s after it scaled down to 1
    assert (the_plan.start, the_plan.cancel) == (0, []), (
        f"starts {the_plan.start} new replica(s) with a {spec.cold_start_s:g}-s cold start while replica 1, warm, "
        f"drains and stops"
    )
    assert (1, ReplicaState.READY) in the_plan.states


def test_a_draining_replica_taken_back_is_routed_to_again(harness: Harness) -> None:
    """Replica 0 drains (its only replica); the count goes back to 1: the plan takes it back, and once its state is
    written a request through the proxy reaches it (no new replica, no 503)."""
    with recorder("answer") as replica:
        ready_routes(harness, [replica.port])
        with harness.ctx.db.write() as session:
            service_repo.set_replica_states(session, [("chat", 0, ReplicaState.DRAINING.value, datetime.now(UTC))])
        now = datetime.now(UTC)
        draining = ReplicaFacts(0, "j-000001", 1, ReplicaState.DRAINING, replica.port, now, JobStatus.RUNNING)
        the_plan = plan(ServiceSpec.model_validate(local_spec()), 1, [draining], now + timedelta(seconds=1))
        assert (the_plan.start, the_plan.cancel, the_plan.states) == (0, [], [(0, ReplicaState.READY)])
        with harness.ctx.db.write() as session:
            service_repo.set_replica_states(session, [("chat", n, s.value, now) for n, s in the_plan.states])
        with live(harness, scheduler=False) as server, server.http() as http:
            answer = http.post("/services/chat/v1/completions", json={})
    assert answer.status_code == 200, answer.text
    assert [r.split(b" ", 2)[1] for r in replica.requests] == [b"/v1/completions"]


def test_a_percent_encoded_slash_in_the_name_is_not_a_service_path(harness: Harness) -> None:
    with recorder("answer") as replica:
        ready_routes(harness, [replica.port])
        with live(harness, scheduler=False) as server, server.http() as http:
            answer = http.post("/services/chat%2Fadmin/reset", json={})
            reached_before = list(replica.requests)
            encoded = http.post("/services/ch%61t/v1/completions", json={})  # an encoded letter: still 'chat'
    assert answer.status_code == 404, answer.text
    assert "no service 'chat/admin'" in answer.json()["detail"]
    assert reached_before == []
    assert encoded.status_code == 200, encoded.text
    assert [r.split(b" ", 2)[1] for r in replica.requests] == [b"/v1/completions"]
