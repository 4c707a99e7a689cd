"""Scheduler loop, health step: watch the engines behind the fleet's clusters and mark their clusters up, degraded or
down (leader only; executors are called outside transactions).

Every executor used by a cluster of the fleet in force that can check its engine (:class:`ChecksHealth`) is asked at
most every ``health.interval_s`` (its settings in the fleet's ``executors:``), several at once, on a thread of the
step's own: a cycle records the checks that finished and never waits for one (each is bounded by the executor).
While an executor's last check failed, the loop neither polls nor stops its runs (see :func:`unreachable`).
:class:`HealthTracker` turns the answers into an observed status:
``down`` once the engine has been unreachable (or has reported every node failed) for ``health.down_after_s``
(0: at the first failed check), ``degraded`` while some of its nodes failed, ``up`` again at the first healthy
check. Changes are written in one transaction: the observed status of every cluster of that executor
(``cluster_health``) and an event each (``cluster_events``), with the executor's failing streak (``executor_checks``:
since when, how many checks, the last error; written at each failed check, deleted at the first other one). The
streak in the database is the record: the trackers follow it (:func:`_follow`), so a new leader counts
``down_after_s`` from the streak's first failure, and the API shows it on any server. The snapshot overlays the
observed statuses on the declared fleet (the worse of the two wins), and the engine stops the jobs of a down
cluster, as it does for the simulator's outages: the loop requeues them with their checkpointed progress and places
them elsewhere.
"""

import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Gauge

from stargate.domain import ClusterStatus, Fleet
from stargate.domain.executors import AnyExecutorConfig, ExecutorHealth
from stargate.executors import UnknownExecutorError
from stargate.executors.base import ChecksHealth, Health
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError
from stargate.server.scheduling.execute import Call, Executed, call_all, describe
from stargate.store.repositories import health as health_repo
from stargate.store.repositories.health import Change, Streak

log = logging.getLogger("stargate.scheduler")

RANK = {ClusterStatus.UP: 0, ClusterStatus.DEGRADED: 1, ClusterStatus.DOWN: 2}
"""How bad each status is: the worse of a cluster's declared and observed status is the one the scheduler uses."""


def worse(a: ClusterStatus, b: ClusterStatus) -> ClusterStatus:
    """The worse of two statuses (``down`` over ``degraded`` over ``up``)."""
    return a if RANK[a] >= RANK[b] else b


def _seconds(delta: timedelta) -> str:
    return f"{max(delta.total_seconds(), 0.0):,.0f} s"


@dataclass
class HealthTracker:
    """What the checks of one executor's engine say about its clusters; pure (times are given)."""

    executor: str
    down_after_s: float
    failing_since: datetime | None = None
    """When the first failed check of the current failing streak was made (None: the last check was not failed)."""
    answering_since: datetime | None = None
    """When the engine answered again after its last failing streak (None: it never failed here)."""
    unreachable: bool = False
    """The current failing streak is the engine not answering (not its nodes failing while it answers)."""

    def judge(self, health: Health, at: datetime, current: ClusterStatus) -> tuple[ClusterStatus, str]:
        """The status the executor's clusters have after a check made at ``at`` that found ``health`` (``current``:
        their status before it), and why, on one line (empty when up).

        A failed check (unreachable, or every node failed) marks them down once the engine has failed every check
        for ``down_after_s`` (0: at once), and leaves them as they were before that; some nodes failed: degraded;
        healthy: up (at the first healthy check)."""
        if health.down():
            since = self.failing_since = self.failing_since or at
            self.unreachable = not health.reachable
            if (at - since).total_seconds() < self.down_after_s:
                return current, ""
            lasted = _seconds(at - since)
            why = f": {health.reason}" if health.reason else ""
            if not health.reachable:
                return ClusterStatus.DOWN, f"executor {self.executor} unreachable for {lasted}{why}"
            return ClusterStatus.DOWN, f"executor {self.executor}: every node failed ({health.nodes}) for {lasted}{why}"
        if self.failing_since is not None:
            self.failing_since, self.answering_since, self.unreachable = None, at, False
        if health.degraded():
            of = f" of {health.nodes}" if health.nodes is not None else ""
            why = f": {health.reason}" if health.reason else ""
            return ClusterStatus.DEGRADED, f"executor {self.executor}: {health.failed_nodes}{of} nodes failed{why}"
        return ClusterStatus.UP, f"executor {self.executor} healthy again" if current is not ClusterStatus.UP else ""


@dataclass
class _Watched:
    """One executor the step watches: its health settings and the clusters it runs."""

    settings: ExecutorHealth
    clusters: list[str]


_OVERLAID: dict[tuple[str, tuple[tuple[str, str], ...]], Fleet] = {}
"""The last overlaid fleet, by (declared version, overlay): a snapshot makes it once per change, not per cycle."""


def overlay(
    fleet: Fleet, version: str, observed: Mapping[str, health_repo.Observed]
) -> tuple[Fleet, str, dict[str, str]]:
    """``fleet`` with each cluster's status the worse of its declared one and the one observed through its executor
    (an observation through another executor, or of a cluster not in the fleet, is ignored); the version the
    scheduler knows it by (``<version>+<cluster>:<status>...`` when anything is overlaid, so the engine's driver
    is told of the change); and why each overlaid cluster is as it is, by cluster id."""
    if not observed:
        return fleet, version, {}
    executor_of = fleet.cluster_executor_ids()
    changed: dict[str, ClusterStatus] = {}
    reasons: dict[str, str] = {}
    for c in fleet.clusters:
        seen = observed.get(c.id)
        if seen is None or seen.executor != executor_of.get(c.id):
            continue
        try:
            status = ClusterStatus(seen.status)
        except ValueError:
            continue
        if RANK[status] > RANK[c.status]:
            changed[c.id] = status
            reasons[c.id] = seen.reason
    if not changed:
        return fleet, version, {}
    key = (version, tuple(sorted((c, s.value) for c, s in changed.items())))
    found = _OVERLAID.get(key)
    if found is None:
        clusters = [c.model_copy(update={"status": changed[c.id]}) if c.id in changed else c for c in fleet.clusters]
        found = fleet.model_copy(update={"clusters": clusters})
        _OVERLAID.clear()
        _OVERLAID[key] = found
    digest = hashlib.sha256(repr(key[1]).encode()).hexdigest()[:16]
    return found, f"{version}+health-{digest}", reasons


@dataclass
class HealthState:
    """What the health step keeps between cycles (per server process)."""

    trackers: dict[str, HealthTracker] = field(default_factory=dict)
    due: dict[str, datetime] = field(default_factory=dict)
    """When each executor is checked next."""
    version: str | None = None
    watched: dict[str, _Watched] = field(default_factory=dict)
    reread_at: datetime | None = None
    """When the fleet is read again to learn which executors to watch."""
    gauge: Gauge | None = None
    running: "_Batch | None" = None
    """The checks started and not yet recorded (one batch at a time)."""


@dataclass
class _Batch:
    """Health checks running on their own thread: when they started, of which executors, their answers once done."""

    at: datetime
    executors: list[str]
    answers: list[tuple[bool, Any]] | None = None
    thread: threading.Thread | None = None
    took_s: dict[str, float] = field(default_factory=dict)
    """How long each executor's check took (monotonic s)."""


_STATES: dict[int, HealthState] = {}


def state_of(ctx: ServerContext) -> HealthState:
    """The health step's state of this server process (kept with its loop state, dropped with it)."""
    key = id(ctx.loop)
    found = _STATES.get(key)
    if found is None:
        found = _STATES[key] = HealthState()
        weakref.finalize(ctx.loop, _STATES.pop, key, None)
    return found


@dataclass
class Checked:
    """What one health step did: executors checked, clusters whose observed status changed."""

    checked: int = 0
    changes: list[Change] = field(default_factory=list)


def watched(fleet: Fleet) -> dict[str, _Watched]:
    """The executors the fleet's clusters use, with their health settings and clusters (ids in order)."""
    configs: Mapping[str, AnyExecutorConfig] = fleet.executor_configs()
    out: dict[str, _Watched] = {}
    for cluster, executor in sorted(fleet.cluster_executor_ids().items()):
        config = configs.get(executor)
        if config is None:
            continue
        out.setdefault(executor, _Watched(config.health, [])).clusters.append(cluster)
    return out


def step(ctx: ServerContext, now: datetime, out: Executed | None = None, wait: bool = False) -> Checked:
    """Record the checks that finished since the last cycle, then start those that are due, outside transactions;
    returns what it recorded. The checks run on a thread of their own, so a cycle never waits for an engine that
    does not answer (``wait``: wait for the checks started now and record them too, as tests with a fixed clock
    do). A healthy check is judged at the time it started, a failed one when its failure came. Leader only: the
    scheduler loop calls it every cycle."""
    state = state_of(ctx)
    done = Checked()
    _collect(ctx, state, done)
    if state.running is not None:
        return done
    if state.reread_at is None or now >= state.reread_at or any(now >= at for at in state.due.values()):
        _reread(ctx, state, now)
    checkers: list[tuple[str, Any]] = []
    for executor_id in sorted(e for e, at in state.due.items() if now >= at):
        state.due[executor_id] = now + timedelta(seconds=state.watched[executor_id].settings.interval_s)
        try:
            executor = ctx.executor(executor_id)
        except UnknownExecutorError as exc:  # it cannot be built here: its engine is out of reach, and why
            checkers.append((executor_id, Unbuilt(str(exc))))
            continue
        if isinstance(executor, ChecksHealth):
            checkers.append((executor_id, executor))
    if not checkers:
        return done
    batch = state.running = _Batch(now, [e for e, _ in checkers])
    calls = [Call(e, "health", _timed(ex.health, batch.took_s, e), f"executor {e}") for e, ex in checkers]

    def run() -> None:
        batch.answers = call_all(ctx, calls, out if out is not None and wait else Executed())

    batch.thread = threading.Thread(target=run, name="stargate-health", daemon=True)
    batch.thread.start()
    if wait:
        batch.thread.join()
        _collect(ctx, state, done)
    return done


@dataclass(frozen=True)
class Unbuilt:
    """The health of an executor that cannot be built here: unreachable, with the reason."""

    reason: str

    def health(self) -> Health:
        return Health(reachable=False, reason=self.reason)


def unreachable(ctx: ServerContext) -> frozenset[str]:
    """The executors whose engine did not answer its last health check (or a call since): their runs are not
    polled nor stopped until a check finds the engine answering again (each call would only wait and fail, and
    hold the cycle up). An engine that answers while every node failed is not one of them: its runs are still
    polled, so a run that completes meanwhile (a job step outlives its dead slurmd) is seen to."""
    trackers = state_of(ctx).trackers
    return frozenset(e for e, t in trackers.items() if t.failing_since is not None and t.unreachable)


def note_unreachable(ctx: ServerContext, found: Mapping[str, str], now: datetime) -> frozenset[str]:
    """Take executor calls of this cycle that got no answer from their engine (executor id → error) as failed
    checks: each watched executor not yet failing starts failing at ``now`` (its ``down_after_s`` counts from
    there, not from its next scheduled check, and its runs are left alone from now on), and its streak is stored
    (one transaction). The executors now failing."""
    trackers = state_of(ctx).trackers
    noted: dict[str, str] = {}
    for executor_id, why in found.items():
        tracker = trackers.get(executor_id)
        if tracker is not None and not tracker.unreachable:
            tracker.failing_since, tracker.unreachable = tracker.failing_since or now, True
            noted[executor_id] = why
            log.warning("executor %s: its engine did not answer: %s", executor_id, why)
    if noted:
        with ctx.db.write() as session:
            before = health_repo.streaks(session)
            health_repo.keep_streaks(session, (_streak(before, trackers[e], now, why) for e, why in noted.items()))
    return unreachable(ctx)


ERROR_MAX = 500
"""Most characters of a failed check's error kept in the executor's streak (as :func:`describe` keeps of an
exception): the text the executor gave, on one line; the event log's reasons are made of the same text."""


def _streak(before: Mapping[str, Streak], tracker: HealthTracker, at: datetime, error: str) -> Streak:
    """The executor's stored streak after a failed check made at ``at`` that found ``error`` (the tracker has
    judged it: it says since when the streak runs and whether the engine answered)."""
    since = tracker.failing_since or at
    line = " ".join(error.split())[:ERROR_MAX] or "the check failed"
    return Streak.failed(before.get(tracker.executor), tracker.executor, since, at, line, tracker.unreachable)


def _follow(tracker: HealthTracker, stored: Streak | None) -> None:
    """Make ``tracker`` follow the streak stored for its executor: the database is the record, so a new leader
    (or one that led before and lost the lock meanwhile) counts from the streak's first failure, and forgets a
    streak another leader saw end."""
    if stored is None:
        tracker.failing_since, tracker.unreachable = None, False
    else:
        tracker.failing_since, tracker.unreachable = stored.since, stored.unreachable


SETTLE_S = 30.0
"""Seconds after an engine answers again during which the orphaned runs of live jobs it still reports running are
not stopped, only watched: an engine back from an outage may not yet know that a run finished meanwhile (Slurm
hears of a batch script that ended while slurmctld was down when slurmd's retried completion message gets
through), and such a run completes its job (see :mod:`stargate.server.scheduling.reap`), where stopping it would
make the job run twice. The run of a job that is final (a user cancelled it) is stopped at once."""


def settling(ctx: ServerContext, now: datetime) -> frozenset[str]:
    """The executors whose engine answered again less than :data:`SETTLE_S` ago after failing."""
    trackers = state_of(ctx).trackers
    return frozenset(
        e
        for e, t in trackers.items()
        if t.answering_since is not None and (now - t.answering_since).total_seconds() < SETTLE_S
    )


def _timed(check: Callable[[], Health], took_s: dict[str, float], executor_id: str) -> Callable[[], Health]:
    """``check``, recording how long it took into ``took_s``."""

    def timed() -> Health:
        started = time.monotonic()
        try:
            return check()
        finally:
            took_s[executor_id] = time.monotonic() - started

    return timed


def _collect(ctx: ServerContext, state: HealthState, done: Checked) -> None:
    """Record the running batch of checks if it finished (into ``done``)."""
    batch = state.running
    if batch is None or batch.answers is None:
        return
    state.running = None
    found: dict[str, Health] = {}
    for executor_id, (ok, answer) in zip(batch.executors, batch.answers, strict=True):
        found[executor_id] = answer if ok and isinstance(answer, Health) else _failed(answer)
    done.checked += len(found)
    done.changes += _record(ctx, state, found, batch.at, batch.took_s)


def _failed(answer: object) -> Health:
    """A health check that raised (or answered something else) as an unreachable engine."""
    if isinstance(answer, BaseException):
        return Health(reachable=False, reason=f"health check failed: {describe(answer)}")
    return Health(reachable=False, reason=f"health check answered {str(answer)[:200]!r}")


def _reread(ctx: ServerContext, state: HealthState, now: datetime) -> None:
    """Learn which executors the fleet in force uses and their stored failing streaks; a new executor is checked
    now, a gone one forgotten (its stored streak deleted). The trackers follow the stored streaks, so a new leader
    leaves alone the runs of an engine stored as not answering until a check finds it answering."""
    with ctx.db.read() as session:
        try:
            version, fleet = ctx.fleet.get(session)
        except NotFoundError:
            version, fleet = None, None
        stored = health_repo.streaks(session)
    if fleet is None:
        state.watched, state.due = {}, {}
    elif version != state.version:
        state.watched = watched(fleet)
        state.due = {e: state.due.get(e, now) for e in state.watched}
        state.trackers = {e: t for e, t in state.trackers.items() if e in state.watched}
    state.version = version
    for executor_id, tracker in state.trackers.items():
        _follow(tracker, stored.get(executor_id))
    for executor_id, streak in stored.items():
        if executor_id in state.watched and executor_id not in state.trackers:
            down_after = state.watched[executor_id].settings.down_after_s
            state.trackers[executor_id] = HealthTracker(executor_id, down_after, streak.since, None, streak.unreachable)
    gone = [e for e in stored if e not in state.watched]
    if gone:
        with ctx.db.write() as session:
            health_repo.clear_streaks(session, gone)
    least = min((w.settings.interval_s for w in state.watched.values()), default=10.0)
    state.reread_at = now + timedelta(seconds=least)


def _record(
    ctx: ServerContext,
    state: HealthState,
    found: dict[str, Health],
    now: datetime,
    took_s: Mapping[str, float] | None = None,
) -> list[Change]:
    """Judge each check against the stored statuses of its executor's clusters and write the changes (one
    transaction; each change logged and counted in the gauge). A healthy check is judged at ``now``, when it
    started; a failed one when its failure came (``now`` + the time it took, ``took_s``): the engine gave no answer
    for all that time."""
    changes: list[Change] = []
    after: dict[tuple[str, str], ClusterStatus] = {}
    with ctx.db.write() as session:
        stored = health_repo.observed(session)
        streaks = health_repo.streaks(session)
        failing: list[Streak] = []
        ended: list[str] = []
        for executor_id, health in found.items():
            if executor_id not in state.watched:  # the fleet changed while it was checked
                continue
            clusters = state.watched[executor_id].clusters
            before = {c: _stored(stored, c, executor_id) for c in clusters}
            current = max(before.values(), key=RANK.__getitem__, default=ClusterStatus.UP)
            tracker = state.trackers.get(executor_id)
            if tracker is None or tracker.down_after_s != state.watched[executor_id].settings.down_after_s:
                down_after = state.watched[executor_id].settings.down_after_s
                tracker = state.trackers[executor_id] = (
                    HealthTracker(executor_id, down_after)
                    if tracker is None
                    else HealthTracker(
                        executor_id, down_after, tracker.failing_since, tracker.answering_since, tracker.unreachable
                    )
                )
            _follow(tracker, streaks.get(executor_id))
            waited = (took_s or {}).get(executor_id, 0.0) if health.down() else 0.0
            at = now + timedelta(seconds=waited)
            status, reason = tracker.judge(health, at, current)
            if health.down():
                failing.append(_streak(streaks, tracker, at, health.reason or _found(health)))
            elif executor_id in streaks:
                ended.append(executor_id)
            for cluster in clusters:
                after[(cluster, executor_id)] = status
                if before[cluster] is not status:
                    text = reason or f"executor {executor_id} healthy"
                    changes.append(Change(cluster, executor_id, before[cluster].value, status.value, text))
        health_repo.record(session, changes, now)
        health_repo.keep_streaks(session, failing)
        health_repo.clear_streaks(session, ended)
    _gauge(ctx, state, after)
    for change in changes:
        emit = log.warning if change.to_status != ClusterStatus.UP else log.info
        emit("cluster %s: %s -> %s: %s", change.cluster, change.from_status, change.to_status, change.reason)
    return changes


def _found(health: Health) -> str:
    """What a failed check without a reason found."""
    return "the engine did not answer" if not health.reachable else f"every node failed ({health.nodes})"


def _stored(stored: Mapping[str, health_repo.Observed], cluster: str, executor: str) -> ClusterStatus:
    """A cluster's stored observed status through ``executor`` (up when none is stored, or one of another
    executor: the cluster moved)."""
    row = stored.get(cluster)
    if row is None or row.executor != executor:
        return ClusterStatus.UP
    try:
        return ClusterStatus(row.status)
    except ValueError:
        return ClusterStatus.UP


def _gauge(ctx: ServerContext, state: HealthState, after: dict[tuple[str, str], ClusterStatus]) -> None:
    """Set ``stargate_cluster_observed_status`` (0 up, 1 degraded, 2 down) of the checked executors' clusters."""
    if state.gauge is None:
        try:
            state.gauge = Gauge(
                "stargate_cluster_observed_status",
                "A cluster's status as its executor's health checks see it: 0 up, 1 degraded, 2 down.",
                ["cluster", "executor"],
                registry=ctx.metrics.registry,
            )
        except ValueError:  # already registered in this registry (another loop state over the same metrics)
            return
    for (cluster, executor_id), status in after.items():
        state.gauge.labels(cluster=cluster, executor=executor_id).set(RANK[status])
