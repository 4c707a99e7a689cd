"""Priority preemption: a blocked job may stop lower-priority preemptible jobs on one cluster.

Victims on a cluster are taken lowest priority first, then most recently started (least work lost), until
``avail(c) + sum(victim GPUs) >= n``. Among clusters where that succeeds, the one stopping the fewest GPUs
wins, then the lowest placement rank. A victim keeps its progress up to its last checkpoint and returns to
its queue at its original position (its submission time is unchanged).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stargate.engine.scheduler import Scheduler


def pick_victims(s: Scheduler, j: int, clusters: Iterable[int]) -> list[int] | None:
    """Victims to stop so job ``j`` fits on some cluster in ``clusters``, or None when none works."""
    t = s.jobs
    g, p, q = t.gpus[j], t.prio[j], t.queue[j]
    best: tuple[int, float, int, list[int]] | None = None
    for c in clusters:
        c = int(c)
        if int(s.index.total[c]) < g or not s.adm.fits(q, s.index.model_of[c], g):
            continue
        have = float(s.avail[c])
        cands = sorted((t.prio[v], -t.started[v], v) for _, v, _ in s.running[c] if t.preemptible[v] and t.prio[v] < p)
        chosen: list[int] = []
        stopped = 0
        for _, _, v in cands:
            if have >= g:
                break
            chosen.append(v)
            have += t.gpus[v]
            stopped += t.gpus[v]
        if have >= g and chosen:
            cand = (stopped, float(s.rank[c]), c, chosen)
            if best is None or cand[:3] < best[:3]:
                best = cand
    return None if best is None else best[3]
