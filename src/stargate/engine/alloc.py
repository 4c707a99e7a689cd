"""Node-aware GPU allocation inside one cluster: concrete, cluster-local GPU ids, cheap and deterministic.

GPU id ``g`` lives on node ``g // gpus_per_node``. Nodes are kept in buckets by their number of free GPUs;
nodes never touched are implicitly whole and taken in id order from ``fresh``. Rules:

- a job of ``n >= gpus_per_node`` GPUs takes ``n // gpus_per_node`` whole nodes, then the remainder as below;
- a remainder (or a small job) of ``r`` GPUs goes to the node with the fewest free GPUs that still holds ``r``
  (best fit, which packs small jobs onto partly used nodes and keeps whole nodes for gangs);
- if no single node holds ``r``, it is spread over the fullest-free nodes first.
"""

from __future__ import annotations


class NodeAllocator:
    """Free GPUs of one cluster, by node."""

    __slots__ = ("buckets", "free", "fresh", "gpn", "node_free", "nodes")

    def __init__(self, nodes: int, gpus_per_node: int) -> None:
        """A cluster of ``nodes`` × ``gpus_per_node`` GPUs, all free."""
        self.nodes = nodes
        self.gpn = gpus_per_node
        self.free = nodes * gpus_per_node
        self.fresh = 0
        """Nodes with id >= fresh have never been used (all their GPUs free)."""
        self.node_free: dict[int, list[int]] = {}
        """Touched node → its free slot numbers (a stack)."""
        self.buckets: list[dict[int, None]] = [{} for _ in range(gpus_per_node + 1)]
        """buckets[k]: touched nodes with exactly k free GPUs (insertion-ordered set)."""

    def allocate(self, n: int) -> tuple[int, ...]:
        """Take ``n`` GPUs (``n <= free``) and return their ids."""
        assert 0 < n <= self.free, (n, self.free)
        ids: list[int] = []
        whole, rest = divmod(n, self.gpn)
        for _ in range(whole):
            ids.extend(self._take_whole())
        if rest:
            ids.extend(self._take_partial(rest))
        self.free -= n
        return tuple(ids)

    def release(self, ids: tuple[int, ...]) -> None:
        """Give GPUs back."""
        gpn = self.gpn
        for g in ids:
            node, slot = divmod(g, gpn)
            slots = self.node_free[node]
            del self.buckets[len(slots)][node]
            slots.append(slot)
            self.buckets[len(slots)][node] = None
        self.free += len(ids)

    def take(self, ids: tuple[int, ...]) -> None:
        """Mark the given GPUs as used (rebuilding state after a restart); each must be free, and no id may repeat.
        Checked before anything changes: a refusal (ValueError) leaves every GPU as it was."""
        gpn = self.gpn
        if len(set(ids)) != len(ids):
            raise ValueError(f"GPU ids {sorted(ids)} name one GPU twice")
        for g in ids:
            node, slot = divmod(g, gpn)
            if not 0 <= node < self.nodes:
                raise ValueError(f"GPU id {g} is outside the cluster (0..{self.nodes * gpn - 1})")
            while self.fresh <= node:
                self._touch()  # a node seen for the first time: all its GPUs free (no change to what is held)
            if slot not in self.node_free[node]:
                raise ValueError(f"GPU id {g} is already held")
        for g in ids:
            node, slot = divmod(g, gpn)
            slots = self.node_free[node]
            del self.buckets[len(slots)][node]
            slots.remove(slot)
            self.buckets[len(slots)][node] = None
        self.free -= len(ids)

    def _touch(self) -> int:
        node = self.fresh
        self.fresh += 1
        self.node_free[node] = list(range(self.gpn - 1, -1, -1))
        self.buckets[self.gpn][node] = None
        return node

    def _take_from(self, node: int, k: int) -> list[int]:
        slots = self.node_free[node]
        del self.buckets[len(slots)][node]
        base = node * self.gpn
        out = [base + slots.pop()] if k == 1 else [base + slots.pop() for _ in range(k)]
        self.buckets[len(slots)][node] = None
        return out

    def _take_whole(self) -> list[int]:
        full = self.buckets[self.gpn]
        node = next(iter(full)) if full else (self._touch() if self.fresh < self.nodes else -1)
        if node < 0:
            return self._take_partial(self.gpn)
        return self._take_from(node, self.gpn)

    def _take_partial(self, r: int) -> list[int]:
        for k in range(r, self.gpn + 1):
            bucket = self.buckets[k]
            if bucket:
                return self._take_from(next(iter(bucket)), r)
            if k == self.gpn and self.fresh < self.nodes:
                return self._take_from(self._touch(), r)
        out: list[int] = []
        for k in range(self.gpn - 1, 0, -1):
            while self.buckets[k] and len(out) < r:
                out.extend(self._take_from(next(iter(self.buckets[k])), min(k, r - len(out))))
        return out
