"""Attained service for the ``las`` and ``gittins`` policies: levels, demotions, promotions and ranks.

A job's *service* is the GPU-seconds it received since it was last promoted (``attained - base`` in the job
table; ``attained`` counts every run, work later lost included). Its *level* is how many of the policy's
thresholds its service reached (0: the top level). Within a priority class, pending jobs are ordered by level,
then by submission (``las``) or by Gittins index (``gittins``).

- **Demotion** of a running job takes effect at its first checkpoint at or after its service crosses a threshold:
  then it may be preempted (for a job of a higher level of its class that waits and cannot start) without losing
  work. The engine asks for a wake-up at that instant only while some job of a higher level waits.
- **Promotion**: a job that waits at a level below the top for ``min(starvation_factor × its last run,
  promote_after_s)`` goes back to the top level (its service counts from zero again): a bounded wait.
- **Ranks** merge class priority and level into one integer for victim selection: ``priority × L - level``
  (``L`` levels), so a higher class always outranks a lower one and, within a class, a higher level (less
  service) outranks a lower one. A running job's level is its demoted level (0 until its first demotion).

Pure bookkeeping over the scheduler's job table: no clock, no I/O.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Sequence
from itertools import accumulate

from stargate.engine.jobs import PENDING, RUNNING, JobTable
from stargate.engine.policies import GittinsPolicy, LasPolicy

GITTINS_WINDOW = 1_000
"""Completed jobs per queue whose service the Gittins index reads when the engine has no run history."""


class Service:
    """Levels, demotion and promotion heaps, and the Gittins index of one scheduler (module docstring)."""

    def __init__(
        self, policy: LasPolicy, jobs: JobTable, samples: Callable[[str], Sequence[float]] | None = None
    ) -> None:
        """Bookkeeping for ``policy`` over ``jobs``; ``samples(queue)``: sorted GPU-seconds of the queue's completed
        jobs (None: kept here from the completions the scheduler reports)."""
        self.policy, self.t = policy, jobs
        self.thresholds = policy.thresholds()
        self.levels = len(self.thresholds) + 1
        self.gittins = isinstance(policy, GittinsPolicy)
        self.min_samples = policy.gittins_min_samples if isinstance(policy, GittinsPolicy) else 0
        self._samples = samples
        self._own: dict[str, tuple[deque[float], list[float]]] = {}
        self._prefix: dict[str, tuple[int, list[float]]] = {}
        self._version: dict[str, int] = {}
        """Queue → its completions so far (its Gittins prefix sums are recomputed when that moves)."""
        self.demotions: list[list[tuple[float, int, int]]] = [[] for _ in range(self.levels)]
        """Level → (instant, job, run stamp) of running jobs' next demotion to that level (their first checkpoint
        past its threshold)."""
        self.promotions: list[tuple[float, int, int]] = []
        """(instant, job, stop stamp): a pending job below the top level goes back to it."""
        self.unstamped: list[int] = []
        """Pending jobs submitted below the top level (restored after a restart): their wait counts from the next
        cycle (when the engine first knows the time)."""
        self.ranks: Counter[int] = Counter()
        """Rank → running preemptible jobs demoted to that rank (level > 0)."""
        self.blocked = math.inf
        """The best (lowest) level of a job that could not start in the last scans (inf: none)."""

    # -- levels -----------------------------------------------------------------------------------------------
    def level(self, j: int) -> int:
        """The level of job ``j`` by its service so far (runs that ended only)."""
        t = self.t
        return bisect_right(self.thresholds, t.attained[j] - t.base[j])

    def rank(self, j: int) -> int:
        """Job ``j``'s rank: ``priority × levels - level`` (pending: its level; running: its demoted level)."""
        t = self.t
        return t.rank[j] if t.state[j] == RUNNING else t.prio[j] * self.levels - self.level(j)

    def min_rank(self, min_victim_prio: float) -> float:
        """The lowest rank of a running preemptible job (``min_victim_prio``: the lowest priority of one)."""
        low = min_victim_prio * self.levels if min_victim_prio < math.inf else math.inf
        return min(low, min(self.ranks)) if self.ranks else low

    def key(self, j: int) -> tuple[float, float]:
        """Pending order of job ``j``: ``-priority + level / levels`` (a class always first), then its submission
        (``las``) or minus its Gittins index (``gittins``)."""
        t = self.t
        k0 = -t.prio[j] + self.level(j) / self.levels
        if not self.gittins:
            return (k0, t.req[j].submit_s)
        return (k0, -self.index(j))

    # -- run events -------------------------------------------------------------------------------------------
    def placed(self, j: int) -> None:
        """Pending job ``j`` (new, stopped or promoted) takes the rank of its level: the rank it runs at if it
        starts (victim selection may read it before :meth:`started` is told, in the cycle that starts it)."""
        t = self.t
        t.rank[j] = t.prio[j] * self.levels - self.level(j)

    def started(self, j: int) -> None:
        """Job ``j`` started (or was restored running): schedule its first demotion."""
        t = self.t
        t.stamp[j] += 1
        t.lvl[j] = self.level(j)  # a job that starts below the top level runs at its level
        t.rank[j] = t.prio[j] * self.levels - t.lvl[j]
        if t.lvl[j] > 0 and t.preemptible[j]:
            self.ranks[t.rank[j]] += 1
        self._next_demotion(j)

    def ended(self, j: int, now: float) -> float:
        """Running job ``j`` stops or ends at ``now``: count its service; returns the run's length, s."""
        t = self.t
        ran = max(now - t.started[j], 0.0)
        t.attained[j] += ran * t.gpus[j]
        t.stamp[j] += 1
        if t.lvl[j] > 0 and t.preemptible[j]:
            self._uncount(t.prio[j] * self.levels - t.lvl[j])
        t.lvl[j] = 0
        self.placed(j)
        return ran

    def stopped(self, j: int, now: float, ran: float) -> None:
        """Job ``j`` is pending again at ``now`` after a run of ``ran`` s: schedule its promotion."""
        t = self.t
        t.last_run[j] = ran
        if self.level(j) > 0:
            self._wait(j, now)

    def completed(self, queue: str, gpu_s: float) -> None:
        """A job of ``queue`` completed with ``gpu_s`` of useful service (kept only without a run history)."""
        self._version[queue] = self._version.get(queue, 0) + 1
        if self._samples is None and math.isfinite(gpu_s) and gpu_s >= 0.0:
            order, own = self._own.setdefault(queue, (deque(), []))
            if len(order) >= GITTINS_WINDOW:
                del own[bisect_left(own, order.popleft())]
            order.append(gpu_s)
            own.insert(bisect_left(own, gpu_s), gpu_s)

    # -- time-driven changes ----------------------------------------------------------------------------------
    def due(self, now: float) -> bool:
        """True when a promotion or a demotion that could matter is due at ``now``."""
        return bool(self.unstamped or (self.promotions and self.promotions[0][0] <= now) or self._demotion_due() <= now)

    def _demotion_due(self) -> float:
        """The first demotion to a level below the best waiting job's (one that could let it preempt; inf: none)."""
        at = math.inf
        for level in range(int(min(self.blocked, self.levels)) + 1, self.levels):
            heap = self.demotions[level]
            if heap and heap[0][0] < at:
                at = heap[0][0]
        return at

    def advance(self, now: float, repush: Callable[[int], None]) -> bool:
        """Apply promotions and demotions due by ``now``; ``repush(j)`` re-queues a promoted job. True when a
        demotion may let a waiting job preempt (the cycle then scans every queue)."""
        t = self.t
        for j in self.unstamped:
            if t.state[j] == PENDING:
                self._wait(j, now)
        self.unstamped = []
        proms = self.promotions
        while proms and proms[0][0] <= now:
            _, j, stamp = heapq.heappop(proms)
            if t.state[j] == PENDING and t.stamp[j] == stamp:
                t.base[j] = t.attained[j]
                self.placed(j)
                repush(j)
        hit = False
        for demos in self.demotions:  # by level: a job demoted twice at one instant goes through both in order
            while demos and demos[0][0] <= now:
                _, j, stamp = heapq.heappop(demos)
                if t.state[j] == RUNNING and t.stamp[j] == stamp:
                    if t.lvl[j] > 0 and t.preemptible[j]:
                        self._uncount(t.prio[j] * self.levels - t.lvl[j])
                    t.lvl[j] += 1
                    t.rank[j] = t.prio[j] * self.levels - t.lvl[j]
                    if t.preemptible[j]:
                        self.ranks[t.rank[j]] += 1
                    hit = hit or self.blocked < t.lvl[j]
                    self._next_demotion(j)
        return hit

    def next_wakeup(self) -> float:
        """The next instant a promotion, or a demotion while a higher-level job waits, is due (inf: none)."""
        at = self.promotions[0][0] if self.promotions else math.inf
        return min(at, self._demotion_due())

    # -- internals --------------------------------------------------------------------------------------------
    def _uncount(self, rank: int) -> None:
        ranks = self.ranks
        ranks[rank] -= 1
        if ranks[rank] <= 0:
            del ranks[rank]

    def _wait(self, j: int, now: float) -> None:
        """Schedule pending job ``j``'s promotion: after ``min(starvation_factor × last run, promote_after_s)``."""
        t, pol = self.t, self.policy
        ran = t.last_run[j] if t.last_run[j] > 0 else (t.attained[j] - t.base[j]) / max(t.gpus[j], 1)
        wait = min(pol.starvation_factor * ran if pol.starvation_factor < math.inf else math.inf, pol.promote_after_s)
        t.stamp[j] += 1
        if wait < math.inf:
            heapq.heappush(self.promotions, (now + wait, j, t.stamp[j]))

    def _next_demotion(self, j: int) -> None:
        """Push running job ``j``'s next demotion: its first checkpoint at or after its service crosses the next
        threshold (none past the last threshold, or for a job that never checkpoints)."""
        t = self.t
        k = t.lvl[j]
        if k >= len(self.thresholds):
            return
        service0 = t.attained[j] - t.base[j]  # at the run's start (attained grows when the run ends)
        s, c = t.started[j], t.ckpt[j]
        cross = (self.thresholds[k] - service0) / t.gpus[j]  # run time to the crossing, s
        if not (math.isfinite(c) and c > 0.0 and math.isfinite(cross)):
            return
        n = max(math.ceil(cross / c), 1)
        ran = n * c
        at = s + ran
        while at - s < ran:  # the instant's run time must reach the checkpoint (so no work is lost at it)
            at = math.nextafter(at, math.inf)
        if math.isfinite(at):
            heapq.heappush(self.demotions[k + 1], (at, j, t.stamp[j]))

    # -- Gittins ----------------------------------------------------------------------------------------------
    def index(self, j: int) -> float:
        """The Gittins index of pending job ``j`` (higher runs first) over its queue's completed jobs' service,
        with quantum Δ = distance to the next threshold::

            G(a) = P(S - a <= Δ | S > a) / E[min(S - a, Δ) | S > a]

        Before ``gittins_min_samples`` jobs of the queue completed, the prior: least service first (LAS)."""
        t = self.t
        a = t.attained[j] - t.base[j]
        queue = t.req[j].queue
        samples = self._samples(queue) if self._samples is not None else self._own.get(queue, ((), []))[1]
        if len(samples) < self.min_samples:
            return -a / 1e12  # the prior: less service, higher index (below every learned index of this level)
        prefix = self._prefix_of(queue, samples)
        lo = bisect_right(samples, a)
        n = len(samples) - lo
        if n <= 0:
            return 0.0
        k = bisect_right(self.thresholds, a)
        delta = self.thresholds[k] - a if k < len(self.thresholds) else math.inf
        hi = bisect_right(samples, a + delta) if delta < math.inf else len(samples)
        m = hi - lo
        inside = (prefix[hi] - prefix[lo]) - m * a
        expected = inside + (n - m) * (delta if delta < math.inf else 0.0)
        return m / expected if expected > 0 else math.inf

    def _prefix_of(self, queue: str, samples: Sequence[float]) -> list[float]:
        """Prefix sums of ``samples`` (cached until the next completion of ``queue``)."""
        got, version = self._prefix.get(queue), self._version.get(queue, 0)
        if got is not None and got[0] == version and len(got[1]) == len(samples) + 1:
            return got[1]
        prefix = [0.0, *accumulate(samples)]
        self._prefix[queue] = (version, prefix)
        return prefix
