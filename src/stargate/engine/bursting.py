"""Bursting: jobs held back from pay-per-use capacity until their burst wait runs out.

With the policy's ``burst_after_s`` set, job *j* may use pay-per-use clusters only from its burst deadline
``submit(j) + burst_wait_s(gpus, estimate)`` (see :meth:`~stargate.engine.policies.Policy.burst_wait_s`). Deadlines
wait in a heap; a job whose deadline has passed is *ready* and is tried at every cycle wherever it stands in its
queue. The deadline itself is the job table's ``burst_at``.
"""

from __future__ import annotations

import heapq
import math

from stargate.engine.jobs import PENDING


class Bursts:
    """Burst deadlines still ahead (a heap of ``(deadline, job, 0)``) and the jobs whose deadline has passed."""

    __slots__ = ("heap", "ready")

    def __init__(self) -> None:
        """No job waiting."""
        self.heap: list[tuple[float, int, int]] = []
        self.ready: dict[int, None] = {}
        """Jobs whose burst deadline has passed (an insertion-ordered set)."""

    def wait(self, j: int, deadline: float) -> None:
        """Job ``j`` may burst from ``deadline``."""
        heapq.heappush(self.heap, (deadline, j, 0))

    def resume(self, j: int, deadline: float, now: float) -> None:
        """Stopped job ``j`` is pending again: ready at once when its deadline has passed, else waiting for it."""
        if deadline <= now:
            self.ready[j] = None
        else:
            heapq.heappush(self.heap, (deadline, j, 0))

    def due(self, now: float, state: list[int]) -> list[int]:
        """The pending jobs whose deadline came by ``now``: they are ready from now on."""
        heap, out = self.heap, []
        while heap and heap[0][0] <= now:
            _, j, _ = heapq.heappop(heap)
            if state[j] == PENDING:
                self.ready[j] = None
                out.append(j)
        return out

    def next_due(self, now: float, state: list[int]) -> float:
        """The next deadline after ``now`` of a pending job (inf when none)."""
        heap = self.heap
        while heap and state[heap[0][1]] != PENDING:
            heapq.heappop(heap)
        return heap[0][0] if heap and heap[0][0] > now else math.inf
