"""Scheduler loop, the services step (leader only): keep each inference service's replicas running, as many as its
autoscaler asks for.

Every cycle: read the services, their replicas' jobs and (when needed) every proxy's traffic; collect the health
checks that answered; decide per service with :func:`stargate.server.inference.control.plan`; write everything in
one transaction (new replica jobs through the normal job checks, so quotas, priority classes and preemption apply;
replica states; cancelled jobs of drained or scaled-down replicas); then read the routes again (this process's proxy
follows at once) and ask for the health checks that are due.

Every service's ``tick_s`` (its ``window_s`` / 10, 1 to 10 s) the step first writes this process's meters, then
hands the autoscaler one :class:`~stargate.engine.autoscale.Traffic` of the interval summed over every process, and
takes its decision (:meth:`~stargate.engine.autoscale.Autoscaler.decide`) as the count to keep. No rule is decided
here: the count is the engine's, which replicas go is the engine's (:func:`stargate.engine.replicas.to_remove`).
The autoscaler lives in memory: a new leader starts with an empty window. Its first tick only reads the proxies'
counters as a baseline (:attr:`~stargate.server.inference.traffic.Interval.baseline`: what came before is not
known): that tick keeps the count and hands the autoscaler nothing, so the window holds measured traffic only, and the
scale-down hysteresis keeps the count until the autoscaler has seen ``downscale_delay_s`` of it.
"""

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from stargate.domain import JobReason
from stargate.domain.services import ServiceSpec
from stargate.engine.autoscale import Autoscaler, ScaleDecision
from stargate.engine.autoscale import tick_s as autoscale_tick
from stargate.engine.replicas import ReplicaState, first_profile, running_profile
from stargate.server.auth import Principal, Role
from stargate.server.context import ServerContext
from stargate.server.errors import ServiceError
from stargate.server.inference.checks import HealthChecks
from stargate.server.inference.control import Plan, ReplicaFacts, backoff_s, plan
from stargate.server.inference.replica_job import free_port, health_url, replica_spec
from stargate.server.inference.runtime import REFRESH_S, InferenceRuntime
from stargate.server.inference.traffic import LIVE_ROW, Interval, TrafficReader, Window
from stargate.server.scheduling.apply import LostLeadershipError
from stargate.server.services import jobs as job_service
from stargate.store import JobStatus, Move, fit_actor, format_job_id, insert_submitted, lock_current, transition_many
from stargate.store.repositories import fleet_versions
from stargate.store.repositories import services as service_repo
from stargate.store.repositories.services import ReplicaJob

log = logging.getLogger("stargate.scheduler")

DECISIONS_KEPT = 20
"""Scale decisions each service keeps (the newest)."""
TRAFFIC_KEPT = timedelta(hours=1)
"""Traffic rows not written for this long are deleted (their process is gone)."""
AWAY_S = 10.0
"""A leader that ran no step for this long (it was a standby meanwhile) starts its services state afresh."""


def tick_s(spec: ServiceSpec) -> float:
    """How often a service's autoscaler gets a traffic interval and decides: the engine's rule, as the simulator's
    (:func:`stargate.engine.autoscale.tick_s`)."""
    return autoscale_tick(spec)


@dataclass
class Controlled:
    """What the leader keeps of one service between cycles."""

    spec: ServiceSpec
    autoscaler: Autoscaler
    window: Window
    origin: float
    """When the leader began watching it (monotonic s): tick ``k`` is due at ``origin + k × tick_s``."""
    tick_s: float
    ticks: int = 0
    """The last tick taken."""
    failures: int = 0
    """Replica failures in a row (a replica becoming ready clears them)."""
    start_after: float = 0.0
    """No replica is added before this (monotonic s): the back-off after failures."""


class ControlState:
    """The services step's state while this process leads (``runtime.control``)."""

    def __init__(self, since: datetime) -> None:
        self.reader = TrafficReader(since)
        self.services: dict[str, Controlled] = {}
        self.health = HealthChecks()
        self.last_step = time.monotonic()

    def close(self) -> None:
        """Stop the health check threads."""
        self.health.close()


@dataclass
class Service:
    """A service row as read (plain values)."""

    name: str
    team: str
    state: str
    spec: ServiceSpec
    desired: int
    current: int
    next_number: int
    decisions: list[dict[str, Any]]
    stats: dict[str, Any]
    problem: str


@dataclass
class ServicesDone:
    """What one services step did."""

    submitted: int = 0
    cancelled: int = 0
    removed: int = 0
    decisions: list[str] = field(default_factory=list)


@dataclass
class _Work:
    """One service's changes of this cycle, to write."""

    service: Service
    plan: Plan
    values: dict[str, Any]
    facts: list[ReplicaFacts]
    remove: bool = False
    refused: bool = False
    """A replica's job was refused at submit (the fleet changed under the service): the next try backs off."""

    def states(self) -> dict[int, ReplicaState]:
        """Each replica's state after the plan (the replicas whose rows go left out)."""
        found = {f.number: f.state for f in self.facts if f.number not in self.plan.gone}
        found.update((n, s) for n, s in self.plan.states if n in found)
        return found


def step(ctx: ServerContext, now: datetime) -> ServicesDone:
    """One services step at ``now`` (see the module docstring); call only while leading."""
    runtime = ctx.inference
    state = _state(runtime, now)
    clock = time.monotonic()
    done = ServicesDone()
    with ctx.db.read() as session:
        services = _services(session, state)
    if not services:
        _forget(runtime, state, set(state.services))
        return done
    controls = {s.name: _control(state, s, clock) for s in services}
    due = {name for name, c in controls.items() if clock >= c.origin + (c.ticks + 1) * c.tick_s}
    if due:
        runtime.flush(now)
    with ctx.db.read() as session:
        replicas = service_repo.replicas(session, controls)
        draining = any(r.state == ReplicaState.DRAINING for r in replicas)
        rows = service_repo.traffic(session) if due or draining else []
        models = _cluster_models(ctx, session)
    intervals = state.reader.take(rows, now) if due else {}
    in_flight = _in_flight(runtime, rows, now)
    health = state.health.collect()
    by_service: dict[str, list[ReplicaJob]] = {}
    for r in replicas:
        by_service.setdefault(r.service, []).append(r)
    work = []
    for service in services:
        control = controls[service.name]
        facts = [_facts(r, health, state.health, in_flight) for r in by_service.get(service.name, [])]
        live = sum(1 for f in facts if f.state is not ReplicaState.DRAINING and not f.status.is_final())
        decision = None
        if service.name in due:
            running = [models.get(r.cluster or "", "") for r in by_service.get(service.name, [])]
            decision = _tick(service, control, intervals.get(service.name, Interval()), now, clock, live, running)
        work.append(_decide(service, control, facts, decision, now, clock, done, service.name in due))
    if _write(ctx, work, now, done) or time.monotonic() - runtime.routes.loaded_at > REFRESH_S:
        runtime.refresh()  # this process's proxy follows the new states at once
    for w in work:
        if w.refused:
            control = controls[w.service.name]
            control.failures += 1
            control.start_after = clock + backoff_s(control.failures)
    _after(runtime, state, work)
    return done


def _state(runtime: InferenceRuntime, now: datetime) -> ControlState:
    """The step's state: kept between cycles, made afresh when this process did not lead for a while."""
    state = runtime.control
    if not isinstance(state, ControlState) or time.monotonic() - state.last_step > AWAY_S:
        if isinstance(state, ControlState):
            state.close()
        state = runtime.control = ControlState(now)
    state.last_step = time.monotonic()
    return state


def _services(session: Session, state: ControlState) -> list[Service]:
    """Every service as plain values (a spec is parsed once per service)."""
    found = []
    for row in service_repo.listed(session):
        known = state.services.get(row.name)
        try:
            spec = known.spec if known is not None else ServiceSpec.model_validate(row.spec)
        except ValueError as exc:
            log.error("service %s: its stored spec is not valid (%s); it is left as it is", row.name, exc)
            continue
        found.append(
            Service(
                row.name,
                row.team_id,
                row.state,
                spec,
                row.desired_replicas,
                row.current_replicas,
                row.next_number,
                list(row.decisions or []),
                dict(row.stats or {}),
                row.problem,
            )
        )
    return found


def _control(state: ControlState, service: Service, clock: float) -> Controlled:
    """The kept state of ``service`` (made on first sight, its autoscaler on the first profile it may run on)."""
    found = state.services.get(service.name)
    if found is None:
        spec = service.spec
        found = state.services[service.name] = Controlled(
            spec, Autoscaler(spec, first_profile(spec)), Window(spec.autoscaling.window_s), clock, tick_s(spec)
        )
    return found


def _cluster_models(ctx: ServerContext, session: Session) -> dict[str, str]:
    """The GPU model of each cluster of the fleet in force (none before a fleet was applied)."""
    try:
        _, fleet = ctx.fleet.get(session)
    except ServiceError:
        return {}
    return {c.id: c.gpu_model for c in fleet.clusters}


def _in_flight(runtime: InferenceRuntime, rows: list[Any], now: datetime) -> dict[tuple[str, int], int]:
    """Requests in flight at each replica now: this process's from its meters, the others' from their live rows."""
    found: Counter[tuple[str, int]] = Counter()
    for service, process, _, updated_at, counters in rows:
        if process != runtime.process and now - updated_at <= LIVE_ROW:
            for number, count in (counters.get("replicas") or {}).items():
                found[(service, int(number))] += int(count)
    for service in runtime.routes.names():
        meter = runtime.meter(service)
        for number, count in list(meter.by_replica.items()):
            found[(service, number)] += count
    return dict(found)


def _facts(
    r: ReplicaJob, health: dict[tuple[str, int], tuple[bool, int]], checks: HealthChecks, in_flight: dict[Any, int]
) -> ReplicaFacts:
    key = (r.service, r.number)
    answer = health.get(key)
    detail = f"{r.reason}: {r.detail}" if r.detail else r.reason
    return ReplicaFacts(
        number=r.number,
        job=format_job_id(r.job_id),
        job_id=r.job_id,
        state=ReplicaState(r.state),
        port=r.port,
        since=r.since,
        status=r.status,
        detail=detail,
        healthy=None if answer is None else answer[0],
        failing=checks.failing(key),
        in_flight=in_flight.get(key, 0),
    )


def _tick(
    service: Service,
    control: Controlled,
    interval: Interval,
    now: datetime,
    clock: float,
    live: int,
    running_on: list[str],
) -> ScaleDecision | None:
    """Hand the autoscaler the interval since the last tick and take its decision (None while deleting); its
    profile is that of the GPU model its first replica placed on a cluster runs on (``running_on``). A baseline
    interval (a new leader's first read of the counters) is no measurement: the count is kept, nothing is handed."""
    tick = max(control.ticks + 1, round((clock - control.origin) / control.tick_s))
    interval_s = (tick - control.ticks) * control.tick_s
    control.ticks, at_s = tick, tick * control.tick_s  # the autoscaler's clock: whole ticks (see tick_s)
    if interval.baseline:
        if service.state != "active":
            return None
        why = "kept: this leader's first read of the traffic counters is their baseline, not a measurement"
        return ScaleDecision(at_s, service.desired, service.desired, why)
    control.window.add(at_s, interval_s, interval)
    if service.state != "active":
        return None
    profile = running_profile(control.spec, running_on)
    if profile is not None:
        control.autoscaler.profile = profile
    control.autoscaler.observe(interval.traffic(at_s, interval_s))
    return control.autoscaler.decide(at_s, live)


def _decide(
    service: Service,
    control: Controlled,
    facts: list[ReplicaFacts],
    decision: ScaleDecision | None,
    now: datetime,
    clock: float,
    done: ServicesDone,
    ticked: bool = False,
) -> _Work:
    """The plan of one service and the columns of its row to write."""
    deleting = service.state != "active"
    desired = 0 if deleting else decision.replicas if decision is not None else service.desired
    decisions = service.decisions
    if desired != service.desired:
        reason = "deleted: draining its replicas" if deleting else decision.reason if decision else "kept"
        entry = {"at": now.isoformat(), "from": service.desired, "to": desired, "reason": reason}
        entry["wanted"] = decision.wanted if decision is not None else desired
        decisions = [*decisions, entry][-DECISIONS_KEPT:]
        done.decisions.append(f"service {service.name}: {service.desired} -> {desired} replicas: {reason}")
    stats = service.stats
    if (decision is not None or (deleting and ticked)) and control.window.intervals:
        stats = control.window.stats()  # none measured yet (a new leader's baseline tick): the figures shown stay
    if decision is not None:
        stats = {**stats, "decision": {"at": now.isoformat(), "replicas": decision.replicas, "wanted": decision.wanted}}
        stats["decision"]["reason"] = decision.reason
    the_plan = plan(control.spec, desired, facts, now, may_start=clock >= control.start_after and not deleting)
    problem = service.problem
    if the_plan.became_ready:
        control.failures, control.start_after, problem = 0, 0.0, ""
    if the_plan.failures:
        control.failures += len(the_plan.failures)
        wait = backoff_s(control.failures)
        control.start_after = clock + wait
        problem = f"{the_plan.failures[-1]}; the next replica starts in {wait:g} s"
        log.warning("service %s: %s", service.name, problem)
    values = {
        "desired_replicas": desired,
        "current_replicas": the_plan.ready,
        "decisions": decisions,
        "stats": stats,
        "problem": problem,
    }
    return _Work(service, the_plan, values, facts, remove=deleting and the_plan.left == 0)


def _write(ctx: ServerContext, work: list[_Work], now: datetime, done: ServicesDone) -> bool:
    """Write every service's changes in one transaction; False when nothing changed (nothing written)."""
    if not any(_changes(w) for w in work):
        return False
    with ctx.db.write() as session:
        starts = [w for w in work if w.plan.start > 0]
        if starts:
            fleet_versions.lock_shared(session)  # as a submission: a fleet change waits for this transaction
        taken = {r.port for r in service_repo.replicas(session)}
        for w in work:
            name = w.service.name
            service_repo.set_replica_states(session, [(name, n, s.value, now) for n, s in w.plan.states])
            service_repo.remove_replicas(session, [(name, n) for n in w.plan.gone])
            if w.plan.start > 0:
                done.submitted += _start(ctx, session, w, taken, now)
            done.cancelled += _cancel(session, w, now)
            if w.remove:
                service_repo.remove(session, name)
                done.removed += 1
            else:
                service_repo.update_service(session, name, {**w.values, "updated_at": now})
        if ctx.loop.fence is not None and not ctx.loop.fence(session):
            raise LostLeadershipError("the scheduler lock was lost during this cycle; the services step wrote nothing")
    return True


def _changes(w: _Work) -> bool:
    """Whether ``w`` writes anything (a tick always does: its stats)."""
    s, p = w.service, w.plan
    kept = (s.desired, s.current, s.decisions, s.stats, s.problem)
    now = (w.values["desired_replicas"], w.values["current_replicas"], w.values["decisions"], w.values["stats"])
    return bool(p.states or p.gone or p.cancel or p.start or w.remove) or kept != (*now, w.values["problem"])


def _start(ctx: ServerContext, session: Session, w: _Work, taken: set[int], now: datetime) -> int:
    """Submit ``w.plan.start`` new replicas of ``w.service`` (job rows and replica rows); how many were."""
    service = w.service
    who = Principal(token_id="", name=f"service {service.name}", team=service.team, role=Role.MEMBER)
    _, rules = ctx.fleet.rules(session)
    jobs, numbers = [], []
    number = service.next_number
    try:
        for _ in range(w.plan.start):
            port = free_port(taken)
            taken.add(port)
            values = job_service.check(who, replica_spec(service.spec, number, port), rules, now)
            jobs.append({**values, "submitted_by": fit_actor(f"service:{service.name}")})
            numbers.append((number, port))
            number += 1
    except (ServiceError, OSError, ValueError) as exc:
        detail = exc.detail if isinstance(exc, ServiceError) else str(exc)
        w.values["problem"] = f"cannot submit replica {number}: {detail} (tried again after a back-off)"
        w.refused = True
        log.warning("service %s: %s", service.name, w.values["problem"])
    ids = insert_submitted(session, jobs)
    rows = [
        {"service": service.name, "number": n, "job_id": job_id, "state": ReplicaState.PENDING.value}
        | {"port": port, "since": now}
        for (n, port), job_id in zip(numbers, ids, strict=True)
    ]
    service_repo.add_replicas(session, rows)
    w.values["next_number"] = number
    return len(rows)


def _cancel(session: Session, w: _Work, now: datetime) -> int:
    """Cancel the jobs of the replicas ``w`` scales down (their runs are stopped by the reap step)."""
    if not w.plan.cancel:
        return 0
    current = lock_current(session, [job_id for _, job_id, _ in w.plan.cancel])
    moves = [
        Move(cur, JobStatus.CANCELLED, JobReason.CANCELLED, f"replica {number} of service {w.service.name}: {why}")
        for number, job_id, why in w.plan.cancel
        if (cur := current.get(job_id)) is not None and not cur.status.is_final()
    ]
    return transition_many(session, moves, f"service:{w.service.name}", now)


def _after(runtime: InferenceRuntime, state: ControlState, work: list[_Work]) -> None:
    """Ask for the health checks that are due, refresh the gauges, forget services that are gone."""
    watched = set()
    for w in work:
        if w.remove:
            continue
        name, states = w.service.name, w.states()
        for f in w.facts:
            now_state = states.get(f.number)
            if f.status is JobStatus.RUNNING and now_state in (ReplicaState.STARTING, ReplicaState.READY):
                url = health_url(f.port, w.service.spec.health_path)
                state.health.ask((name, f.number), url, ready=now_state is ReplicaState.READY)
                watched.add((name, f.number))
        counts = Counter(states.values())
        for replica_state in ReplicaState:
            runtime.metrics.replicas.labels(service=name, state=replica_state.value).set(counts.get(replica_state, 0))
        runtime.metrics.desired.labels(service=name).set(w.values["desired_replicas"])
    state.health.keep(watched)
    _forget(runtime, state, {w.service.name for w in work if w.remove})


def _forget(runtime: InferenceRuntime, state: ControlState, names: set[str]) -> None:
    for name in names:
        state.services.pop(name, None)
        runtime.metrics.forget(name)
    state.reader.forget(names)
