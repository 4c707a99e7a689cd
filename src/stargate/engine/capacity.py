"""Capacity bookkeeping of the scheduler: what each cluster can take now, and booking or freeing GPUs.

``avail[c]`` is the GPUs cluster *c* can give a new job now: its free GPUs when it is up and online, capped by
its site's power headroom (running GPUs × TDP × PUE ≤ energised power) when the site is power-limited.
Booking a job charges its GPUs, its queue's quota, its site's power draw and the cluster's run list; freeing
undoes each. ``amax`` and ``amax_nb`` are the largest ``avail`` over all and over non-burst clusters, used to
skip jobs that cannot fit anywhere.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter

import numpy as np

from stargate.engine.admission import Admission
from stargate.engine.alloc import NodeAllocator
from stargate.engine.index import BoolArray, FleetIndex, FloatArray
from stargate.engine.jobs import RUNNING, JobTable
from stargate.engine.placement import Scorer


class CapacityBook:
    """Mixed into :class:`~stargate.engine.scheduler.Scheduler`, which owns and initialises these attributes."""

    index: FleetIndex
    jobs: JobTable
    adm: Admission
    alloc: list[NodeAllocator]
    scorer: Scorer
    free: list[int]
    draw_w: list[float]
    up: BoolArray
    online: BoolArray
    payg: BoolArray
    rank: FloatArray
    cap_w: FloatArray
    w_safe: FloatArray
    avail: FloatArray
    limited: bool
    amax: float
    amax_nb: float
    running: list[list[tuple[float, int, int]]]
    run_end: dict[int, float]
    victim_prios: Counter[int]
    _nb: BoolArray
    _site_of: list[int]
    _w: list[float]
    _gen: list[int]
    _shadows: dict[int, dict[int, tuple[int, float, float]]]
    _bursting: bool
    _preempting: bool
    _stale: bool
    _max_dirty: bool
    _dirty_all: bool

    def _set_avail(self, avail: FloatArray) -> None:
        self.avail = avail
        self._shadows.clear()
        self.scorer.reset(self.rank, avail)
        self._max_dirty = True

    def _compute_avail(self) -> FloatArray:
        """Free GPUs usable now per cluster, within the site power cap."""
        avail: FloatArray = np.where(self.up & self.online, np.array(self.free, dtype=np.float64), 0.0)
        if self.limited:
            room = (self.cap_w - np.array(self.draw_w))[self.index.site_of]
            head = np.where(self.index.w_per_gpu > 0, np.floor(np.maximum(room, 0.0) / self.w_safe), np.inf)
            avail = np.minimum(avail, head)
        return avail

    def _refresh_max(self) -> None:
        self._max_dirty = False
        avail = self.avail
        self.amax = float(avail.max()) if avail.size else 0.0
        if self._bursting:
            self.amax_nb = float(np.max(avail, where=self._nb, initial=0.0))
        else:
            self.amax_nb = self.amax

    def _occupy(self, j: int, c: int, ids: tuple[int, ...], now: float) -> None:
        """Book GPUs ``ids`` of cluster ``c`` for job ``j`` from ``now``."""
        t, idx = self.jobs, self.index
        g = len(ids)
        t.state[j], t.cluster[j], t.gpu_ids[j], t.started[j] = RUNNING, c, ids, now
        self.free[c] -= g
        self._gen[c] += 1
        self._shadows.pop(j, None)
        self.draw_w[self._site_of[c]] += g * self._w[c]
        self.adm.charge(t.queue[j], idx.model_of[c], g)
        end = now + t.remaining(j)
        self.run_end[j] = end
        insort(self.running[c], (end, j, g))
        if self._preempting and t.preemptible[j]:
            self.victim_prios[t.prio[j]] += 1
        if self.limited:
            self._set_avail(self._compute_avail())
            self._refresh_max()
            return
        before = self.avail.item(c)
        if before > 0:
            self.avail[c] = before - g
            self.scorer.update(c, before - g)
            if before >= self.amax_nb or self.payg.item(c):
                self._refresh_max()

    def _release(self, j: int) -> None:
        """Free job ``j``'s GPUs, quota, power and bookkeeping."""
        t, idx = self.jobs, self.index
        c, ids = t.cluster[j], t.gpu_ids[j]
        g = len(ids)
        self.alloc[c].release(ids)
        self.free[c] += g
        self._gen[c] += 1
        self.adm.charge(t.queue[j], idx.model_of[c], -g)
        run = self.running[c]
        del run[bisect_left(run, (self.run_end.pop(j), j, g))]
        if self._preempting and t.preemptible[j]:
            vp = self.victim_prios
            vp[t.prio[j]] -= 1
            if not vp[t.prio[j]]:
                del vp[t.prio[j]]
        self.draw_w[self._site_of[c]] -= g * self._w[c]
        if self.limited or not (self.up.item(c) and self.online.item(c)):
            self._stale = True
        else:
            after = self.avail.item(c) + g
            self.avail[c] = after
            self.scorer.update(c, after)
            self._max_dirty = True
        t.cluster[j], t.gpu_ids[j] = -1, ()
        self._dirty_all = True
