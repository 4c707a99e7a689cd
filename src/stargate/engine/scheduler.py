"""The scheduler: pending queues and running jobs in memory; :meth:`Scheduler.cycle` decides and applies.

One cycle at time *t*:

1. apply capacity changes due by *t* (clusters coming online or going offline, contracts starting or ending,
   buildings energised): offline clusters' jobs are requeued with their checkpointed progress; then reprice
   commitment clusters when due (spend reached a commitment, or an hour passed: see :mod:`spend`);
2. if nothing changed since the last cycle, stop (arrivals alone rescan only their own queues);
3. merge the queues' pending jobs in policy order, looking at most ``scan_depth`` jobs per queue, and for
   each: try to place it (:mod:`placement`), else try to preempt lower-priority work for it (unless its
   ``may_preempt`` is false), else give it a reservation if it is its queue's first blocked job
   (:mod:`backfill`); under strict FIFO a blocked head closes its queue;
4. jobs whose burst wait has run out are tried with pay-per-use capacity too.

Short-circuits keep a cycle cheap: no scan when no GPU is free anywhere (and nothing can be preempted), a
job needing more GPUs than any cluster has free is skipped without NumPy, and a job is skipped when one of
its queue and class already failed this cycle with no more GPUs and no later estimated end.

The state lives in collaborators, each holding one part: the job table (:mod:`jobs`), quota usage
(:mod:`admission`), placement classes (:mod:`classes`), capacity over time (:mod:`windows`), who runs where and
what is free (:mod:`occupancy`), the pending queues (:mod:`pending`), burst deadlines (:mod:`bursting`) and
reservations (:mod:`backfill`); why pending jobs wait is recorded where a start fails (:mod:`waits`). The scheduler
orchestrates them; its hot loop binds what it reads to locals.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from stargate.engine.admission import Admission
from stargate.engine.alloc import PACKED, SPREAD
from stargate.engine.backfill import Backfill
from stargate.engine.bursting import Bursts
from stargate.engine.classes import Classes
from stargate.engine.estimates import Completion, RunHistory
from stargate.engine.index import BoolArray, FleetIndex
from stargate.engine.interruptions import outage_count, over_limit
from stargate.engine.jobs import DONE, PENDING, RUNNING, JobTable
from stargate.engine.occupancy import Occupancy
from stargate.engine.pending import Entry, PendingQueues
from stargate.engine.policies import LasPolicy, Policy
from stargate.engine.preemption import VictimView, pick_victims
from stargate.engine.service import Service
from stargate.engine.spend import Pricing, SpendMeter
from stargate.engine.types import CycleResult, JobRequest, Preemption, Reason, Rejection, Start
from stargate.engine.views import SchedulerViews
from stargate.engine.waits import HELD, NOFIT, QUOTA, Memo, Waits
from stargate.engine.windows import CapacityWindows

OWN, LEARNED, DEFAULT = 0, 1, 2
"""Where a job's estimate came from (see ``Scheduler.estimate_source``)."""


class Scheduler(SchedulerViews):
    """Admission, placement, preemption and backfill over one :class:`FleetIndex` under one policy."""

    def __init__(
        self, index: FleetIndex, policy: Policy, history: RunHistory | None = None, spend: SpendMeter | None = None
    ) -> None:
        """An empty scheduler: every GPU free, nothing pending. ``history``: learned run times (fed by completed
        jobs, see :meth:`finish`; a job with no estimate gets the learned one); None: no learning. ``spend``: spend
        to date per contract (fed by the driver), which prices commitments at the margin; None: nothing spent."""
        self.index, self.policy, self.history = index, policy, history
        self._bursting = policy.bursting
        self.jobs = JobTable()
        self.adm = Admission(index)
        self.classes = Classes(index, self.adm)
        self.windows = CapacityWindows(index)
        self.pricing = Pricing(index, spend) if spend is not None and Pricing.needed(index) else None
        """Recomputes commitment clusters' rank as spend goes (see :mod:`spend`); None: nothing to reprice."""
        self.classes.set_payg(self.windows.payg)
        self.occupancy = Occupancy(
            index, self.jobs, self.adm, self.windows, preempting=policy.preemption, bursting=policy.bursting
        )
        self.service = (
            Service(policy, self.jobs, history.service_samples if history is not None else None)
            if isinstance(policy, LasPolicy)
            else None
        )
        """Attained-service levels (the ``las`` and ``gittins`` policies only; see :mod:`service`)."""
        self.waits = Waits(index, self.jobs, self.adm, self.classes, self.windows, self.occupancy, policy.bursting)
        self.pending = PendingQueues(len(index.queues), policy, self.jobs, self.service, self.waits)
        self.bursts = Bursts()
        self.backfill = Backfill(policy, index.total, self.occupancy)
        self._rejections: list[Rejection] = []
        """Rejections decided at submission, returned by the next cycle."""
        self._requeue: list[int] = []
        """Jobs preempted during this cycle's scan, queued again when it ends."""
        self._queue_blocked = False
        """Set by a start attempt whose 1-GPU job failed its quota: the scan looks no further into that queue."""
        self.estimate_source = OWN
        """Where the last job added got its estimate: OWN (its own), LEARNED (the history) or DEFAULT (the policy)."""

    # -- the contract API ---------------------------------------------------------------------------------
    def submit(self, job: JobRequest) -> None:
        """Queue ``job``; a job that can never run is rejected at the next cycle. Raises on a duplicate id."""
        if job.id in self.jobs.ix:
            raise ValueError(f"job '{job.id}' was already submitted")
        q = self.index.queue_ix.get(job.queue, -1)
        cls, reason = self.classes.classify(job, q)
        j = self._add(job, q, cls)
        if reason is not None:
            self.jobs.state[j] = DONE
            self._rejections.append(Rejection(job.id, reason))
            return
        if self._bursting:
            t = self.jobs
            t.burst_at[j] = job.submit_s + self.policy.burst_wait_s(job.gpus, t.est[j])
            self.bursts.wait(j, t.burst_at[j])
        self.pending.push(j)
        if self.service is not None:
            self.service.placed(j)
            if self.service.level(j) > 0:
                self.service.unstamped.append(j)  # restored below the top level: its wait counts from the next cycle

    def restore_running(self, job: JobRequest, cluster_id: str, gpu_ids: tuple[int, ...], started_s: float) -> None:
        """Rebuild a running job after a restart: it holds ``gpu_ids`` of ``cluster_id`` since ``started_s`` (whatever
        their shape: a placement made under an older rule, e.g. spread over partly free nodes, stays valid)."""
        q = self.index.queue_ix.get(job.queue, -1)
        cls, reason = self.classes.classify(job, q)
        if reason is not None:
            raise ValueError(f"job '{job.id}' cannot run here: {reason}")
        if len(gpu_ids) != job.gpus:
            raise ValueError(f"job '{job.id}' needs {job.gpus} GPUs, got {len(gpu_ids)} GPU ids")
        c = self.index.cluster_ix[cluster_id]
        self.occupancy.alloc[c].take(gpu_ids)  # first: a refusal leaves nothing behind (the job is not added)
        j = self._add(job, q, cls)
        self.occupancy.occupy(j, c, gpu_ids, started_s)
        if self.service is not None:
            self.service.started(j)

    def finish(self, job_id: str, now: float | None = None, completed: bool = False) -> None:
        """The job ended (any reason): free its GPUs or drop it from its queue. A running job that ``completed`` at
        ``now`` feeds the run history with its run time (checkpointed progress plus this run)."""
        j = self.jobs.ix[job_id]
        state = self.jobs.state[j]
        if completed and now is not None and state == RUNNING and self.history is not None:
            self._learn(j, now)
        svc = self.service
        if svc is not None and state == RUNNING and now is not None:
            t = self.jobs
            if completed:
                svc.completed(t.req[j].queue, (t.progress[j] + now - t.started[j]) * t.gpus[j])
            svc.ended(j, now)
        if state == RUNNING:
            self._release(j)
        elif state == PENDING:
            self.pending.remove(j)
        self.jobs.state[j] = DONE
        self.bursts.ready.pop(j, None)

    def cancel(self, job_id: str) -> None:
        """Remove a pending or running job."""
        self.finish(job_id)

    def set_cluster_status(self, cluster_id: str, status: str, now: float) -> list[Preemption]:
        """Mark a cluster up, degraded or down; going down requeues its jobs with checkpointed progress."""
        if status not in ("up", "degraded", "down"):
            raise ValueError(f"unknown cluster status '{status}'; expected up, degraded or down")
        c = self.index.cluster_ix[cluster_id]
        self.windows.up[c] = status != "down"
        self.pending.dirty_all = self.occupancy.stale = self.waits.all_stale = True
        if status != "down":
            return []
        return self._evict(c, now, Reason.CLUSTER_DOWN)

    def cycle(self, now: float) -> CycleResult:
        """Decide at ``now``: starts, preemptions and rejections, applied to this scheduler's state."""
        res = CycleResult(now)
        windows, pending, bursts, waits = self.windows, self.pending, self.bursts, self.waits
        waits.begin(now)
        changed = windows.due(now)
        if changed:
            self._capacity_changed(now, res)
        if self.pricing is not None and (changed or self.pricing.due(now)):
            self.pricing.apply(now, windows.rank)
            self.occupancy.stale = True  # the scores follow the new rank at the next placement
        svc = self.service
        if svc is not None and svc.advance(now, pending.repush):
            pending.dirty_all = True  # a job was demoted while one of a higher level waits: it may preempt now
        if self._rejections:
            res.rejections, self._rejections = self._rejections, []
        if bursts.heap:
            for j in bursts.due(now, self.jobs.state):
                pending.dirty.add(pending.subq[j])
        if pending.dirty_all or pending.dirty:
            self._schedule(now, res)
        if waits.fresh or waits.all_stale:
            waits.end(pending.rows() if waits.all_stale else [])
        if bursts.heap or windows.changes_left() or (svc is not None and (svc.promotions or svc.demotions)):
            at = min(bursts.next_due(now, self.jobs.state), windows.next_change(now))
            if svc is not None:
                at = min(at, svc.next_wakeup())
            res.next_wakeup_s = at if now < at < math.inf else None
        return res

    def has_work(self, now: float) -> bool:
        """False when a cycle at ``now`` would decide nothing (a driver may skip it; calling it is still fine)."""
        pending, heap = self.pending, self.bursts.heap
        return (
            self.windows.due(now)
            or (self.pricing is not None and self.pricing.due(now))
            or bool(self._rejections)
            or bool(heap and heap[0][0] <= now)
            or (self.service is not None and self.service.due(now))
            or ((pending.dirty_all or bool(pending.dirty)) and (pending.n > 0 or bool(self.bursts.ready)))
        )

    # -- bookkeeping --------------------------------------------------------------------------------------
    def _add(self, job: JobRequest, q: int, cls: int) -> int:
        """A new row for ``job`` (pending) with its estimate (its own, else the learned one, else the policy's
        default) and checkpoint interval, in its sub-queue."""
        est, self.estimate_source = job.duration_s, OWN
        if est is None and self.history is not None:
            est, self.estimate_source = self.history.estimate(job.queue, job.gpus, job.user, job.name), LEARNED
        if est is None:
            est, self.estimate_source = self.policy.default_estimate_s, DEFAULT
        ckpt = job.checkpoint_interval_s or self.policy.default_checkpoint_interval_s
        j = self.jobs.add(job, q, est, ckpt, cls)
        self.pending.assign(j, q, job.gpus)
        return j

    def _learn(self, j: int, now: float) -> None:
        """Feed the run history with running job ``j``, completed at ``now``."""
        t = self.jobs
        req = t.req[j]
        run_s = t.progress[j] + (now - t.started[j])
        assert self.history is not None
        self.history.record(Completion(now, req.id, req.queue, req.gpus, run_s, req.user, req.name))

    def _release(self, j: int) -> None:
        """Free running job ``j``'s GPUs; every queue is scanned, and every pending job's wait judged, again at the
        next cycle (freed GPUs and quota change why they wait)."""
        self.occupancy.release(j)
        self.pending.dirty_all = self.waits.all_stale = True

    def _capacity_changed(self, now: float, res: CycleResult) -> None:
        """Step 1 of a cycle (module docstring)."""
        gone = self.windows.advance(now)
        self.classes.set_payg(self.windows.payg)
        for c in gone:
            res.preemptions.extend(self._evict(int(c), now, Reason.CLUSTER_OFFLINE))
        self.pending.dirty_all = self.occupancy.stale = self.waits.all_stale = True

    def _stop(self, j: int, now: float, reason: Reason) -> Preemption:
        """Stop running job ``j``, keep its checkpointed progress, and mark it pending again."""
        t, svc = self.jobs, self.service
        kept = t.kept_progress(j, now, self.policy.restart_cost_s)  # the restart reloads its checkpoint
        ran = svc.ended(j, now) if svc is not None else 0.0
        self._release(j)
        t.outages[j] = outage_count(t.outages[j], t.progress[j], kept, reason is Reason.CLUSTER_DOWN)
        t.progress[j] = kept
        t.state[j] = PENDING
        t.seq[j] = -1
        if self._bursting:
            self.bursts.resume(j, t.burst_at[j], now)
        if svc is not None:
            svc.stopped(j, now, ran)
        return Preemption(t.ids[j], reason, kept, t.outages[j])

    def _evict(self, c: int, now: float, reason: Reason) -> list[Preemption]:
        """Stop every job on cluster ``c`` (by job order) and requeue them, but those its outages stopped too often
        without getting anywhere: they fail (:func:`~stargate.engine.interruptions.over_limit`)."""
        t = self.jobs
        victims = sorted(j for _, j, _ in self.occupancy.running[c])
        out = [self._stop(j, now, reason) for j in victims]
        for j, p in zip(victims, out, strict=True):
            if over_limit(self.policy, p.outage_stops):  # stopped, and leaves the engine: the clock fails it
                t.state[j] = DONE
                self.bursts.ready.pop(j, None)
                self._rejections.append(Rejection(t.ids[j], Reason.OUTAGE_LIMIT))
            else:
                self.pending.push(j)
        return out

    # -- the cycle ----------------------------------------------------------------------------------------
    def _schedule(self, now: float, res: CycleResult) -> None:
        """Steps 2–4 of a cycle (module docstring)."""
        pol, pending, occ, svc = self.policy, self.pending, self.occupancy, self.service
        if pending.dirty_all:
            self.backfill.reset()
            if svc is not None:
                svc.blocked = math.inf  # every queue is scanned: the waiting jobs' best level is found again
        scan = pending.to_scan()
        if not scan and not self.bursts.ready:
            return
        occ.refresh()
        if occ.max_dirty:
            occ.refresh_max()
        self._requeue = []
        memo: Memo = {}
        carry: set[int] = set()
        if occ.amax_nb >= 1 or (pol.preemption and occ.victim_prios):
            carry = self._scan(scan, now, res, memo)
        self._start_ready(now, res, memo)
        if svc is not None:
            t, ix = self.jobs, self.jobs.ix
            for s in res.starts:
                j = ix[s.job_id]
                if t.state[j] == RUNNING and t.started[j] == now:
                    svc.started(j)
        for v in self._requeue:
            pending.push(v)
        # Queues cut off by scan_depth stay dirty, unless the cycle preempted: then the next event decides, so
        # repeated cycles at one instant always start jobs without stopping any and so come to an end.
        pending.dirty = set() if res.preemptions else carry & pending.nonempty
        res.more = bool(pending.dirty)

    def _scan(self, scan: list[int], now: float, res: CycleResult, memo: Memo) -> set[int]:
        """Merge the queues' first pending jobs in policy order and try each (see the module docstring).

        Returns the queues whose scan stopped at ``scan_depth`` after starting jobs: they may hold more startable
        jobs, so they stay dirty and the next cycle (at the same instant, if the driver asks) looks again.
        """
        pol, t, occ, backfill = self.policy, self.jobs, self.occupancy, self.backfill
        queues, live_at, buckets = self.pending.queues, self.pending.live_at, self.pending.buckets
        heap: list[tuple[Entry, int, int]] = []
        for q in scan:
            pos = live_at(q, 0)
            if pos >= 0:
                heap.append((queues[q].head[pos], q, pos))
        heapq.heapify(heap)
        scanned = dict.fromkeys(scan, 0)
        started: set[int] = set()
        fails, may_preempt, svc = 0, t.may_preempt, self.service
        min_victim = self._min_victim()
        no_victims: dict[tuple[int, int, int, bool, int], tuple[int, float]] = {}
        """(class, queue or -1 without quotas, rank, may burst, shape) → (GPUs, estimated end) of a job for which
        preemption failed this cycle: one as big and ending no sooner fails too (quotas, usable clusters and
        reservations are monotone in both)."""
        while heap:
            entry, q, pos = heapq.heappop(heap)
            j = entry[3]
            rank = t.prio[j] if svc is None else svc.rank(j)
            if occ.amax_nb < 1 and not rank > min_victim:
                if svc is not None:
                    svc.blocked = min(svc.blocked, svc.level(j))
                break  # nothing can start but by preemption, and no job from here on outranks a victim (a job that
                # may not preempt is passed over below, so a lower one behind it that may still preempts)
            self._queue_blocked = False
            ok = self._try_start(j, now, res, memo)
            if not ok and rank > min_victim and (may_preempt[j] or svc is not None):
                burst_ok = not self._bursting or t.burst_at[j] <= now
                pkey = (t.cls[j], -1 if self.adm.unlimited[t.queue[j]] else t.queue[j], rank, burst_ok, occ.shape_of(j))
                end = now + t.remaining(j)
                failed = no_victims.get(pkey)
                if failed is None or t.gpus[j] < failed[0] or end < failed[1]:
                    ok = self._try_preempt(j, now, res)
                    memo.clear()
                    if ok:
                        no_victims.clear()
                    else:
                        no_victims[pkey] = (t.gpus[j], end)
            if ok:
                fails = 0
                started.add(q)
                min_victim = self._min_victim()
            else:
                fails += 1
                if svc is not None:
                    svc.blocked = min(svc.blocked, svc.level(j))
                if pol.strict_fifo:
                    continue
                if pol.backfill and backfill.claim(q // buckets):
                    backfill.reserve(j, t.gpus[j], self._usable(j, now), now, now - t.req[j].submit_s)
            scanned[q] += 1
            if scanned[q] < pol.scan_depth and fails < pol.scan_budget and not self._queue_blocked:
                nxt = live_at(q, pos + 1)
                if nxt >= 0:
                    heapq.heappush(heap, (queues[q].head[nxt], q, nxt))
        return {q for q in started if scanned[q] >= pol.scan_depth}

    def _min_victim(self) -> float:
        """The lowest priority of a running preemptible job (its rank under an attained-service policy; inf: none)."""
        low = self.occupancy.min_victim_prio() if self.policy.preemption else math.inf
        return low if self.service is None else self.service.min_rank(low)

    def _start_ready(self, now: float, res: CycleResult, memo: Memo) -> None:
        """Jobs whose burst wait ran out, wherever they are in their queue."""
        ready = self.bursts.ready
        if not ready:
            return
        t, occ = self.jobs, self.occupancy
        for j in list(ready):
            if t.state[j] != PENDING:
                del ready[j]
            elif occ.amax >= 1:
                self._try_start(j, now, res, memo)

    def _try_start(self, j: int, now: float, res: CycleResult, memo: Memo) -> bool:
        """Place job ``j`` now if some cluster can take it without breaking a reservation."""
        t, occ = self.jobs, self.occupancy
        g, q, cls = t.gpus[j], t.queue[j], t.cls[j]
        burst_ok = not self._bursting or t.burst_at[j] <= now
        if g > (occ.amax if burst_ok else occ.amax_nb):
            self.waits.judge(j, NOFIT)
            return False
        end = now + max(t.est[j] - t.progress[j], 1.0)
        req = t.req[j]
        per = SPREAD if req.spread else PACKED if req.nodes is None else g // req.nodes
        key = (cls, -1, burst_ok, per)
        failed = memo.get(key)
        if failed is not None and g >= failed[0] and end >= failed[1]:
            self.waits.judge(j, failed[2])
            return False
        qkey = (cls, q, burst_ok, per)
        failed = memo.get(qkey)
        if failed is not None and g >= failed[0] and end >= failed[1]:
            self.waits.judge(j, failed[2])
            return False
        classes = self.classes
        mask = base = classes.mask[cls] if burst_ok else classes.mask_nb[cls]
        all_models = classes.models[cls]
        models = self.adm.allowed(q, all_models, g)
        if len(models) < len(all_models):
            if not models:
                memo[qkey] = (g, -math.inf, QUOTA)  # quota: any job of this queue and class as big fails too
                self._queue_blocked = g == 1
                self.waits.judge(j, QUOTA)
                return False
            mask = mask & np.logical_or.reduce([classes.model_mask[m] for m in models])
        if per == PACKED:
            feasible = occ.fit >= g  # one node, or whole nodes plus one (see alloc), within avail
        elif per == SPREAD:
            feasible = occ.avail >= g
        else:
            feasible = (occ.avail >= g) & occ.nodes_fit(g, per)
        if not classes.all[cls] or mask is not classes.mask[cls]:
            feasible &= mask
        resv = self.backfill.resv
        held = feasible  # before a reservation bars any cluster
        if resv is not None and end > resv.min_shadow:
            feasible = feasible & ((end <= resv.shadow) | (g <= resv.long_room))
        c = occ.scorer.choose(feasible, g, self.policy.best_fit)
        if c < 0:
            kind = HELD if held is not feasible and held.any() else NOFIT
            memo[key if mask is base else qkey] = (g, end, kind)
            self.waits.judge(j, kind)
            return False
        ids = occ.alloc[c].allocate(g, per)
        occ.occupy(j, c, ids, now)
        self.backfill.forget(j)
        if resv is not None:
            resv.used(c, end, g)
        self.bursts.ready.pop(j, None)
        self.pending.remove(j)
        w = self.windows
        res.starts.append(Start(t.ids[j], self.index.cluster_ids[c], ids, w.charged[c], w.burnt[c]))
        return True

    # -- preemption ---------------------------------------------------------------------------------------
    def _usable(self, j: int, now: float) -> BoolArray:
        """Clusters up, online and acceptable to job ``j`` (pay-per-use ones only once its burst wait is over)."""
        t, w = self.jobs, self.windows
        burst_ok = not self._bursting or t.burst_at[j] <= now
        masks = self.classes.mask if burst_ok else self.classes.mask_nb
        return masks[t.cls[j]] & w.up & w.online

    def _try_preempt(self, j: int, now: float, res: CycleResult) -> bool:
        """Free room for job ``j`` by stopping lower-priority preemptible jobs on one cluster, then start it."""
        t, occ, svc = self.jobs, self.occupancy, self.service
        if not t.may_preempt[j] and svc is None:
            return False
        mask = self._usable(j, now)
        resv = self.backfill.resv
        end = now + max(t.est[j] - t.progress[j], 1.0)
        if resv is not None and end > resv.min_shadow:  # where a reservation would bar the start, stop nobody
            mask &= (end <= resv.shadow) | (t.gpus[j] <= resv.long_room)
        view = VictimView(
            total=self.index.total,
            avail=occ.avail,
            rank=self.windows.rank,
            running=occ.running,
            priority=t.prio if self.service is None else t.rank,
            preemptible=t.preemptible,
            started=t.started,
            gpus=t.gpus,
            fits=lambda q, c, g: self.adm.fits(q, self.index.model_of[c], g),  # q's quota admits g more GPUs on c
            allocs=occ.alloc,
            gpu_ids=t.gpu_ids,
        )
        per = occ.shape_of(j)
        rank = t.prio[j] if svc is None else svc.rank(j)
        # A class that may not preempt still takes turns by level within itself: its victims are of its own class.
        floor = -math.inf if t.may_preempt[j] else t.prio[j] * svc.levels - svc.levels  # type: ignore[union-attr]
        choice = pick_victims(view, t.queue[j], t.gpus[j], rank, np.flatnonzero(mask), per, floor)
        if choice is None:
            return False
        for v in choice:
            res.preemptions.append(self._stop(v, now, Reason.PRIORITY))
            self._requeue.append(v)
        self.waits.memo.clear()  # GPUs were freed: what was judged of the state before may not hold
        occ.refresh()
        occ.refresh_max()
        return self._try_start(j, now, res, {})
