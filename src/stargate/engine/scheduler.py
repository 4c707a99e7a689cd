"""The scheduler: pending queues and running jobs in memory; :meth:`Scheduler.cycle` decides and applies.

One cycle at time *t*:

1. apply capacity changes due by *t* (clusters coming online or going offline, contracts starting or ending,
   buildings energised): offline clusters' jobs are requeued with their checkpointed progress;
2. if nothing changed since the last cycle, stop (arrivals alone rescan only their own queues);
3. merge the queues' pending jobs in policy order, looking at most ``scan_depth`` jobs per queue, and for
   each: try to place it (:mod:`placement`), else try to preempt lower-priority work for it (unless its
   ``may_preempt`` is false), else give it a reservation if it is its queue's first blocked job
   (:mod:`backfill`); under strict FIFO a blocked head closes its queue;
4. jobs whose burst wait has run out are tried with pay-per-use capacity too.

Short-circuits keep a cycle cheap: no scan when no GPU is free anywhere (and nothing can be preempted), a
job needing more GPUs than any cluster has free is skipped without NumPy, and a job is skipped when one of
its queue and class already failed this cycle with no more GPUs and no later estimated end.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections import Counter

import numpy as np

from stargate.engine.admission import Admission
from stargate.engine.alloc import NodeAllocator
from stargate.engine.backfill import Reservations, earliest_start
from stargate.engine.capacity import CapacityBook
from stargate.engine.classes import Classes
from stargate.engine.index import TIER_WEIGHT, BoolArray, FleetIndex, FloatArray
from stargate.engine.jobs import DONE, PENDING, RUNNING, JobTable
from stargate.engine.pending import SIZE_BUCKETS, Entry, PendingQueue, size_bucket
from stargate.engine.placement import Scorer
from stargate.engine.policies import Policy
from stargate.engine.preemption import VictimView, pick_victims
from stargate.engine.types import CycleResult, JobRequest, Preemption, Reason, Rejection, Start
from stargate.engine.views import StateViews


class Scheduler(CapacityBook, StateViews):
    """Admission, placement, preemption and backfill over one :class:`FleetIndex` under one policy."""

    def __init__(self, index: FleetIndex, policy: Policy) -> None:
        """An empty scheduler: every GPU free, nothing pending."""
        self.index, self.policy = index, policy
        self._bursting = policy.bursting
        self._preempting = policy.preemption
        self.jobs = JobTable()
        self.adm = Admission(index)
        n = index.n
        self.alloc = [NodeAllocator(int(index.total[c]) // g, g) for c, g in enumerate(index.gpus_per_node)]
        self.free: list[int] = [int(x) for x in index.total]
        self._site_of: list[int] = index.site_of.tolist()
        self._w: list[float] = index.w_per_gpu.tolist()
        self.up: BoolArray = ~index.initially_down
        self.online: BoolArray = np.ones(n, dtype=bool)
        self.draw_w: list[float] = [0.0] * len(index.sites)
        self.scorer = Scorer(index.total)
        self.w_safe: FloatArray = np.where(index.w_per_gpu > 0, index.w_per_gpu, 1.0)
        self.running: list[list[tuple[float, int, int]]] = [[] for _ in range(n)]
        self.run_end: dict[int, float] = {}
        self._buckets = 1 if policy.strict_fifo else SIZE_BUCKETS
        self.queues = [PendingQueue(2 * policy.scan_depth) for _ in range(len(index.queues) * self._buckets)]
        """Pending jobs per queue and size bucket (one bucket under strict FIFO); see :func:`size_bucket`."""
        self._subq: list[int] = []
        self._nonempty: set[int] = set()
        """Sub-queues with at least one pending job."""
        self._gen = [0] * index.n
        """Per cluster, bumped on every start and finish there: cached shadow times of older generations are stale."""
        self._shadows: dict[int, dict[int, tuple[int, float, float]]] = {}
        """Blocked job → cluster → (generation, shadow time, extra GPUs)."""
        self.victim_prios: Counter[int] = Counter()
        self.burst_heap: list[tuple[float, int, int]] = []
        self.ready: dict[int, None] = {}
        self.resv: Reservations | None = None
        self._seq = 0
        self.n_pending = 0
        self._rejections: list[Rejection] = []
        self._dirty_all = True
        self._queue_blocked = False
        self._dirty_queues: set[int] = set()
        self._ptr = 0
        self._first = True
        self.classes = Classes(index, self.adm)
        self._set_capacity(-math.inf)
        self._set_avail(self._compute_avail())
        self._stale = False
        self.amax = self.amax_nb = 0.0

    # -- the contract API ---------------------------------------------------------------------------------
    def submit(self, job: JobRequest) -> None:
        """Queue ``job``; a job that can never run is rejected at the next cycle. Raises on a duplicate id."""
        if job.id in self.jobs.ix:
            raise ValueError(f"job '{job.id}' was already submitted")
        q = self.index.queue_ix.get(job.queue, -1)
        cls, reason = self.classes.classify(job, q)
        est = job.duration_s if job.duration_s is not None else self.policy.default_estimate_s
        ckpt = job.checkpoint_interval_s or self.policy.default_checkpoint_interval_s
        j = self.jobs.add(job, q, est, ckpt, cls)
        self._subq.append(q * self._buckets + (size_bucket(job.gpus) if self._buckets > 1 else 0))
        if reason is not None:
            self.jobs.state[j] = DONE
            self._rejections.append(Rejection(job.id, reason))
            return
        if self.policy.bursting:
            self.jobs.burst_at[j] = job.submit_s + self.policy.burst_wait_s(job.gpus, est)
            heapq.heappush(self.burst_heap, (self.jobs.burst_at[j], j, 0))
        self._enqueue(j)

    def restore_running(self, job: JobRequest, cluster_id: str, gpu_ids: tuple[int, ...], started_s: float) -> None:
        """Rebuild a running job after a restart: it holds ``gpu_ids`` of ``cluster_id`` since ``started_s``."""
        q = self.index.queue_ix.get(job.queue, -1)
        cls, reason = self.classes.classify(job, q)
        if reason is not None:
            raise ValueError(f"job '{job.id}' cannot run here: {reason}")
        if len(gpu_ids) != job.gpus:
            raise ValueError(f"job '{job.id}' needs {job.gpus} GPUs, got {len(gpu_ids)} GPU ids")
        c = self.index.cluster_ix[cluster_id]
        est = job.duration_s if job.duration_s is not None else self.policy.default_estimate_s
        ckpt = job.checkpoint_interval_s or self.policy.default_checkpoint_interval_s
        j = self.jobs.add(job, q, est, ckpt, cls)
        self._subq.append(q * self._buckets + (size_bucket(job.gpus) if self._buckets > 1 else 0))
        self.alloc[c].take(gpu_ids)
        self._occupy(j, c, gpu_ids, started_s)

    def finish(self, job_id: str) -> None:
        """The job ended (any reason): free its GPUs or drop it from its queue."""
        j = self.jobs.ix[job_id]
        state = self.jobs.state[j]
        if state == RUNNING:
            self._release(j)
        elif state == PENDING:
            self._took(self._subq[j])
            self.n_pending -= 1
        self.jobs.state[j] = DONE
        self.ready.pop(j, None)

    def cancel(self, job_id: str) -> None:
        """Remove a pending or running job."""
        self.finish(job_id)

    def set_cluster_status(self, cluster_id: str, status: str, now: float) -> list[Preemption]:
        """Mark a cluster up, degraded or down; going down requeues its jobs with checkpointed progress."""
        if status not in ("up", "degraded", "down"):
            raise ValueError(f"unknown cluster status '{status}'; expected up, degraded or down")
        c = self.index.cluster_ix[cluster_id]
        self.up[c] = status != "down"
        self._dirty_all = self._stale = True
        if status != "down":
            return []
        return self._evict(c, now, Reason.CLUSTER_DOWN)

    def cycle(self, now: float) -> CycleResult:
        """Decide at ``now``: starts, preemptions and rejections, applied to this scheduler's state."""
        res = CycleResult(now)
        times = self.index.change_times
        if self._first or (self._ptr < len(times) and times[self._ptr] <= now):
            self._first = False
            self._capacity_changed(now, res)
        if self._rejections:
            res.rejections, self._rejections = self._rejections, []
        self._burst_due(now)
        if self._dirty_all or self._dirty_queues:
            self._schedule(now, res)
        if self.burst_heap or self._ptr < len(times):
            res.next_wakeup_s = self._next_wakeup(now)
        return res

    def has_work(self, now: float) -> bool:
        """False when a cycle at ``now`` would decide nothing (a driver may skip it; calling it is still fine)."""
        times, heap = self.index.change_times, self.burst_heap
        return (
            self._first
            or bool(self._rejections)
            or (self._ptr < len(times) and times[self._ptr] <= now)
            or bool(heap and heap[0][0] <= now)
            or ((self._dirty_all or bool(self._dirty_queues)) and (self.n_pending > 0 or bool(self.ready)))
        )

    # -- capacity -----------------------------------------------------------------------------------------
    def _set_capacity(self, now: float) -> None:
        idx = self.index
        self.online = idx.online(now)
        self.cap_w = idx.power_cap_w(now)
        self.limited = bool(np.isfinite(self.cap_w).any())
        self.charged, self.burnt, self.rank = idx.prices(now)
        self.payg: BoolArray = self.rank >= TIER_WEIGHT
        self._nb: BoolArray = ~self.payg
        self.classes.set_payg(self.payg)
        self._ptr = bisect_right(idx.change_times, now)

    def _capacity_changed(self, now: float, res: CycleResult) -> None:
        was_online = self.online
        self._set_capacity(now)
        for c in np.flatnonzero(was_online & ~self.online):
            res.preemptions.extend(self._evict(int(c), now, Reason.CLUSTER_OFFLINE))
        self._dirty_all = self._stale = True

    # -- queues -------------------------------------------------------------------------------------------
    def _enqueue(self, j: int) -> None:
        t = self.jobs
        k0, k1 = self.policy.key(t.prio[j], t.req[j].submit_s, t.remaining(j), t.gpus[j])
        self._seq += 1
        t.seq[j] = self._seq
        q = self._subq[j]
        self.queues[q].push((k0, k1, self._seq, j))
        self.queues[q].live += 1
        self._nonempty.add(q)
        self.n_pending += 1
        self._dirty_queues.add(q)

    def _live_at(self, q: int, pos: int) -> int:
        """Position of the first live entry at or after ``pos`` in queue ``q``'s head (-1: none)."""
        pq, t = self.queues[q], self.jobs
        head = pq.head
        while True:
            if pos >= len(head):
                if not pq.tail:
                    return -1
                pq.refill()
            e = head[pos]
            j = e[3]
            if t.state[j] == PENDING and t.seq[j] == e[2]:
                return pos
            del head[pos]

    def _burst_due(self, now: float) -> None:
        heap, t = self.burst_heap, self.jobs
        while heap and heap[0][0] <= now:
            _, j, _ = heapq.heappop(heap)
            if t.state[j] == PENDING:
                self.ready[j] = None
                self._dirty_queues.add(self._subq[j])

    def _next_wakeup(self, now: float) -> float | None:
        heap, state = self.burst_heap, self.jobs.state
        while heap and state[heap[0][1]] != PENDING:
            heapq.heappop(heap)
        times = self.index.change_times
        first = heap[0][0] if heap and heap[0][0] > now else math.inf
        if self._ptr < len(times) and now < times[self._ptr] < first:
            first = times[self._ptr]
        return first if first < math.inf else None

    # -- the cycle ----------------------------------------------------------------------------------------
    def _schedule(self, now: float, res: CycleResult) -> None:
        """Steps 2–4 of a cycle (module docstring)."""
        pol = self.policy
        if self._dirty_all:
            self.resv = None
            scan = sorted(self._nonempty)
        else:
            scan = sorted(self._dirty_queues & self._nonempty)
        self._dirty_all = False
        self._dirty_queues.clear()
        if not scan and not self.ready:
            return
        if self._stale:
            self._set_avail(self._compute_avail())
            self._stale = False
        if self._max_dirty:
            self._refresh_max()
        self._requeue: list[int] = []
        memo: dict[tuple[int, int, bool], tuple[int, float]] = {}
        carry: set[int] = set()
        if self.amax_nb >= 1 or (pol.preemption and self.victim_prios):
            carry = self._scan(scan, now, res, memo)
        self._start_ready(now, res, memo)
        for v in self._requeue:
            self._enqueue(v)
        # Queues cut off by scan_depth stay dirty, unless the cycle preempted: then the next event decides, so
        # repeated cycles at one instant always start jobs without stopping any and so come to an end.
        self._dirty_queues = set() if res.preemptions else carry & self._nonempty
        res.more = bool(self._dirty_queues)

    def _scan(
        self, scan: list[int], now: float, res: CycleResult, memo: dict[tuple[int, int, bool], tuple[int, float]]
    ) -> set[int]:
        """Merge the queues' first pending jobs in policy order and try each (see the module docstring).

        Returns the queues whose scan stopped at ``scan_depth`` after starting jobs: they may hold more startable
        jobs, so they stay dirty and the next cycle (at the same instant, if the driver asks) looks again.
        """
        pol, t = self.policy, self.jobs
        heap: list[tuple[Entry, int, int]] = []
        for q in scan:
            pos = self._live_at(q, 0)
            if pos >= 0:
                heap.append((self.queues[q].head[pos], q, pos))
        heapq.heapify(heap)
        scanned = dict.fromkeys(scan, 0)
        started: set[int] = set()
        fails, preempting, may_preempt = 0, pol.preemption, t.may_preempt
        min_victim = self._min_victim_prio() if preempting else math.inf
        while heap:
            entry, q, pos = heapq.heappop(heap)
            j = entry[3]
            if self.amax_nb < 1 and not (t.prio[j] > min_victim and may_preempt[j]):
                break  # nothing can start but by preemption; burst-ready jobs are tried below
            self._queue_blocked = False
            ok = self._try_start(j, now, res, memo)
            if not ok and t.prio[j] > min_victim and may_preempt[j]:
                ok = self._try_preempt(j, now, res)
                memo.clear()
            if ok:
                fails = 0
                started.add(q)
                min_victim = self._min_victim_prio() if preempting else math.inf
            else:
                fails += 1
                if pol.strict_fifo:
                    continue
                if pol.backfill and (self.resv is None or q // self._buckets not in self.resv.queues):
                    self._maybe_reserve(j, q, now)
            scanned[q] += 1
            if scanned[q] < pol.scan_depth and fails < pol.scan_budget and not self._queue_blocked:
                nxt = self._live_at(q, pos + 1)
                if nxt >= 0:
                    heapq.heappush(heap, (self.queues[q].head[nxt], q, nxt))
        return {q for q in started if scanned[q] >= pol.scan_depth}

    def _took(self, q: int) -> None:
        """One pending job left sub-queue ``q``."""
        pq = self.queues[q]
        pq.live -= 1
        if not pq.live:
            self._nonempty.discard(q)

    def _maybe_reserve(self, j: int, q: int, now: float) -> None:
        """Give queue ``q``'s first blocked job ``j`` a reservation when it has waited long enough."""
        pol, resv = self.policy, self.resv
        if resv is None:
            resv = self.resv = Reservations(self.index.n)
        q //= self._buckets
        if q not in resv.queues and resv.count < pol.max_reservations:
            resv.queues.add(q)
            self._reserve(j, now, now - self.jobs.req[j].submit_s >= pol.reserve_after_s)

    def _start_ready(self, now: float, res: CycleResult, memo: dict[tuple[int, int, bool], tuple[int, float]]) -> None:
        """Jobs whose burst wait ran out, wherever they are in their queue."""
        if not self.ready:
            return
        t = self.jobs
        for j in list(self.ready):
            if t.state[j] != PENDING:
                del self.ready[j]
            elif self.amax >= 1:
                self._try_start(j, now, res, memo)

    def _min_victim_prio(self) -> float:
        vp = self.victim_prios
        return min(vp) if vp else math.inf

    def _try_start(
        self, j: int, now: float, res: CycleResult, memo: dict[tuple[int, int, bool], tuple[int, float]]
    ) -> bool:
        """Place job ``j`` now if some cluster can take it without breaking a reservation."""
        t = self.jobs
        g, q, cls = t.gpus[j], t.queue[j], t.cls[j]
        burst_ok = not self._bursting or t.burst_at[j] <= now
        if g > (self.amax if burst_ok else self.amax_nb):
            return False
        end = self._expected_end(j, now)
        key = (cls, -1, burst_ok)
        failed = memo.get(key)
        if failed is not None and g >= failed[0] and end >= failed[1]:
            return False
        qkey = (cls, q, burst_ok)
        failed = memo.get(qkey)
        if failed is not None and g >= failed[0] and end >= failed[1]:
            return False
        classes = self.classes
        mask = base = classes.mask[cls] if burst_ok else classes.mask_nb[cls]
        all_models = classes.models[cls]
        models = self.adm.allowed(q, all_models, g)
        if len(models) < len(all_models):
            if not models:
                memo[qkey] = (g, -math.inf)  # quota: any job of this queue and class as big fails too
                self._queue_blocked = g == 1
                return False
            mask = mask & np.logical_or.reduce([classes.model_mask[m] for m in models])
        feasible = self.avail >= g
        if not classes.all[cls] or mask is not classes.mask[cls]:
            feasible &= mask
        resv = self.resv
        if resv is not None and end > resv.min_shadow:
            feasible &= (end <= resv.shadow) | (g <= resv.long_room)
        c = self.scorer.choose(feasible, g, self.policy.best_fit)
        if c < 0:
            memo[key if mask is base else qkey] = (g, end)
            return False
        ids = self.alloc[c].allocate(g)
        self._occupy(j, c, ids, now)
        if resv is not None:
            resv.used(c, end, g)
        self.ready.pop(j, None)
        self._took(self._subq[j])
        self.n_pending -= 1
        res.starts.append(Start(t.ids[j], self.index.cluster_ids[c], ids, self.charged[c], self.burnt[c]))
        return True

    def _stop(self, j: int, now: float, reason: Reason) -> Preemption:
        """Stop running job ``j``, keep its checkpointed progress, and mark it pending again."""
        t = self.jobs
        kept = t.kept_progress(j, now)
        self._release(j)
        t.progress[j] = kept
        t.state[j] = PENDING
        t.seq[j] = -1
        if self.policy.bursting and t.burst_at[j] <= now:
            self.ready[j] = None
        elif self.policy.bursting:
            heapq.heappush(self.burst_heap, (t.burst_at[j], j, 0))
        return Preemption(t.ids[j], reason, kept)

    def _evict(self, c: int, now: float, reason: Reason) -> list[Preemption]:
        """Stop every job on cluster ``c`` (by job order) and requeue them."""
        victims = sorted(j for _, j, _ in self.running[c])
        out = [self._stop(j, now, reason) for j in victims]
        for j in victims:
            self._enqueue(j)
        return out

    # -- reservations and preemption ----------------------------------------------------------------------
    def _usable(self, j: int, now: float) -> BoolArray:
        """Clusters up, online and acceptable to job ``j`` (pay-per-use ones only once its burst wait is over)."""
        burst_ok = not self._bursting or self.jobs.burst_at[j] <= now
        classes = self.classes.mask if burst_ok else self.classes.mask_nb
        return classes[self.jobs.cls[j]] & self.up & self.online

    def _expected_end(self, j: int, now: float) -> float:
        """When job ``j`` would end if it started at ``now`` (at least 1 s ahead)."""
        t = self.jobs
        return now + max(t.est[j] - t.progress[j], 1.0)

    def _reserve(self, j: int, now: float, aged: bool) -> None:
        """Reserve the earliest start for blocked job ``j`` on the cluster where it comes soonest, when that is
        within the backfill window or the job has waited ``reserve_after_s`` (``aged``)."""
        t = self.jobs
        g = t.gpus[j]
        mask = self._usable(j, now)
        clusters = np.flatnonzero(mask & (self.index.total >= g)).tolist()
        cache = self._shadows.setdefault(j, {})
        best = earliest_start(self.running, self.avail, clusters, g, self._gen, cache, self.scorer.rank_l)
        shadow, _, chosen, extra = best
        near = shadow - now <= self.policy.backfill_window_s
        if chosen >= 0 and now < shadow < math.inf and self.resv is not None and (aged or near):
            self.resv.add(j, chosen, shadow, extra)

    def _fits(self, q: int, c: int, g: int) -> bool:
        """Queue ``q``'s quota admits ``g`` more GPUs on cluster ``c`` now."""
        return self.adm.fits(q, self.index.model_of[c], g)

    def _try_preempt(self, j: int, now: float, res: CycleResult) -> bool:
        """Free room for job ``j`` by stopping lower-priority preemptible jobs on one cluster, then start it."""
        t = self.jobs
        if not t.may_preempt[j]:
            return False
        mask = self._usable(j, now)
        resv = self.resv
        end = self._expected_end(j, now)
        if resv is not None and end > resv.min_shadow:  # where a reservation would bar the start, stop nobody
            mask &= (end <= resv.shadow) | (t.gpus[j] <= resv.long_room)
        view = VictimView(
            self.index.total, self.avail, self.rank, self.running, t.prio, t.preemptible, t.started, t.gpus, self._fits
        )
        choice = pick_victims(view, t.queue[j], t.gpus[j], t.prio[j], np.flatnonzero(mask))
        if choice is None:
            return False
        for v in choice:
            res.preemptions.append(self._stop(v, now, Reason.PRIORITY))
            self._requeue.append(v)
        if self._stale:
            self._set_avail(self._compute_avail())
            self._stale = False
        self._refresh_max()
        return self._try_start(j, now, res, {})
