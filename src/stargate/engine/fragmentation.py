"""Fragmentation, measured only: GPUs available in number but unusable for the job the policy wants to run next.

No decision reads it (the simulator reports it as ``fragmented_gpu_hours``, see :mod:`stargate.sim.metrics`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stargate.engine.scheduler import Scheduler


def fragmented_gpus(sched: Scheduler, now: float) -> int:
    """The GPUs of the first pending job in policy order (the least entry over every queue) when the clusters it may
    use now (compatible, up, online, within power caps; pay-per-use ones only once its burst wait is over) have at
    least that many GPUs available in total, else 0: GPUs idle but unusable for it (split over nodes or clusters, or
    held by a reservation or its quota). It changes no decision (it only drops dead queue entries, as a scan would)."""
    pending = sched.pending
    if not pending.n:
        return 0
    queues, live_at = pending.queues, pending.live_at
    best: tuple[float, float, int, int] | None = None
    for q in pending.nonempty:
        pos = live_at(q, 0)
        if pos >= 0:
            e = queues[q].head[pos]
            if best is None or e < best:
                best = e
    if best is None:
        return 0
    t, occ, classes = sched.jobs, sched.occupancy, sched.classes
    j = best[3]
    g = t.gpus[j]
    if occ.amax < 1 and not occ.stale and not occ.max_dirty:
        return 0  # nothing available anywhere
    avail = occ.compute_avail() if occ.stale else occ.avail  # 0 where a cluster is down or offline
    cls = t.cls[j]
    if sched.policy.bursting and t.burst_at[j] > now:
        have = float(avail.sum(where=classes.mask_nb[cls]))
    else:
        have = float(avail.sum() if classes.all[cls] else avail.sum(where=classes.mask[cls]))
    return g if have >= g else 0
