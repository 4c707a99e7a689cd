"""Priority preemption: a blocked job may stop lower-priority preemptible jobs on one cluster.

Victims on a cluster are taken lowest priority first, then most recently started (least work lost), until
``avail(c) + sum(victim GPUs) >= n`` and, for a job that is not spread (see :mod:`alloc`), nodes of its shape would
be free: the victims' releases are replayed on a scratch copy of the cluster's per-node free counts
(:class:`~stargate.engine.alloc.NodeReplay`). Victims that turn out not to be needed for the shape (they run on
other nodes) are then dropped again, the last taken first, so no job is stopped that does not help the start. Among
clusters where that succeeds, the one stopping the fewest GPUs wins, then the lowest placement rank. A victim
keeps its progress up to its last checkpoint and returns to its queue at its original position (its submission
time is unchanged).

Victim selection reads only a :class:`VictimView`, never the scheduler: the scheduler builds one per attempt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from stargate.engine.alloc import SPREAD, NodeAllocator, NodeReplay
from stargate.engine.index import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class VictimView:
    """What victim selection reads of the fleet and its running jobs, and nothing more.

    Clusters and jobs are the scheduler's row indices; job columns are indexed by job row.
    """

    total: IntArray
    """Cluster → GPUs it has."""
    avail: FloatArray
    """Cluster → GPUs a new job could get there now."""
    rank: FloatArray
    """Cluster → placement rank (lower is preferred; see :mod:`stargate.engine.placement`)."""
    running: Sequence[Sequence[tuple[float, int, int]]]
    """Cluster → its running jobs as ``(estimated end, job, GPUs)``."""
    priority: Sequence[int]
    """Job → priority."""
    preemptible: Sequence[bool]
    """Job → it may be stopped for a higher-priority job."""
    started: Sequence[float]
    """Job → when it started, s."""
    gpus: Sequence[int]
    """Job → GPUs it holds."""
    fits: Callable[[int, int, int], bool]
    """``fits(queue, cluster, gpus)``: the queue's quota admits that many more GPUs on that cluster now."""
    allocs: Sequence[NodeAllocator] = ()
    """Cluster → its node allocator (read only; needed for a job that is not spread)."""
    gpu_ids: Sequence[tuple[int, ...]] = ()
    """Job → the GPU ids it holds (needed for a job that is not spread)."""


def pick_victims(
    view: VictimView,
    queue: int,
    gpus: int,
    priority: int,
    clusters: Iterable[int],
    per: int = SPREAD,
    floor: float = -math.inf,
) -> list[int] | None:
    """Victims to stop so a job of ``queue``, ``gpus``, ``priority`` and shape ``per`` fits on some cluster in
    ``clusters``, or None when none works; victims rank below ``priority`` and above ``floor``."""
    prio, preemptible, started, held = view.priority, view.preemptible, view.started, view.gpus
    best: tuple[int, float, int, list[int]] | None = None
    for c in clusters:
        c = int(c)
        if int(view.total[c]) < gpus or not view.fits(queue, c, gpus):
            continue
        have = float(view.avail[c])
        cands = sorted(
            (prio[v], -started[v], v) for _, v, _ in view.running[c] if preemptible[v] and floor < prio[v] < priority
        )
        if per != SPREAD and view.allocs:
            chosen, stopped, have = _shaped(view, view.allocs[c], have, gpus, per, [v for _, _, v in cands])
        else:
            chosen, stopped = [], 0
            for _, _, v in cands:
                if have >= gpus:
                    break
                chosen.append(v)
                have += held[v]
                stopped += held[v]
        if have >= gpus and chosen:
            cand = (stopped, float(view.rank[c]), c, chosen)
            if best is None or cand[:3] < best[:3]:
                best = cand
    return None if best is None else best[3]


def _shaped(
    view: VictimView, alloc: NodeAllocator, have: float, gpus: int, per: int, cands: list[int]
) -> tuple[list[int], int, float]:
    """Victims among ``cands`` (in preference order) that free nodes of shape ``per`` for ``gpus`` GPUs on one cluster
    (with ``have`` GPUs available now): ``(victims, GPUs stopped, GPUs then available)``; no victims when it fits
    already or cannot be made to fit."""
    held, ids = view.gpus, view.gpu_ids
    replay = NodeReplay(alloc)
    if have >= gpus and replay.fits(gpus, per):
        return [], 0, have
    chosen: list[int] = []
    for v in cands:
        chosen.append(v)
        have += held[v]
        replay.give(ids[v])
        if have >= gpus and replay.fits(gpus, per):
            break
    else:
        return [], 0, have
    for v in reversed(chosen[:-1]):  # drop victims the shape does not need (the last one taken is needed)
        replay.give(ids[v], -1)
        if have - held[v] >= gpus and replay.fits(gpus, per):
            chosen.remove(v)
            have -= held[v]
        else:
            replay.give(ids[v])
    return chosen, sum(held[v] for v in chosen), have
