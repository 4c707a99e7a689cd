"""EASY backfill: a blocked queue head gets a start-time reservation; later jobs may start now only if they
do not delay it.

For a head of ``n`` GPUs, each feasible cluster *c* gives a shadow time: walk its running jobs by estimated
end ``e_1 <= e_2 <= ...`` accumulating GPUs until ``avail(c) + sum_{i<=k} gpus_i >= n``; then
``shadow(c) = e_k`` and ``extra(c) = avail(c) + sum_{i<=k} gpus_i - n``. The reservation takes the cluster
with the earliest shadow. A later job of ``m`` GPUs and remaining estimate ``r`` may start now on ``c`` when::

    now + r <= shadow(c)         (it ends before the head needs the GPUs), or
    m <= long_room(c)            (it leaves the head's GPUs alone); long_room(c) then shrinks by m.

A head that must run on one node or on whole nodes (every job but a spread one, see :mod:`alloc`) needs more than
a GPU count: the walk replays the releases on a scratch copy of the cluster's per-node free counts
(:class:`~stargate.engine.alloc.NodeReplay`) and stops at the first end after which the GPU count suffices AND nodes
of the head's shape are free (O(1) per node a release touches for the default shape); for a packed head ``extra`` is
also capped by a lower bound of the node capacity then (``W * gpn + r - n``, or ``W * gpn - n``). ``long_room``
stays a GPU count: a long job within it may still split a node the head counted on; the head's shadow is then
computed again (later) at the next full scan, so the approximation delays the head at most by that job, never blocks
it for good. Several reservations on one cluster keep the earliest shadow
and the smallest extra (conservative). Power caps are not projected into the future: the reservation is on GPUs only.

:class:`Backfill` holds a cycle's :class:`Reservations` and caches each blocked job's shadow per cluster while that
cluster's running jobs and availability stand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from stargate.engine.alloc import PACKED, SPREAD, NodeAllocator, NodeReplay, Spans
from stargate.engine.index import BoolArray, FloatArray, IntArray
from stargate.engine.occupancy import Occupancy
from stargate.engine.policies import Policy

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


def shadow_on(
    running: list[tuple[float, int, int]],
    have: float,
    need: int,
    per: int = SPREAD,
    alloc: NodeAllocator | None = None,
    spans: Mapping[int, Spans] | None = None,
) -> tuple[float, float]:
    """Shadow time and extra GPUs on one cluster given its running ``(est_end, job, gpus)`` in end order, for a job
    of shape ``per`` (``alloc``: the cluster's allocator; ``spans``: job → its GPUs by node; both needed unless
    spread)."""
    if per == SPREAD or alloc is None or spans is None:
        if have >= need:
            return -math.inf, have - need
        for end, _, gpus in running:
            have += gpus
            if have >= need:
                return end, have - need
        return math.inf, 0.0
    if have >= need and alloc.fits(need, per):
        return -math.inf, min(have, alloc.shape) - need if per == PACKED else have - need
    if per == PACKED:
        return _packed_shadow(running, have, need, alloc, spans)
    replay = NodeReplay(alloc)
    for end, j, gpus in running:
        have += gpus
        replay.give_spans(spans[j])
        if have >= need and replay.fits(need, per):
            return end, have - need
    return math.inf, 0.0


def _packed_shadow(
    running: list[tuple[float, int, int]], have: float, need: int, alloc: NodeAllocator, spans: Mapping[int, Spans]
) -> tuple[float, float]:
    """:func:`shadow_on` for a packed job, in O(1) per node a release touches: with ``need = w * gpn + r``, it fits
    when more than ``w`` nodes are whole, or exactly ``w`` and some partly free node holds ``r`` (``P`` counts those;
    releases only add GPUs, so each count only grows but for a node that becomes whole). ``extra`` is capped by a
    lower bound of the node capacity left (``W * gpn + r`` when a partly free node holds ``r``)."""
    gpn, count, node_free = alloc.gpn, alloc.count, alloc.node_free
    w, r = divmod(need, gpn)
    whole = alloc.whole()
    holding = sum(count[r:gpn]) if r else 0
    free: dict[int, int] = {}
    for end, j, gpus in running:
        have += gpus
        for node, k in spans[j]:
            f = free.get(node)
            if f is None:
                f = len(node_free[node])
            free[node] = f + k
            if f + k == gpn:
                whole += 1
                if r and f >= r:
                    holding -= 1
            elif r and f < r <= f + k:
                holding += 1
        if have >= need and (whole > w or (whole == w and (not r or holding))):
            room = whole * gpn + (r if r and holding else 0)
            return end, min(have, room) - need
    return math.inf, 0.0


def earliest_start(
    running: list[Running],
    avail: FloatArray,
    clusters: list[int],
    need: int,
    gen: list[int],
    cache: dict[int, tuple[int, float, float]],
    rank: list[float],
    per: int = SPREAD,
    allocs: list[NodeAllocator] | None = None,
    spans: Mapping[int, Spans] | None = None,
) -> tuple[float, float, int, float]:
    """The earliest ``(shadow, rank, cluster, extra)`` over ``clusters`` for a job of ``need`` GPUs and shape ``per``
    (cluster -1 when none). ``cache`` keeps each cluster's shadow for the job while that cluster's generation
    ``gen[c]`` (bumped on every start and finish there) is unchanged."""
    best: tuple[float, float, int, float] = (math.inf, math.inf, -1, 0.0)
    for c in clusters:
        hit = cache.get(c)
        if hit is None or hit[0] != gen[c]:
            alloc = allocs[c] if allocs is not None else None
            hit = cache[c] = (gen[c], *shadow_on(running[c], avail.item(c), need, per, alloc, spans))
        best = min(best, (hit[1], rank[c], c, hit[2]))
    return best


class Backfill:
    """Reservations for blocked queue heads (at most ``max_reservations`` per scan, one per queue), made on the
    occupancy's running jobs and availability."""

    def __init__(self, policy: Policy, total: IntArray, occupancy: Occupancy) -> None:
        """No reservation yet."""
        self.resv: Reservations | None = None
        """This scan's reservations (None until a blocked job is considered)."""
        self._policy, self._total, self._occ = policy, total, occupancy
        self._shadows: dict[int, dict[int, tuple[int, float, float]]] = {}
        """Blocked job → cluster → (cluster generation, shadow time, extra GPUs)."""
        self._epoch = occupancy.epoch

    def reset(self) -> None:
        """Drop every reservation (a full scan makes them again)."""
        self.resv = None

    def claim(self, queue: int) -> bool:
        """True when ``queue``'s first blocked job of this scan may be given a reservation: the queue's turn is then
        taken, whether or not one is made."""
        resv = self.resv
        if resv is None:
            resv = self.resv = Reservations(len(self._total))
        if queue in resv.queues or resv.count >= self._policy.max_reservations:
            return False
        resv.queues.add(queue)
        return True

    def reserve(self, j: int, need: int, usable: BoolArray, now: float, waited_s: float) -> None:
        """Reserve the earliest start for blocked job ``j`` of ``need`` GPUs on the ``usable`` cluster where it comes
        soonest, when that is within the backfill window or the job has waited ``reserve_after_s``."""
        occ, pol = self._occ, self._policy
        if occ.epoch != self._epoch:
            self._shadows.clear()
            self._epoch = occ.epoch
        clusters = np.flatnonzero(usable & (self._total >= need)).tolist()
        cache = self._shadows.setdefault(j, {})
        per = occ.shape_of(j)
        best = earliest_start(
            occ.running, occ.avail, clusters, need, occ.gen, cache, occ.scorer.rank_l, per, occ.alloc, occ.spans
        )
        shadow, _, chosen, extra = best
        near = shadow - now <= pol.backfill_window_s
        aged = waited_s >= pol.reserve_after_s
        if chosen >= 0 and now < shadow < math.inf and self.resv is not None and (aged or near):
            self.resv.add(j, chosen, shadow, extra)

    def forget(self, j: int) -> None:
        """Job ``j`` started: drop its cached shadow times."""
        self._shadows.pop(j, None)
