"""A queue's pending jobs in policy order: a small sorted head for scanning plus a heap for the rest.

Invariant: every entry of ``head`` sorts before every entry of ``tail``. Entries are
``(k0, k1, seq, job)`` tuples; an entry is dead when its job left the pending state or was re-queued with a
newer ``seq`` — dead entries are dropped lazily when a scan meets them. Inserting and popping cost
O(log n); a scan touches only the first entries of ``head``.
"""

from __future__ import annotations

import heapq
from bisect import insort

Entry = tuple[float, float, int, int]

SIZE_BUCKETS = 8
"""Each queue keeps its pending jobs in buckets by GPU count: 1, 2, 3–4, 5–8, 9–16, 17–32, 33–64, 65+. A scan
looks at the first jobs of every bucket, so small jobs are never hidden behind a window full of blocked big ones;
within a bucket (and across buckets, when merged) the policy order holds."""


def size_bucket(gpus: int) -> int:
    """The bucket of a job of ``gpus`` GPUs: ``min(ceil(log2(gpus)), 7)``."""
    return min((gpus - 1).bit_length(), SIZE_BUCKETS - 1)


class PendingQueue:
    """Pending entries of one queue."""

    __slots__ = ("head", "head_max", "live", "tail")

    def __init__(self, head_max: int) -> None:
        """An empty queue whose head holds up to ``head_max`` entries."""
        self.head: list[Entry] = []
        self.tail: list[Entry] = []
        self.head_max = head_max
        self.live = 0
        """Pending jobs in the queue (maintained by the scheduler)."""

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
