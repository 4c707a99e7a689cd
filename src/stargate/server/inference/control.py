"""What the services step decides for one service each cycle, from its replicas' jobs and health checks (no
database here: the step reads, calls :func:`plan`, and writes the plan in one transaction).

A replica's state follows its job: waiting for GPUs (``pending``, ``placed``) → ``pending``; running → ``starting``
until ``GET <health_path>`` answers 200 → ``ready``; a ready replica whose checks fail :data:`READY_FAILURES` times
in a row is ``starting`` again (no request is sent to it). A replica whose job ended while it was not draining
ended unexpectedly: it is replaced, after a back-off that doubles with each failure in a row (1 s up to
:data:`MAX_BACKOFF_S`; a replica becoming ready clears it). One that does not pass its health check within
:func:`start_timeout_s` of starting is stopped and counted as such a failure.

The count to keep comes from the autoscaler (``desired``; 0 while the service is deleted). Too few: new replicas.
Too many: :func:`stargate.engine.replicas.to_remove` picks which (waiting ones first, then starting, then the newest
ready); a replica not ready yet is cancelled at once, a ready one is **drained**: no process sends it a new request
from then on, and its job is cancelled once no process has a request in flight at it (and at least
:data:`DRAIN_MIN_S` after it began draining, so that every process has read the routes since), or after
:data:`DRAIN_TIMEOUT_S` (its requests still in flight are cut off then). Too few while replicas drain:
:func:`stargate.engine.replicas.to_take_back` picks the draining replicas (still running) that go back to ready —
every proxy routes to them again once it has read the routes — and only the rest are started anew.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stargate.domain.services import ServiceSpec
from stargate.engine.replicas import Replica, ReplicaState, to_remove, to_take_back
from stargate.store import JobStatus

READY_FAILURES = 3
"""Failed health checks in a row that take a ready replica out of the routes."""
DRAIN_MIN_S = 1.5
"""Seconds a drained replica keeps running at least: three reads of the routes by every process."""
DRAIN_TIMEOUT_S = 120.0
"""Seconds a drained replica waits for its requests in flight at most; its job is cancelled then."""
MAX_BACKOFF_S = 60.0
"""The longest wait before replacing a replica after failures in a row, s."""
START_TIMEOUT_MIN_S = 60.0


def start_timeout_s(spec: ServiceSpec) -> float:
    """How long a running replica may take to pass its health check: 3 × ``cold_start_s``, at least 60 s."""
    return max(START_TIMEOUT_MIN_S, 3 * spec.cold_start_s)


def backoff_s(failures: int) -> float:
    """The wait before the next replica after ``failures`` failures in a row: 1, 2, 4, ... s up to 60 s."""
    return 0.0 if failures <= 0 else min(MAX_BACKOFF_S, 2.0 ** (failures - 1))


@dataclass(frozen=True, slots=True)
class ReplicaFacts:
    """A replica as the step sees it this cycle: its row, its job, its health checks, its requests in flight."""

    number: int
    job: str
    """The job's public id (``j-000123``)."""
    job_id: int
    state: ReplicaState
    port: int
    since: datetime
    status: JobStatus
    detail: str = ""
    """The reason and detail of the job's last status change."""
    healthy: bool | None = None
    """The latest health check (None: none since the last cycle)."""
    failing: int = 0
    """Health checks failed in a row."""
    in_flight: int = 0
    """Requests in flight at it, every process."""


@dataclass
class Plan:
    """What to write for one service: state changes, rows to delete, jobs to cancel, replicas to add."""

    states: list[tuple[int, ReplicaState]] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    cancel: list[tuple[int, int, str]] = field(default_factory=list)
    """(number, job row id, why) of the replicas whose jobs to cancel."""
    start: int = 0
    failures: list[str] = field(default_factory=list)
    """One line per replica that failed this cycle."""
    ready: int = 0
    live: int = 0
    """Replicas not draining after this plan (waiting, starting, ready)."""
    left: int = 0
    """Replicas with a row after this plan (draining ones included)."""
    became_ready: bool = False


def plan(spec: ServiceSpec, desired: int, replicas: list[ReplicaFacts], now: datetime, may_start: bool = True) -> Plan:
    """The plan for one service that should have ``desired`` replicas (see the module docstring); ``may_start``:
    False while a back-off after failures runs."""
    out = Plan()
    states: dict[int, ReplicaState] = {}
    for r in replicas:
        state = _follow(spec, r, now, out)
        if state is not None:
            states[r.number] = state
            if state is not r.state:
                out.states.append((r.number, state))
    live = [r for r in replicas if states.get(r.number) not in (None, ReplicaState.DRAINING)]
    if len(live) > desired:
        engine_view = [Replica(r.job, r.number, states[r.number], _age_key(r, now)) for r in live]
        for chosen in to_remove(engine_view, len(live) - desired):
            facts = next(r for r in live if r.number == chosen.number)
            states[facts.number] = ReplicaState.DRAINING
            out.states = [s for s in out.states if s[0] != facts.number] + [(facts.number, ReplicaState.DRAINING)]
            if chosen.state is not ReplicaState.READY:
                out.cancel.append((facts.number, facts.job_id, f"scaled down before it was ready ({chosen.state})"))
        live = [r for r in live if states[r.number] is not ReplicaState.DRAINING]
    elif len(live) < desired:
        warm = [r for r in replicas if r.state is ReplicaState.DRAINING and r.status is JobStatus.RUNNING]
        engine_view = [Replica(r.job, r.number, ReplicaState.DRAINING, _age_key(r, now)) for r in warm]
        back = {chosen.number for chosen in to_take_back(engine_view, desired - len(live))}
        for facts in (r for r in warm if r.number in back):
            states[facts.number] = ReplicaState.READY
            out.states = [s for s in out.states if s[0] != facts.number] + [(facts.number, ReplicaState.READY)]
            out.cancel = [c for c in out.cancel if c[0] != facts.number]  # a drain that ended this cycle: kept
            live.append(facts)
        if may_start:
            out.start = desired - len(live)
    out.ready = sum(1 for r in live if states[r.number] is ReplicaState.READY)
    out.live = len(live) + out.start
    out.left = sum(1 for r in replicas if r.number in states) + out.start
    return out


def _follow(spec: ServiceSpec, r: ReplicaFacts, now: datetime, out: Plan) -> ReplicaState | None:
    """The state replica ``r`` moves to this cycle (None: its job is final, the row goes); cancels and failures are
    added to ``out``."""
    if r.status.is_final():
        out.gone.append(r.number)
        if r.state is not ReplicaState.DRAINING:
            why = r.detail if r.detail and r.detail.startswith(str(r.status)) else f"{r.status}: {r.detail}"
            out.failures.append(f"replica {r.number} ({r.job}) ended: {why}".rstrip(": "))
        return None
    if r.state is ReplicaState.DRAINING:
        if r.status is not JobStatus.RUNNING:
            out.cancel.append((r.number, r.job_id, "scaled down while waiting"))
        elif _drained(r, now):
            waited = (now - r.since).total_seconds()
            why = "drained" if r.in_flight == 0 else f"drain timed out with {r.in_flight} requests in flight"
            out.cancel.append((r.number, r.job_id, f"scaled down: {why} after {waited:.1f} s"))
        return ReplicaState.DRAINING
    if r.status is not JobStatus.RUNNING:
        return ReplicaState.PENDING
    if r.state is ReplicaState.READY:
        return ReplicaState.STARTING if r.failing >= READY_FAILURES else ReplicaState.READY
    if r.healthy:
        out.became_ready = True
        return ReplicaState.READY
    if r.state is ReplicaState.STARTING and (now - r.since).total_seconds() > start_timeout_s(spec):
        limit = start_timeout_s(spec)
        out.cancel.append((r.number, r.job_id, f"did not answer GET {spec.health_path} within {limit:g} s"))
        out.failures.append(f"replica {r.number} ({r.job}) did not answer GET {spec.health_path} within {limit:g} s")
        return ReplicaState.DRAINING
    return ReplicaState.STARTING


def _drained(r: ReplicaFacts, now: datetime) -> bool:
    waited = now - r.since
    return (r.in_flight <= 0 and waited >= timedelta(seconds=DRAIN_MIN_S)) or waited >= timedelta(
        seconds=DRAIN_TIMEOUT_S
    )


def _age_key(r: ReplicaFacts, now: datetime) -> float:
    """The ``since_s`` the engine orders by (newer first): seconds of ``r.since`` before ``now``, negated."""
    return -(now - r.since).total_seconds()
