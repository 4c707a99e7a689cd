"""The scheduler loop: :func:`run_cycle` (one cycle, clock injected) and :class:`SchedulerThread` (the server's).

One cycle: poll running jobs → snapshot → engine decides → decisions in ONE transaction → executors submit placed
jobs (outside any transaction) → orphaned runs are stopped → metrics. Only the holder of the scheduler lock runs
cycles (see :mod:`stargate.server.lock`).
"""

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stargate.server.context import ServerContext
from stargate.server.decide import Snapshot, apply_decisions, decide, take_snapshot
from stargate.server.execute import Executed, poll_running, reap_orphans, submit_placed
from stargate.server.lock import SchedulerLock

log = logging.getLogger("stargate.scheduler")


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
    notes: list[str] = field(default_factory=list)


def run_cycle(ctx: ServerContext, now: datetime) -> CycleReport:
    """Run one scheduling cycle at time ``now`` (aware UTC); the caller makes sure it is the only scheduler."""
    t0 = time.perf_counter()
    report = CycleReport(at=now)
    executed = Executed()
    poll_running(ctx, now, executed)
    snap = take_snapshot(ctx)
    if snap is None:
        report.notes.append("no fleet applied yet")
    else:
        result, lost = decide(snap, now)
        applied = apply_decisions(ctx, snap, result, lost, now)
        report.placed, report.preempted = applied.placed, applied.preempted
        report.rejected, report.requeued = applied.rejected, applied.requeued
        ctx.metrics.placements.inc(applied.placed)
        ctx.metrics.preemptions.inc(applied.preempted)
    submit_placed(ctx, now, executed)
    reap_orphans(ctx, now, executed)
    report.started, report.finished, report.reaped = executed.started, executed.finished, executed.reaped
    report.executor_errors = executed.errors
    if snap is not None:
        report.pending_after = _update_gauges(ctx)
    report.duration_s = time.perf_counter() - t0
    ctx.metrics.cycle_seconds.observe(report.duration_s)
    return report


def _update_gauges(ctx: ServerContext) -> int:
    """Refresh queue depth per team and running GPUs per cluster from the database; returns pending jobs."""
    snap: Snapshot | None = take_snapshot(ctx)
    if snap is None:
        return 0
    depth = Counter(j.team_id for j in snap.pending)
    for team in snap.fleet.teams:
        depth.setdefault(team.id, 0)
    gpus: Counter[str] = Counter({c.id: 0 for c in snap.fleet.clusters})
    for job in snap.holding:
        gpus[job.cluster or "?"] += job.gpus
    ctx.metrics.set_queue_depth(dict(depth))
    ctx.metrics.set_running_gpus(dict(gpus))
    return len(snap.pending)


class SchedulerThread:
    """Runs :func:`run_cycle` every ``settings.scheduler_interval_s`` while this process holds the scheduler lock."""

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._lock = SchedulerLock(ctx.db, ctx.settings.lock_path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stargate-scheduler", daemon=True)

    def start(self) -> None:
        """Start the loop in a daemon thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the loop to stop after its current cycle and wait for it."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        interval = self._ctx.settings.scheduler_interval_s
        leader = False
        try:
            while not self._stop.is_set():
                if self._lock.acquire():
                    if not leader:
                        log.info("scheduler: this process is the scheduler now")
                        leader = True
                    self._cycle()
                self._stop.wait(interval)
        finally:
            self._lock.release()

    def _cycle(self) -> None:
        try:
            run_cycle(self._ctx, datetime.now(UTC))
        except Exception:  # keep the loop alive; the next cycle starts from the database again
            log.exception("scheduler cycle failed")
