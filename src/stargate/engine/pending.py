"""Pending jobs: per queue and size bucket, in policy order, with what changed since the last scan.

A pending job's key is computed when it is pushed: at submission, after a stop, and when the attained-service
policies promote it (:meth:`PendingQueues.repush`); it does not move otherwise.

Each sub-queue (a queue's size bucket) is a :class:`PendingQueue`: a small sorted head for scanning plus a heap for
the rest. Invariant: every entry of ``head`` sorts before every entry of ``tail``. Entries are
``(k0, k1, seq, job)`` tuples; an entry is dead when its job left the pending state or was re-queued with a
newer ``seq`` — dead entries are dropped lazily when a scan meets them. Inserting and popping cost
O(log n); a scan touches only the first entries of ``head``.
"""

from __future__ import annotations

import heapq
from bisect import insort
from typing import TYPE_CHECKING

from stargate.engine.jobs import PENDING, JobTable
from stargate.engine.policies import Policy

if TYPE_CHECKING:
    from stargate.engine.service import Service
    from stargate.engine.waits import Waits

Entry = tuple[float, float, int, int]

SIZE_BUCKETS = 8
"""Each queue keeps its pending jobs in buckets by GPU count: 1, 2, 3–4, 5–8, 9–16, 17–32, 33–64, 65+. A scan
looks at the first jobs of every bucket, so small jobs are never hidden behind a window full of blocked big ones;
within a bucket (and across buckets, when merged) the policy order holds."""


def size_bucket(gpus: int) -> int:
    """The bucket of a job of ``gpus`` GPUs: ``min(ceil(log2(gpus)), 7)``."""
    return min((gpus - 1).bit_length(), SIZE_BUCKETS - 1)


class PendingQueue:
    """Pending entries of one sub-queue."""

    __slots__ = ("head", "head_max", "live", "tail")

    def __init__(self, head_max: int) -> None:
        """An empty queue whose head holds up to ``head_max`` entries."""
        self.head: list[Entry] = []
        self.tail: list[Entry] = []
        self.head_max = head_max
        self.live = 0
        """Pending jobs in the queue (maintained by :class:`PendingQueues`)."""

    def push(self, entry: Entry) -> None:
        """Insert an entry in order."""
        head = self.head
        if self.tail and entry >= self.tail[0]:
            heapq.heappush(self.tail, entry)
            return
        if head and entry >= head[-1]:
            if len(head) < self.head_max and not self.tail:
                head.append(entry)
            else:
                heapq.heappush(self.tail, entry)
            return
        insort(head, entry)
        if len(head) > self.head_max:
            heapq.heappush(self.tail, head.pop())

    def refill(self) -> None:
        """Move entries from the tail heap into the head until it is full."""
        head, tail = self.head, self.tail
        while tail and len(head) < self.head_max:
            head.append(heapq.heappop(tail))

    def __len__(self) -> int:
        """Entries held, dead ones included."""
        return len(self.head) + len(self.tail)


class PendingQueues:
    """Every queue's pending jobs by size bucket (one bucket under strict FIFO), and the sub-queues to scan next:
    all of them (``dirty_all``, after a finish, failure or capacity change) or those that changed (``dirty``)."""

    def __init__(
        self, n_queues: int, policy: Policy, jobs: JobTable, service: Service | None = None, waits: Waits | None = None
    ) -> None:
        """Empty queues; the first scan looks at all of them. ``service``: the attained-service levels whose order
        replaces the policy's key (``las``, ``gittins``); ``waits``: told of every job that enters or leaves."""
        self.buckets = 1 if policy.strict_fifo else SIZE_BUCKETS
        self.queues = [PendingQueue(2 * policy.scan_depth) for _ in range(n_queues * self.buckets)]
        """Sub-queue ``queue * buckets + bucket`` → its pending entries."""
        self.subq: list[int] = []
        """Job → its sub-queue."""
        self.nonempty: set[int] = set()
        """Sub-queues with at least one pending job."""
        self.dirty: set[int] = set()
        """Sub-queues to scan at the next cycle."""
        self.dirty_all = True
        """True when the next cycle scans every sub-queue (and drops every reservation)."""
        self.n = 0
        """Pending jobs."""
        self._seq = 0
        self._key = policy.key
        self._service = service
        self._jobs = jobs
        self._waits = waits

    def assign(self, j: int, queue: int, gpus: int) -> None:
        """Record the sub-queue of new job ``j`` (job rows are assigned in order)."""
        self.subq.append(queue * self.buckets + (size_bucket(gpus) if self.buckets > 1 else 0))

    def push(self, j: int) -> None:
        """Queue pending job ``j`` at its place in policy order (a fresh ``seq`` makes older entries dead)."""
        t = self._jobs
        if self._service is not None:
            k0, k1 = self._service.key(j)
        else:
            k0, k1 = self._key(t.prio[j], t.req[j].submit_s, t.remaining(j), t.gpus[j])
        self._seq += 1
        t.seq[j] = self._seq
        q = self.subq[j]
        pq = self.queues[q]
        pq.push((k0, k1, self._seq, j))
        pq.live += 1
        self.nonempty.add(q)
        self.n += 1
        self.dirty.add(q)
        if self._waits is not None:
            self._waits.pushed(j)

    def repush(self, j: int) -> None:
        """Queue pending job ``j`` again at its new place (its key changed, e.g. it was promoted)."""
        self.remove(j)
        self.push(j)

    def remove(self, j: int) -> None:
        """Pending job ``j`` left its queue (it started or ended); its entry dies lazily."""
        q = self.subq[j]
        pq = self.queues[q]
        pq.live -= 1
        if not pq.live:
            self.nonempty.discard(q)
        self.n -= 1
        if self._waits is not None:
            self._waits.left(j)

    def rows(self) -> list[int]:
        """Every pending job, sub-queue by sub-queue (in no particular order within each)."""
        t, out = self._jobs, []
        state, seq = t.state, t.seq
        for q in sorted(self.nonempty):
            pq = self.queues[q]
            for e in (*pq.head, *pq.tail):
                j = e[3]
                if state[j] == PENDING and seq[j] == e[2]:
                    out.append(j)
        return out

    def to_scan(self) -> list[int]:
        """The sub-queues the cycle scans, in order; clears the marks."""
        scan = sorted(self.nonempty) if self.dirty_all else sorted(self.dirty & self.nonempty)
        self.dirty_all = False
        self.dirty.clear()
        return scan

    def live_at(self, q: int, pos: int) -> int:
        """Position of the first live entry at or after ``pos`` in sub-queue ``q``'s head (-1: none)."""
        pq, t = self.queues[q], self._jobs
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
