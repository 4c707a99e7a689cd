"""Occupancy of the fleet: who runs where, and what each cluster can give a new job now.

``avail[c]`` is the GPUs cluster *c* can give a new job now: its free GPUs when it is up and online, capped by
its site's power headroom (running GPUs × TDP × PUE ≤ energised power) when the site is power-limited.
``fit[c] = min(avail[c], shape[c])`` is what a packed job (the default shape, see :mod:`alloc`) can get there:
``shape[c]`` is the allocator's node-shaped capacity, so a packed job of ``n`` GPUs fits exactly when
``fit[c] >= n`` (one NumPy comparison, as for ``avail``); both are kept by scalar updates on every start and finish.
Booking a job charges its GPUs, its queue's quota, its site's power draw and the cluster's run list; freeing
undoes each. ``amax`` and ``amax_nb`` are the largest ``avail`` over all and over non-burst clusters, used to
skip jobs that cannot fit anywhere.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import Counter

import numpy as np

from stargate.engine.admission import Admission
from stargate.engine.alloc import NodeAllocator, Spans, node_spans, shape_of
from stargate.engine.index import BoolArray, FleetIndex, FloatArray
from stargate.engine.jobs import RUNNING, JobTable
from stargate.engine.placement import Scorer
from stargate.engine.windows import CapacityWindows


class Occupancy:
    """Per cluster its node allocator, free GPUs, running jobs by estimated end and availability; per site its
    power draw; and the priorities of running preemptible jobs."""

    def __init__(
        self,
        index: FleetIndex,
        jobs: JobTable,
        adm: Admission,
        windows: CapacityWindows,
        *,
        preempting: bool,
        bursting: bool,
    ) -> None:
        """Every GPU free; availability as ``windows`` stand."""
        n = index.n
        self._index, self._jobs, self._adm, self._windows = index, jobs, adm, windows
        self.jobs = jobs
        self._preempting, self._bursting = preempting, bursting
        self.alloc = [NodeAllocator(int(index.total[c]) // g, g) for c, g in enumerate(index.gpus_per_node)]
        self.free: list[int] = [int(x) for x in index.total]
        self.draw_w: list[float] = [0.0] * len(index.sites)
        """Site → facility power drawn by its running GPUs, W."""
        self._site_of: list[int] = index.site_of.tolist()
        self._w: list[float] = index.w_per_gpu.tolist()
        self._w_safe: FloatArray = np.where(index.w_per_gpu > 0, index.w_per_gpu, 1.0)
        self.scorer = Scorer(index.total)
        self.running: list[list[tuple[float, int, int]]] = [[] for _ in range(n)]
        """Cluster → its running jobs as ``(estimated end, job, GPUs)`` in end order."""
        self.run_end: dict[int, float] = {}
        self.spans: dict[int, Spans] = {}
        """Running job → its GPUs by node (what backfill replays)."""
        self._gpn: list[int] = list(index.gpus_per_node)
        self.gen = [0] * n
        """Cluster → bumped on every start and finish there (cached shadow times of older generations are stale)."""
        self.epoch = 0
        """Bumped whenever ``avail`` is recomputed as a whole (every cached shadow time is then stale)."""
        self.victim_prios: Counter[int] = Counter()
        """Priority → running preemptible jobs of that priority (only when the policy preempts)."""
        self.stale = False
        """True when ``avail`` must be recomputed before it is read (a status, capacity or power change)."""
        self.max_dirty = True
        """True when ``amax`` and ``amax_nb`` must be recomputed before they are read."""
        self.shape: FloatArray = np.array([a.shape for a in self.alloc], dtype=np.float64)
        """Cluster → GPUs a packed job could get on its nodes (ignoring status and power)."""
        self.avail: FloatArray = self.compute_avail()
        self.fit: FloatArray = np.minimum(self.avail, self.shape)
        """Cluster → GPUs a packed job can get now: ``min(avail, shape)``."""
        self.scorer.reset(windows.rank, self.avail)
        self.amax = self.amax_nb = 0.0

    def compute_avail(self) -> FloatArray:
        """Free GPUs usable now per cluster, within the site power cap."""
        w, idx = self._windows, self._index
        avail: FloatArray = np.where(w.up & w.online, np.array(self.free, dtype=np.float64), 0.0)
        if w.limited:
            room = (w.cap_w - np.array(self.draw_w))[idx.site_of]
            head = np.where(idx.w_per_gpu > 0, np.floor(np.maximum(room, 0.0) / self._w_safe), np.inf)
            avail = np.minimum(avail, head)
        return avail

    def set_avail(self, avail: FloatArray) -> None:
        """Replace the availability of every cluster."""
        self.avail = avail
        self.fit = np.minimum(avail, self.shape)
        self.epoch += 1
        self.scorer.reset(self._windows.rank, avail)
        self.max_dirty = True

    def refresh(self) -> None:
        """Recompute ``avail`` if it is stale."""
        if self.stale:
            self.set_avail(self.compute_avail())
            self.stale = False

    def refresh_max(self) -> None:
        """Recompute ``amax`` and ``amax_nb``."""
        self.max_dirty = False
        avail = self.avail
        self.amax = float(avail.max()) if avail.size else 0.0
        if self._bursting:
            self.amax_nb = float(np.max(avail, where=self._windows.nb, initial=0.0))
        else:
            self.amax_nb = self.amax

    def min_victim_prio(self) -> float:
        """The lowest priority of a running preemptible job (inf when there is none)."""
        vp = self.victim_prios
        return min(vp) if vp else math.inf

    def occupy(self, j: int, c: int, ids: tuple[int, ...], now: float) -> None:
        """Book GPUs ``ids`` of cluster ``c`` (already taken from its allocator) for job ``j`` from ``now``."""
        t = self._jobs
        g = len(ids)
        t.state[j], t.cluster[j], t.gpu_ids[j], t.started[j] = RUNNING, c, ids, now
        self.free[c] -= g
        self.gen[c] += 1
        self.draw_w[self._site_of[c]] += g * self._w[c]
        shape = self.shape[c] = self.alloc[c].shape
        self._adm.charge(t.queue[j], self._index.model_of[c], g)
        end = now + t.remaining(j)
        self.run_end[j] = end
        self.spans[j] = node_spans(ids, self._gpn[c])
        insort(self.running[c], (end, j, g))
        if self._preempting and t.preemptible[j]:
            self.victim_prios[t.prio[j]] += 1
        w = self._windows
        if w.limited:
            self.set_avail(self.compute_avail())
            self.refresh_max()
            return
        before = self.avail.item(c)
        if before > 0:
            self.avail[c] = before - g
            self.fit[c] = min(before - g, shape)
            self.scorer.update(c, before - g)
            if before >= self.amax_nb or w.payg.item(c):
                self.refresh_max()
        else:
            self.fit[c] = min(before, shape)

    def release(self, j: int) -> None:
        """Free job ``j``'s GPUs, quota, power and bookkeeping."""
        t = self._jobs
        c, ids = t.cluster[j], t.gpu_ids[j]
        g = len(ids)
        alloc = self.alloc[c]
        alloc.release(ids)
        shape = self.shape[c] = alloc.shape
        self.free[c] += g
        self.gen[c] += 1
        self._adm.charge(t.queue[j], self._index.model_of[c], -g)
        run = self.running[c]
        del run[bisect_left(run, (self.run_end.pop(j), j, g))]
        del self.spans[j]
        if self._preempting and t.preemptible[j]:
            vp = self.victim_prios
            vp[t.prio[j]] -= 1
            if not vp[t.prio[j]]:
                del vp[t.prio[j]]
        self.draw_w[self._site_of[c]] -= g * self._w[c]
        w = self._windows
        if w.limited or not (w.up.item(c) and w.online.item(c)):
            self.stale = True
        else:
            after = self.avail.item(c) + g
            self.avail[c] = after
            self.fit[c] = min(after, shape)
            self.scorer.update(c, after)
            self.max_dirty = True
        t.cluster[j], t.gpu_ids[j] = -1, ()

    def shape_of(self, j: int) -> int:
        """Job ``j``'s shape code (see :func:`stargate.engine.alloc.shape_of`)."""
        req = self._jobs.req[j]
        return shape_of(req.gpus, req.nodes, req.spread)

    def nodes_fit(self, g: int, per: int) -> BoolArray:
        """Cluster → ``g`` GPUs as ``g // per`` nodes of ``per`` GPUs each would fit its nodes now (a Python loop over
        clusters: only jobs asking for a node count use it)."""
        return np.fromiter((a.fits(g, per) for a in self.alloc), dtype=bool, count=len(self.alloc))

    def free_gpus(self) -> dict[str, int]:
        """Free GPUs per cluster id (GPUs), whatever the cluster's status."""
        return dict(zip(self._index.cluster_ids, self.free, strict=True))

    def power_draw_w(self) -> dict[str, float]:
        """Facility power drawn by running GPUs per site (GPUs × TDP × PUE), W."""
        return {s: float(self.draw_w[i]) for i, s in enumerate(self._index.sites)}
