"""The scheduler's job table: one row per job as parallel Python lists indexed by an int (fast scalar access)."""

from __future__ import annotations

import math

from stargate.engine.types import JobRequest

PENDING, RUNNING, DONE = 0, 1, 2


class JobTable:
    """Rows of every job the scheduler knows; ``ix`` maps string ids to rows."""

    __slots__ = (
        "attained",
        "base",
        "burst_at",
        "ckpt",
        "cls",
        "cluster",
        "est",
        "gpu_ids",
        "gpus",
        "ids",
        "ix",
        "last_run",
        "lvl",
        "may_preempt",
        "outages",
        "preemptible",
        "prio",
        "progress",
        "queue",
        "rank",
        "req",
        "seq",
        "stamp",
        "started",
        "state",
        "wgen",
        "why",
        "wkey",
    )

    def __init__(self) -> None:
        """An empty table."""
        self.ix: dict[str, int] = {}
        self.ids: list[str] = []
        self.req: list[JobRequest] = []
        self.queue: list[int] = []
        self.gpus: list[int] = []
        self.prio: list[int] = []
        self.preemptible: list[bool] = []
        """Row → the job may be stopped for a higher-priority one."""
        self.may_preempt: list[bool] = []
        """Row → the job may stop lower-priority ones to start."""
        self.est: list[float] = []
        self.ckpt: list[float] = []
        self.progress: list[float] = []
        self.cls: list[int] = []
        self.state: list[int] = []
        self.cluster: list[int] = []
        self.gpu_ids: list[tuple[int, ...]] = []
        self.started: list[float] = []
        self.burst_at: list[float] = []
        self.seq: list[int] = []
        self.attained: list[float] = []
        """Row → GPU-seconds the job received in runs that ended (work later lost included)."""
        self.base: list[float] = []
        """Row → its attained GPU-seconds when last promoted (its level counts the service since then)."""
        self.lvl: list[int] = []
        """Row → a running job's level (raised at its demotions; see :mod:`stargate.engine.service`)."""
        self.last_run: list[float] = []
        """Row → how long its last run lasted, s (0: none ended)."""
        self.stamp: list[int] = []
        """Row → bumped at each start, stop and wait: older demotion and promotion entries are stale."""
        self.rank: list[int] = []
        """Row → a running job's rank for victim selection (``priority × levels - level``; see :mod:`service`)."""
        self.why: list[int] = []
        """Row → why it waits, as judged (a code of :mod:`stargate.engine.waits`; -1: not judged)."""
        self.wgen: list[int] = []
        """Row → the cycle that last judged it (see :mod:`stargate.engine.waits`)."""
        self.wkey: list[int] = []
        """Row → the number of what its wait reason depends on (-1: not yet numbered; see :mod:`~.waits`)."""
        self.outages: list[int] = []
        """Row → its latest runs in a row stopped by outages without getting it past its last checkpoint (see
        :func:`stargate.engine.interruptions.outage_count`)."""

    def add(self, req: JobRequest, queue: int, est: float, ckpt: float, cls: int) -> int:
        """Append a pending row and return its index."""
        j = len(self.ids)
        self.ix[req.id] = j
        self.ids.append(req.id)
        self.req.append(req)
        self.queue.append(queue)
        self.gpus.append(req.gpus)
        self.prio.append(req.priority)
        self.preemptible.append(req.preemptible)
        self.may_preempt.append(req.may_preempt)
        self.est.append(est)
        self.ckpt.append(ckpt)
        self.progress.append(req.progress_s)
        self.cls.append(cls)
        self.state.append(PENDING)
        self.cluster.append(-1)
        self.gpu_ids.append(())
        self.started.append(math.nan)
        self.burst_at.append(math.inf)
        self.seq.append(-1)
        self.attained.append(req.attained_gpu_s)
        self.base.append(0.0)
        self.lvl.append(0)
        self.last_run.append(0.0)
        self.stamp.append(0)
        self.rank.append(req.priority)
        self.why.append(-1)
        self.wgen.append(-1)
        self.wkey.append(-1)
        self.outages.append(req.outage_stops)
        return j

    def remaining(self, j: int) -> float:
        """Estimated run time left, s (at least 1 s)."""
        return max(self.est[j] - self.progress[j], 1.0)

    def kept_progress(self, j: int, now: float, restart_cost_s: float = 0.0) -> float:
        """Progress a running job keeps if stopped at ``now``: up to its last checkpoint, less the restart cost, s
        (see :func:`checkpointed`)."""
        return checkpointed(self.progress[j], now - self.started[j], self.ckpt[j], restart_cost_s)


def checkpointed(progress_s: float, ran_s: float, interval_s: float, restart_cost_s: float = 0.0) -> float:
    """Progress a job keeps when a run of ``ran_s`` that began at ``progress_s`` stops: up to its last checkpoint
    (one every ``interval_s`` of run time), less ``restart_cost_s`` (the next run reloads that checkpoint first), s.
    The one rule for every stop: preemption, outage, a cluster removed.

    A negative progress is a restart still owed: the run pays it first and checkpoints count from there, so a run
    stopped before it paid its debt owes one restart again, not two. ``ran - fmod(ran, interval)`` is the run time up
    to the last whole interval, computed exactly and without a quotient: ``floor(ran / interval)`` overflows to
    infinity for a tiny interval (5e-324 s) and cannot be converted to an integer. A run time that is not a finite
    positive number changes nothing (the job never ran: it owes no restart); an interval that is not one keeps no
    work of the run.
    """
    if not (math.isfinite(ran_s) and ran_s > 0.0):
        return progress_s
    debt = -progress_s if progress_s < 0.0 else 0.0
    done = progress_s + debt
    work = ran_s - debt
    if work > 0.0 and math.isfinite(interval_s) and interval_s > 0.0:
        done += work - math.fmod(work, interval_s)
    return done - restart_cost_s
