"""The scheduler loop: :func:`run_cycle` (one cycle, clock injected) and :class:`SchedulerThread` (the server's).

One cycle: engines' health checked (when due) → poll running jobs → inference services' replicas kept (see
:mod:`.services`) → snapshot (observed health overlaid) → engine decides → decisions in ONE transaction → orphaned
runs (of jobs preempted, requeued or cancelled) are stopped → executors submit placed jobs (outside any transaction)
→ procurement → housekeeping (records of long-finished runs pruned, when due: see :mod:`.housekeeping`) → metrics.
Only the holder of the scheduler lock runs cycles (see :mod:`stargate.server.scheduling.lock`).
"""

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from stargate.domain import Fleet
from stargate.engine import FleetIndex
from stargate.server.context import ServerContext
from stargate.server.errors import DATABASE_DOWN, NotFoundError, database_problem
from stargate.server.scheduling import health, housekeeping, procure, services
from stargate.server.scheduling.apply import LostLeadershipError, apply_decisions
from stargate.server.scheduling.decide import decide
from stargate.server.scheduling.execute import Executed, poll_running, submit_placed
from stargate.server.scheduling.lock import SchedulerLock
from stargate.server.scheduling.reap import reap_orphans
from stargate.server.scheduling.snapshot import take_snapshot
from stargate.server.terms import ENGINE_EPOCH, engine_seconds
from stargate.store import JobEventRow
from stargate.store.repositories import events as event_repo
from stargate.store.repositories import fleet_versions
from stargate.store.repositories import health as health_repo
from stargate.store.repositories import jobs as job_repo
from stargate.store.repositories import teams as team_repo

log = logging.getLogger("stargate.scheduler")
MAX_BACKOFF_S = 5.0
"""Longest wait between cycles after repeated failures (e.g. the database is down), s."""
STANDBY_RETRY_S = 2.0
"""Longest wait of a standby between two tries of the scheduler lock, s (the cycle interval when shorter)."""


@dataclass
class CycleReport:
    """What one cycle did, for tests, logs and metrics."""

    at: datetime
    placed: int = 0
    started: int = 0
    preempted: int = 0
    rejected: int = 0
    requeued: int = 0
    finished: int = 0
    reaped: int = 0
    executor_errors: int = 0
    pending_after: int = 0
    duration_s: float = 0.0
    awards: int = 0
    """Capacity awards the procurement step made (each a new fleet version)."""
    decided: bool = True
    """False when the cycle skipped the engine because nothing changed since the last decision."""
    notes: list[str] = field(default_factory=list)


def run_cycle(ctx: ServerContext, now: datetime) -> CycleReport:
    """Run one scheduling cycle at time ``now`` (aware UTC); the caller makes sure it is the only scheduler.

    A cycle that raises is counted (``stargate_scheduler_cycle_failures_total``, the consecutive-failure gauge and
    ``/healthz``, degraded after a few in a row) and the exception goes on to the caller; one that finishes clears
    the streak. A cycle still running after ``metrics.STALLED_AFTER_S`` (60 s) makes ``/healthz`` degraded.
    """
    ctx.metrics.scheduler.began()
    try:
        with collector_paused():
            report = _run_cycle(ctx, now)
    except Exception as exc:
        ctx.metrics.cycle_failed(now, exc)
        raise
    ctx.metrics.cycle_succeeded()
    return report


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a cycle (reference counting still frees almost everything).

    A cycle over thousands of jobs allocates so many objects that the collector ran full collections (~100 ms each
    with the server's caches, several per cycle) in the middle of it; after the cycle it runs once as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_cycle(ctx: ServerContext, now: datetime) -> CycleReport:
    t0 = time.perf_counter()
    report = CycleReport(at=now)
    executed = Executed()
    _health(ctx, now, report, executed)
    unreachable = health.unreachable(ctx)  # their runs wait until their engine answers a health check again
    poll_running(ctx, now, executed, unreachable)
    unreachable |= health.note_unreachable(ctx, executed.unreachable, now)
    _services(ctx, now, report)  # before the decision: the replicas it adds are placed this cycle
    fingerprint = _fingerprint(ctx)  # read BEFORE the snapshot: a change made after it shows up next cycle
    if _needs_decision(ctx, fingerprint, now):
        _decide_and_apply(ctx, now, report)
        ctx.loop.fingerprint = fingerprint
    else:
        report.decided = False
    # First: a preempted job's run is told to stop before its GPUs' next job starts.
    reap_orphans(ctx, now, executed, unreachable, health.settling(ctx, now))
    unreachable |= health.note_unreachable(ctx, executed.unreachable, now)
    submit_placed(ctx, now, executed, unreachable)
    _procure(ctx, now, report)
    _housekeeping(ctx, now, report, unreachable | health.settling(ctx, now))
    report.started, report.finished, report.reaped = executed.started, executed.finished, executed.reaped
    report.executor_errors = executed.errors
    idle = not report.decided and not (executed.started or executed.finished or executed.reaped or executed.errors)
    report.pending_after = _gauges(ctx, fingerprint if idle else None)
    report.duration_s = time.perf_counter() - t0
    ctx.metrics.cycle_seconds.observe(report.duration_s)
    return report


def _procure(ctx: ServerContext, now: datetime, report: CycleReport) -> None:
    """The procurement step (see :mod:`stargate.server.scheduling.procure`); a failure of its own is logged and the
    cycle goes on (scheduling does not wait on buying), unless the database is down or the lock was lost."""
    try:
        done = procure.step(ctx, now)
    except (LostLeadershipError, *DATABASE_DOWN):
        raise
    except Exception:
        log.exception("scheduler: the procurement step failed (scheduling goes on)")
        report.notes.append("procurement step failed")
        ctx.loop.procure = None
        return
    report.awards = done.awards
    if done.events:
        report.notes.append(f"procurement: {done.events} events, {done.raised} requests raised, {done.awards} awards")


def _housekeeping(ctx: ServerContext, now: datetime, report: CycleReport, skip: frozenset[str]) -> None:
    """The housekeeping step (see :mod:`stargate.server.scheduling.housekeeping`): starts a pass when due, reports
    one that ended; executors in ``skip`` (unreachable, or settling after an outage) are left alone. A failure of
    its own is logged and the cycle goes on, unless the database is down or the lock was lost."""
    try:
        done = housekeeping.step(ctx, now, skip)
    except (LostLeadershipError, *DATABASE_DOWN):
        raise
    except Exception:
        log.exception("scheduler: the housekeeping step failed (scheduling goes on)")
        report.notes.append("housekeeping step failed")
        return
    if done is not None and done.removed:
        report.notes.append(f"housekeeping: removed {done.removed} of {done.records} records in {done.took_s:.2f} s")


def _services(ctx: ServerContext, now: datetime, report: CycleReport) -> None:
    """The services step (see :mod:`stargate.server.scheduling.services`); a failure of its own is logged and the
    cycle goes on, unless the database is down or the lock was lost."""
    try:
        done = services.step(ctx, now)
    except (LostLeadershipError, *DATABASE_DOWN):
        raise
    except Exception:
        log.exception("scheduler: the services step failed (scheduling goes on)")
        report.notes.append("services step failed")
        return
    report.notes.extend(done.decisions)


def _health(ctx: ServerContext, now: datetime, report: CycleReport, executed: Executed) -> None:
    """The health step (see :mod:`stargate.server.scheduling.health`): engines checked outside transactions, the
    clusters whose observed status changed recorded; a failure of its own is logged and the cycle goes on, unless
    the database is down or the lock was lost."""
    try:
        done = health.step(ctx, now, executed)
    except (LostLeadershipError, *DATABASE_DOWN):
        raise
    except Exception:
        log.exception("scheduler: the health step failed (scheduling goes on)")
        report.notes.append("health step failed")
        return
    for change in done.changes:
        report.notes.append(f"cluster {change.cluster}: {change.from_status} -> {change.to_status}: {change.reason}")


RECENT_EVENTS = 2048
"""How many of the newest events the fingerprint sums the ids of on PostgreSQL (see :func:`_fingerprint`)."""


def _fingerprint(ctx: ServerContext) -> tuple[str, int, int]:
    """(fleet version and newest cluster health event id, newest event id, sum of the :data:`RECENT_EVENTS` newest
    event ids): a cluster observed going down or coming back moves it as a fleet change does.

    The sum matters on PostgreSQL only, where transactions (of several servers on one database, or of one server's
    threads) take event ids in one order and may commit in another: an event committed after a newer one was seen
    leaves the newest id as it was but changes the set of newest ids, so the job it tells of is not left waiting
    for some later change (unless :data:`RECENT_EVENTS` newer events were committed meanwhile). One backward scan
    of the primary key's index, about 0.5 ms. SQLite commits one writer at a time, in id order: no sum there.
    """
    with ctx.db.read() as session:
        version = f"{fleet_versions.current_version(session) or ''}+{health_repo.last_event_id(session)}"
        if ctx.db.is_sqlite:
            return version, event_repo.last_id(session), 0
        newest = select(JobEventRow.id).order_by(JobEventRow.id.desc()).limit(RECENT_EVENTS).subquery()
        row = session.execute(select(func.coalesce(func.max(newest.c.id), 0), func.sum(newest.c.id))).one()
        return version, int(row[0]), int(row[1] or 0)


def _needs_decision(ctx: ServerContext, fingerprint: tuple[str, int, int], now: datetime) -> bool:
    """False when no job, no fleet and no engine deadline changed since the last decision (an idle cycle).

    The cycle after a decision always decides again (the decision's own events moved the fingerprint).
    """
    state = ctx.loop
    if state.fingerprint is None or state.fingerprint != fingerprint:
        return True
    return state.wakeup is not None and now >= state.wakeup


def _decide_and_apply(ctx: ServerContext, now: datetime, report: CycleReport) -> None:
    """Snapshot, decide with the kept driver (or a new one), write the decisions; the driver is kept for the next
    cycle only once they are all written (a cycle that raises, or drops a decision, rebuilds it next time)."""
    kept, ctx.loop.driver = ctx.loop.driver, None
    snap = take_snapshot(ctx)
    if snap is None:
        report.notes.append("no fleet applied yet")
        return
    policy = ctx.policy_for(snap.fleet)
    result, lost, kept = decide(snap, policy, engine_seconds(now), kept, lambda fleet: _index(ctx, snap.version, fleet))
    applied = apply_decisions(ctx, snap, result, lost, now, kept.driver.wait_reasons())
    if applied.complete:
        ctx.loop.driver = kept
    report.placed, report.preempted = applied.placed, applied.preempted
    report.rejected, report.requeued = applied.rejected, applied.requeued
    ctx.loop.wakeup = wakeup_at(result.next_wakeup_s)
    ctx.metrics.placements.inc(applied.placed)
    ctx.metrics.preemptions.inc(applied.preempted)


LAST_WAKEUP_S = (datetime(9999, 1, 1, tzinfo=UTC) - ENGINE_EPOCH).total_seconds()
"""The latest engine wake-up a date can hold; a later one (a burst wait of 1e12 s) is never reached: no wake-up."""


def wakeup_at(next_wakeup_s: float | None) -> datetime | None:
    """The engine's next wake-up as a time, None when there is none or it lies past what a date can hold."""
    if next_wakeup_s is None or not next_wakeup_s < LAST_WAKEUP_S:
        return None
    return ENGINE_EPOCH + timedelta(seconds=next_wakeup_s)


def _index(ctx: ServerContext, version: str, fleet: Fleet) -> FleetIndex:
    """The engine index of fleet ``version``, kept across cycles while the fleet version stays the same."""
    cached = ctx.loop.index
    if cached is None or cached[0] != version:
        cached = ctx.loop.index = (version, FleetIndex.from_fleet(fleet, epoch=ENGINE_EPOCH))
    return cached[1]


def _gauges(ctx: ServerContext, idle_fingerprint: tuple[str, int, int] | None) -> int:
    """The pending jobs, refreshing the gauges unless this idle cycle's fingerprint is the one they were last read
    at (no job and no fleet changed since: the database would give the same figures)."""
    cached = ctx.loop.gauges
    if idle_fingerprint is not None and cached is not None and cached[0] == idle_fingerprint:
        return cached[1]
    pending = _update_gauges(ctx)
    ctx.loop.gauges = None if idle_fingerprint is None else (idle_fingerprint, pending)
    return pending


def _update_gauges(ctx: ServerContext) -> int:
    """Refresh queue depth per team and GPUs held per cluster from the database; returns the pending jobs."""
    with ctx.db.read() as session:
        depth = job_repo.pending_by_team(session)
        gpus = job_repo.held_gpus_by_cluster(session)
        teams = [t.id for t in team_repo.list_teams(session)]
        try:
            _, fleet = ctx.fleet.get(session)
            clusters = [c.id for c in fleet.clusters]
        except NotFoundError:
            clusters = []
    ctx.metrics.set_queue_depth({team: depth.get(team, 0) for team in sorted(set(teams) | set(depth))})
    ctx.metrics.set_running_gpus({c: gpus.get(c, 0) for c in sorted(set(clusters) | set(gpus))})
    return sum(depth.values())


class SchedulerThread:
    """Runs :func:`run_cycle` every ``settings.scheduler_interval_s`` while this process holds the scheduler lock.

    Every server on a database runs one; all but the leader are standbys that try the lock every interval (0.2 s by
    default; at least every :data:`STANDBY_RETRY_S`), so one of them leads within about that long after the
    leader's process dies.
    """

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._lock = SchedulerLock(ctx.db, ctx.settings.lock_path)
        ctx.loop.fence = self._lock.holds_in  # a decision commits only while this process holds the lock
        self._stop = threading.Event()
        self._leader = False
        self._thread = threading.Thread(target=self._run, name="stargate-scheduler", daemon=True)

    @property
    def leader(self) -> bool:
        """True while this process leads: it held the scheduler lock at its last look (every cycle)."""
        return self._leader

    def start(self) -> None:
        """Try the lock once (so a lone server says it leads from its first answer), then loop in a daemon thread."""
        with contextlib.suppress(Exception):  # the database may be down: the loop says so and retries
            self._lead(self._lock.acquire())
        self._thread.start()

    def _lead(self, leader: bool) -> None:
        """Note (and log) whether this process leads now."""
        if leader != self._leader:
            log.info("scheduler: this process is %s now", "the scheduler" if leader else "a standby")
        self._leader = leader

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the loop to stop after its current cycle and wait for it."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        interval = self._ctx.settings.scheduler_interval_s
        failures = 0
        try:
            while not self._stop.is_set():
                failures = 0 if self._step() else failures + 1
                if failures:
                    self._stop.wait(min(interval * 2**failures, MAX_BACKOFF_S))
                else:
                    self._stop.wait(interval if self._leader else min(interval, STANDBY_RETRY_S))
        finally:
            with contextlib.suppress(Exception):  # the database may be gone; the lock goes with the process
                self._lock.release()

    def _step(self) -> bool:
        """One turn: take (or keep) the lock and run a cycle if we hold it; False when something raised (counted
        as a failed cycle either way, so a scheduler that cannot even take its lock reads as degraded too)."""
        now = datetime.now(UTC)
        try:
            leader = self._lock.acquire()
        except Exception as exc:  # e.g. the database is down
            self._lead(False)
            self._ctx.metrics.cycle_failed(now, exc)
            if isinstance(exc, DATABASE_DOWN):  # one line: a traceback per backed-off retry says nothing more
                log.error("scheduler: cannot take the scheduler lock: database unavailable: %s", database_problem(exc))
            else:
                log.exception("scheduler: cannot take the scheduler lock")
            return False
        self._lead(leader)
        if not leader:  # a standby runs no cycles: nothing of ours is failing
            self._ctx.loop.driver = None  # another process decides now: rebuild from the database if we lead again
            self._ctx.metrics.cycle_succeeded()
            return True
        try:
            run_cycle(self._ctx, now)
            return True
        except LostLeadershipError as exc:  # nothing of the cycle's decision was written; try the lock again
            log.warning("scheduler: %s", exc)
            self._lead(False)
            self._ctx.loop.driver = None
            return True
        except Exception as exc:  # keep the loop alive (backing off); the next cycle starts from the database again
            if isinstance(exc, DATABASE_DOWN):
                log.error("scheduler cycle failed: database unavailable: %s", database_problem(exc))
                return False
            problem = self._ctx.metrics.scheduler.problem()
            log.exception("scheduler cycle failed%s", f" ({problem})" if problem else "")
            return False
