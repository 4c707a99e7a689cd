"""Why a pending job waits: one :class:`~stargate.domain.reasons.WaitReason` per pending job, judged by the cycle.

The scheduler records a job's reason where its start attempt fails (:meth:`Waits.judge`), so a job the cycle
examined costs one memoised lookup more; the jobs it did not reach are judged at the end of the cycle only when new
(pushed since the last cycle: submitted, stopped, requeued) or when the fleet changed (a cluster's status, its online
window, a site's power): then every pending job not examined is judged again. Otherwise a job keeps the reason of the
last cycle that judged it. The rules, in this order (the first that holds wins), for a job of ``g`` GPUs of placement
class ``cls`` (its GPU models after its queue's quotas, providers, regions, executor needs; see :mod:`classes`):

1. ``clusters_down``: of the clusters of its class holding at least ``g`` GPUs, none inside its online window is up,
   and one is down (the down ones are what it waits for; see :class:`~stargate.engine.waiting.DownRule`);
2. ``offline``: every such cluster is outside its online window;
3. ``quota``: its queue's quota and what the cohort lets it borrow admit ``g`` more GPUs on none of its GPU models
   (the admission rule of :mod:`admission`);
4. ``order`` (a reservation): some acceptable cluster has the GPUs, but starting it there would delay the start a
   blocked job ahead of it was given (EASY backfill, see :mod:`backfill`);
5. ``order`` (not reached): it was not examined, and some acceptable cluster has the GPUs now: jobs ahead of it in
   policy order came first (scan depth and budget, a blocked head under strict FIFO);
6. ``power``: no acceptable cluster can give it ``g`` GPUs, but one has them free on its nodes: its site's power cap
   forbids running them;
7. ``capacity``: no acceptable cluster (up, online, of an admitted GPU model; pay-per-use ones once its burst wait is
   over) has ``g`` GPUs free in the job's shape.

Details are written when read (:meth:`Waits.read`), from the state then. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from stargate.domain.reasons import WaitReason
from stargate.domain.teams import ANY_GPU
from stargate.engine.admission import Admission
from stargate.engine.alloc import PACKED, SPREAD, shape_of
from stargate.engine.classes import Classes
from stargate.engine.index import BoolArray, FleetIndex, FloatArray
from stargate.engine.jobs import PENDING, JobTable
from stargate.engine.occupancy import Occupancy
from stargate.engine.waiting import DownRule
from stargate.engine.windows import CapacityWindows

Memo = dict[tuple[int, int, bool, int], tuple[int, float, int]]
"""Failures of this cycle: (class, queue or -1, may burst, shape) → (GPUs, estimated end, what it met: a code of
this module) of a job that could not start. Within one shape a job at least as big and ending no sooner fails too
(every test is monotone in both); a job of another shape may fit where this one failed (a spread job where a packed one
did not), so the shape is in the key."""


UNJUDGED = -1
QUOTA, CAPACITY, POWER, DOWN, OFFLINE, HELD, BEHIND = range(7)
"""A job's judged code (``JobTable.why``); HELD and BEHIND are both ``order`` (a reservation; not reached)."""
NOFIT, UNSEEN = 7, 8
"""What a failed start attempt or the end of a cycle asks :meth:`Waits.judge` to explain (never stored)."""
PUBLIC = (
    WaitReason.QUOTA,
    WaitReason.CAPACITY,
    WaitReason.POWER,
    WaitReason.CLUSTERS_DOWN,
    WaitReason.OFFLINE,
    WaitReason.ORDER,
    WaitReason.ORDER,
)
"""Code → the reason shown."""
MOST_CLUSTERS = 5
"""Clusters named in one detail at most (then ``… N more``)."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Why one pending job waits: the reason, its detail, and the clusters it names (the down or offline ones)."""

    reason: WaitReason
    detail: str
    clusters: tuple[str, ...] = ()


class Waits:
    """Every pending job's judged code, the pending jobs per code, and the rules above over the scheduler's state."""

    def __init__(
        self,
        index: FleetIndex,
        jobs: JobTable,
        adm: Admission,
        classes: Classes,
        windows: CapacityWindows,
        occupancy: Occupancy,
        bursting: bool,
    ) -> None:
        """No job judged yet (``bursting``: the policy lets jobs burst to pay-per-use clusters after a wait)."""
        self.index, self.jobs, self.adm, self.classes = index, jobs, adm, classes
        self.windows, self.occ, self.bursting = windows, occupancy, bursting
        self.counts = [0] * len(PUBLIC)
        """Code → pending jobs judged so (what the simulator integrates over time)."""
        self.fresh: list[int] = []
        """Jobs pushed since the last cycle ended (judged at its end when it did not examine them)."""
        self.all_stale = True
        """True when the fleet changed: the end of the next cycle judges every pending job it did not examine."""
        self.gen = 0
        """Cycles begun; a job's ``wgen`` is the cycle that last judged it."""
        self.now = 0.0
        self.memo: dict[int, int] = {}
        """(job shape number, what its attempt met, burst wait not over) → code, for this cycle's state."""
        self._shapes: list[tuple[int, int, int, int]] = []
        """Shape number → (class, a queue of it, GPUs, node shape); see :meth:`_shape`."""
        self._shape_ix: dict[tuple[int, int, int, int], int] = {}
        self._static: dict[tuple[int, int], tuple[int, tuple[str, ...]]] = {}
        self._rule: DownRule | None = None

    # -- bookkeeping (the pending queues call these) -------------------------------------------------------------
    def pushed(self, j: int) -> None:
        """Job ``j`` entered its queue (again): its reason is judged anew."""
        t = self.jobs
        old = t.why[j]
        if old >= 0:
            self.counts[old] -= 1
            t.why[j] = UNJUDGED
        self.fresh.append(j)

    def left(self, j: int) -> None:
        """Job ``j`` left pending (started, ended or re-pushed)."""
        t = self.jobs
        old = t.why[j]
        if old >= 0:
            self.counts[old] -= 1
            t.why[j] = UNJUDGED

    # -- judging -------------------------------------------------------------------------------------------------
    def begin(self, now: float) -> None:
        """A cycle starts at ``now``: what was memoised of the state before is dropped."""
        self.now = now
        self.gen += 1
        self.memo.clear()
        self._static.clear()
        self._rule = None

    def judge(self, j: int, kind: int) -> None:
        """Record why job ``j`` cannot start now: ``kind`` is what its start attempt met (NOFIT: no cluster can give
        it the GPUs; QUOTA; HELD: only a reservation stood in its way) or UNSEEN (the cycle did not examine it)."""
        t = self.jobs
        if kind == HELD:
            code = HELD
        else:
            shape = t.wkey[j]
            if shape < 0:
                shape = t.wkey[j] = self._shape(j)
            burst = self.bursting and t.burst_at[j] > self.now
            key = shape * 32 + kind * 2 + burst  # one int: no tuple per judgement
            found = self.memo.get(key)
            if found is None:
                cls, q, g, per = self._shapes[shape]
                found = self.memo[key] = self._decide(kind, cls, q, g, per, not burst)
            code = found
        old = t.why[j]
        if old != code:
            counts = self.counts
            if old >= 0:
                counts[old] -= 1
            counts[code] += 1
            t.why[j] = code
        t.wgen[j] = self.gen

    def _shape(self, j: int) -> int:
        """The number of job ``j``'s (class, queue or -1 without quotas, GPUs, shape): what its judgement depends on."""
        t = self.jobs
        q, req = t.queue[j], t.req[j]
        per = shape_of(t.gpus[j], req.nodes, req.spread)
        shape = (t.cls[j], -1 if self.adm.unlimited[q] else q, t.gpus[j], per)
        n = self._shape_ix.get(shape)
        if n is None:
            n = self._shape_ix[shape] = len(self._shapes)
            self._shapes.append((t.cls[j], q, t.gpus[j], per))
        return n

    def end(self, pending: list[int]) -> None:
        """The cycle ended: judge the new jobs it did not examine, or every pending one when the fleet changed
        (``pending``: the pending jobs then; only read in that case)."""
        t = self.jobs
        self.memo.clear()  # the state at the end of the cycle, not at some failure during it
        self.occ.refresh()
        cur = self.gen
        todo = pending if self.all_stale else self.fresh
        self.all_stale = False
        state, why, wgen = t.state, t.why, t.wgen
        for j in todo:
            if state[j] == PENDING and (why[j] < 0 or wgen[j] != cur):
                self.judge(j, UNSEEN)
        self.fresh = []

    def _decide(self, kind: int, cls: int, q: int, g: int, per: int, burst_ok: bool) -> int:
        """The rules of the module docstring for one kind of job (memoised by the caller)."""
        static = self.static(cls, g)[0]
        if static >= 0:
            return static
        if kind == QUOTA:
            return QUOTA
        usable, allowed = self._usable(cls, q, g, burst_ok)
        if not allowed:
            return QUOTA
        have = self._have(per, g)
        if (usable & (have >= g)).any():
            return BEHIND
        if self.windows.limited and (usable & (self._on_nodes(per) >= g)).any():
            return POWER
        return CAPACITY

    def static(self, cls: int, g: int) -> tuple[int, tuple[str, ...]]:
        """(DOWN or OFFLINE or -1, the clusters named) for a job of class ``cls`` and ``g`` GPUs (rules 1 and 2)."""
        key = (cls, g)
        found = self._static.get(key)
        if found is None:
            w, idx = self.windows, self.index
            rule = self._rule
            if rule is None:
                rule = self._rule = DownRule(idx, w.up, w.online)
            big = self.classes.mask[cls] & (idx.total >= g)
            if (big & rule.online_up).any():
                found = (-1, ())
            elif (big & rule.online_down).any():
                found = (DOWN, rule.clusters(cls, self.classes.mask[cls], g))
            elif big.any():
                found = (OFFLINE, tuple(idx.cluster_ids[c] for c in np.flatnonzero(big).tolist()))
            else:
                found = (-1, ())
            self._static[key] = found
        return found

    def _usable(self, cls: int, q: int, g: int, burst_ok: bool) -> tuple[BoolArray, tuple[str, ...]]:
        """The clusters a job may use now (up, online, acceptable, of a GPU model its quota admits) and those models."""
        classes, w = self.classes, self.windows
        models = classes.models[cls]
        allowed = self.adm.allowed(q, models, g)
        mask = classes.mask[cls] if burst_ok else classes.mask_nb[cls]
        if allowed and len(allowed) < len(models):
            mask = mask & np.logical_or.reduce([classes.model_mask[m] for m in allowed])
        return mask & w.up & w.online, allowed

    def _have(self, per: int, g: int) -> FloatArray:
        """Per cluster, the GPUs a job of shape ``per`` can get now (power caps included)."""
        occ = self.occ
        if per == PACKED:
            return occ.fit
        if per == SPREAD:
            return occ.avail
        return np.where(occ.nodes_fit(g, per), occ.avail, 0.0)

    def _on_nodes(self, per: int) -> FloatArray:
        """Per cluster, the GPUs free on its nodes in shape ``per`` (power caps left out)."""
        occ = self.occ
        free = np.array(occ.free, dtype=np.float64)
        return np.minimum(free, occ.shape) if per == PACKED else free

    # -- reading -------------------------------------------------------------------------------------------------
    def read(self, pending: list[int]) -> dict[str, Wait]:
        """Job id → why it waits, for the judged ones of ``pending`` (details written from the state now)."""
        t = self.jobs
        out: dict[str, Wait] = {}
        texts: dict[tuple[int, int, int, int, int, bool], Wait] = {}
        for j in pending:
            code = t.why[j]
            if code < 0 or t.state[j] != PENDING:
                continue
            q, g, req = t.queue[j], t.gpus[j], t.req[j]
            burst_ok = not self.bursting or t.burst_at[j] <= self.now
            per = shape_of(g, req.nodes, req.spread)
            key = (code, t.cls[j], q, g, per, burst_ok)
            found = texts.get(key)
            if found is None:
                found = texts[key] = self._text(code, t.cls[j], q, g, per, burst_ok)
            out[t.ids[j]] = found
        return out

    def _text(self, code: int, cls: int, q: int, g: int, per: int, burst_ok: bool) -> Wait:
        reason = PUBLIC[code]
        asks = f"asks {g} GPU{'' if g == 1 else 's'}"
        if code == DOWN:
            clusters = self.static(cls, g)[1]
            return Wait(reason, "waits for " + _few([f"{c} (down)" for c in clusters]), clusters)
        if code == OFFLINE:
            clusters = self.static(cls, g)[1]
            return Wait(reason, "waits for " + _few([self._window(c) for c in clusters]), clusters)
        if code == QUOTA:
            return Wait(reason, f"{self._quota(q, cls)}; {asks}")
        if code == HELD:
            return Wait(reason, f"GPUs kept for a job ahead of it in policy order (its reservation); {asks}")
        if code == BEHIND:
            return Wait(reason, f"jobs ahead of it in policy order came first (the cycle did not reach it); {asks}")
        usable, _ = self._usable(cls, q, g, burst_ok)
        ids = np.flatnonzero(usable)
        if code == POWER:
            nodes = self._on_nodes(per)
            c = int(ids[np.argmax(nodes[ids])]) if ids.size else -1
            if c >= 0:
                site = self.index.sites[int(self.index.site_of[c])]
                return Wait(
                    reason,
                    f"{self.index.cluster_ids[c]} has {int(nodes[c])} GPUs free but the power cap of site {site} "
                    f"leaves room for {int(self.occ.avail[c])}; {asks}",
                )
            return Wait(reason, f"a site's power cap leaves no room; {asks}")
        have = self._have(per, g)
        if not ids.size:
            return Wait(reason, f"no cluster it may use is up and online; {asks}")
        c = int(ids[np.argmax(have[ids])])
        block = int(have[c])
        return Wait(
            reason,
            f"largest free block on its {ids.size} cluster{'' if ids.size == 1 else 's'}: {block} GPU"
            f"{'' if block == 1 else 's'} ({self.index.cluster_ids[c]}); {asks}",
        )

    def _window(self, cluster: str) -> str:
        """``later (online from 2027-01-01T00:00:00Z)`` or ``old (offline since …)``."""
        idx = self.index
        c = idx.cluster_ix[cluster]
        on = float(idx.on_s[c])
        if self.now < on:
            return f"{cluster} (online from {_iso(idx.epoch, on)})"
        off = float(idx.off_s[c])
        return f"{cluster} (offline since {_iso(idx.epoch, off)})" if math.isfinite(off) else f"{cluster} (offline)"

    def _quota(self, q: int, cls: int) -> str:
        """The numbers of the job's quota keys: held / quota / borrowing limit, and the cohort's."""
        adm = self.adm
        info = adm.queues[q]
        parts: list[str] = []
        for key in dict.fromkeys(k for m in self.classes.models[cls] if (k := adm.key(q, m)) is not None):
            nominal, borrow = info.quotas[key]
            name = "any GPU model" if key == ANY_GPU else key
            limit = "unlimited" if math.isinf(borrow) else f"{int(borrow)} GPUs"
            text = f"{name}: queue {info.name} holds {adm.usage[q][key]} GPUs of a {nominal} GPU quota"
            if info.cohort is not None:
                held = adm.cohort_usage[(info.cohort, key)]
                text += (
                    f", borrowing limit {limit}, cohort {info.cohort} holds {held} of "
                    f"{adm.cohort_nominal[(info.cohort, key)]} GPUs"
                )
            else:
                text += " (no cohort to borrow from)"
            parts.append(text)
        return "; ".join(parts) if parts else f"queue {info.name} has no quota for its GPU models"


def _few(items: list[str]) -> str:
    """Up to :data:`MOST_CLUSTERS` items joined by ``; ``, then ``… N more``."""
    more = f"; … {len(items) - MOST_CLUSTERS} more" if len(items) > MOST_CLUSTERS else ""
    return "; ".join(items[:MOST_CLUSTERS]) + more


def _iso(epoch: datetime, seconds: float) -> str:
    """Engine time ``seconds`` as ISO 8601 UTC to the second."""
    at = (epoch + timedelta(seconds=seconds)).astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
