"""EASY backfill: a blocked queue head gets a start-time reservation; later jobs may start now only if they
do not delay it.

For a head of ``n`` GPUs, each feasible cluster *c* gives a shadow time: walk its running jobs by estimated
end ``e_1 <= e_2 <= ...`` accumulating GPUs until ``avail(c) + sum_{i<=k} gpus_i >= n``; then
``shadow(c) = e_k`` and ``extra(c) = avail(c) + sum_{i<=k} gpus_i - n``. The reservation takes the cluster
with the earliest shadow. A later job of ``m`` GPUs and remaining estimate ``r`` may start now on ``c`` when::

    now + r <= shadow(c)         (it ends before the head needs the GPUs), or
    m <= long_room(c)            (it leaves the head's GPUs alone); long_room(c) then shrinks by m.

Several reservations on one cluster keep the earliest shadow and the smallest extra (conservative). Power
caps are not projected into the future: the reservation is on GPUs only.
"""

from __future__ import annotations

import math

import numpy as np

from stargate.engine.index import FloatArray

Running = list[tuple[float, int, int]]
"""A cluster's running jobs as ``(estimated end, job, GPUs)`` in end order."""


class Reservations:
    """Per-cluster shadow times and room for long jobs; inf everywhere when nothing is reserved."""

    __slots__ = ("count", "jobs", "long_room", "min_shadow", "queues", "shadow")

    def __init__(self, n: int) -> None:
        """No reservation on any of ``n`` clusters."""
        self.shadow: FloatArray = np.full(n, math.inf)
        self.long_room: FloatArray = np.full(n, math.inf)
        self.min_shadow = math.inf
        self.count = 0
        self.jobs: set[int] = set()
        self.queues: set[int] = set()
        """Queues whose first blocked job was considered for a reservation."""

    def add(self, job: int, cluster: int, shadow: float, extra: float) -> None:
        """Reserve for ``job`` on ``cluster`` from ``shadow``, leaving ``extra`` GPUs to long jobs."""
        self.shadow[cluster] = min(self.shadow[cluster], shadow)
        self.long_room[cluster] = min(self.long_room[cluster], extra)
        self.min_shadow = min(self.min_shadow, shadow)
        self.count += 1
        self.jobs.add(job)

    def used(self, cluster: int, end_s: float, gpus: int) -> None:
        """A job of ``gpus`` started on ``cluster`` and ends (estimated) at ``end_s``."""
        if end_s > self.shadow[cluster]:
            self.long_room[cluster] -= gpus


def shadow_on(running: list[tuple[float, int, int]], have: float, need: int) -> tuple[float, float]:
    """Shadow time and extra GPUs on one cluster given its running ``(est_end, job, gpus)`` in end order."""
    if have >= need:
        return -math.inf, have - need
    for end, _, gpus in running:
        have += gpus
        if have >= need:
            return end, have - need
    return math.inf, 0.0


def earliest_start(
    running: list[Running],
    avail: FloatArray,
    clusters: list[int],
    need: int,
    gen: list[int],
    cache: dict[int, tuple[int, float, float]],
    rank: list[float],
) -> tuple[float, float, int, float]:
    """The earliest ``(shadow, rank, cluster, extra)`` over ``clusters`` for a job of ``need`` GPUs (cluster -1 when
    none). ``cache`` keeps each cluster's shadow for the job while that cluster's generation ``gen[c]`` (bumped on
    every start and finish there) is unchanged."""
    best: tuple[float, float, int, float] = (math.inf, math.inf, -1, 0.0)
    for c in clusters:
        hit = cache.get(c)
        if hit is None or hit[0] != gen[c]:
            hit = cache[c] = (gen[c], *shadow_on(running[c], avail.item(c), need))
        best = min(best, (hit[1], rank[c], c, hit[2]))
    return best
