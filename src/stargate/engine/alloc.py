"""Node-aware GPU allocation inside one cluster: concrete, cluster-local GPU ids, cheap and deterministic.

GPU id ``g`` lives on node ``g // gpus_per_node`` (``gpn``). Nodes are kept in buckets by their number of free GPUs;
nodes never touched are implicitly whole and taken in id order from ``fresh``. A job asks for one of three shapes
(``per``, see :func:`shape_of`):

- **packed** (``PACKED``, the default): a job of ``n <= gpn`` GPUs runs on ONE node; a larger one takes
  ``n // gpn`` wholly free nodes plus the remainder ``n % gpn`` on one more node. This is what a Kubernetes pod
  (always on one node) and a Slurm job asking ``--nodes=1`` get, and the rule of Starburst's simulator (USENIX ATC
  2024), which keeps a job of up to one node's GPUs on one node and gives larger jobs whole nodes;
- **nodes** (``per > 0``): exactly ``n // per`` distinct nodes with ``per`` GPUs each (the job's ``nodes``);
- **spread** (``SPREAD``): any free GPUs (a job that says it may be split over partly free nodes).

A single node (a packed job's small part, or each node of a nodes-shaped job) is chosen by best fit: the node with
the fewest free GPUs that still holds the part, so small jobs pack onto partly used nodes and whole nodes stay
whole for gangs. Only a spread job falls back to taking GPUs from several partly free nodes.

``shape`` summarises what a packed job can get in one number: with ``W`` wholly free nodes and ``mp`` the most
free GPUs on a node that is not wholly free (``0 <= mp < gpn``), ``shape = W * gpn + mp``. A packed job of ``n``
GPUs fits exactly when ``shape >= n``: writing ``n = w * gpn + r`` (``0 <= r < gpn``), ``(W, mp) >= (w, r)``
in lexicographic order is the same as ``W * gpn + mp >= w * gpn + r`` because both ``mp`` and ``r`` are below
``gpn``; and ``(W, mp) >= (w, r)`` is the rule (``W > w``: the remainder takes one more whole node; ``W == w``:
it needs a partly free node holding ``r``). It is updated in O(gpn) per allocation or release.
"""

from __future__ import annotations

from heapq import heappop, heappush

SPREAD = -1
"""Shape of a job that may take any free GPUs of the cluster, over partly free nodes."""
PACKED = 0
"""Shape of a job kept on one node, or on whole nodes plus one node for the remainder."""


def shape_of(gpus: int, nodes: int | None, spread: bool) -> int:
    """A job's shape code: ``SPREAD``, ``PACKED``, or the GPUs per node of a job asking for ``nodes`` nodes."""
    if spread:
        return SPREAD
    if nodes is None:
        return PACKED
    return gpus // nodes


def fits_counts(counts: list[int], gpn: int, need: int, per: int) -> bool:
    """True when nodes whose free GPUs are counted by ``counts`` (``counts[k]``: nodes with ``k`` free) hold a job of
    ``need`` GPUs and shape ``per`` (GPU counts, power caps and quotas are checked elsewhere)."""
    if per < 0:
        return True
    if per == 0:
        mp = gpn - 1
        while mp > 0 and not counts[mp]:
            mp -= 1
        return counts[gpn] * gpn + mp >= need
    return per <= gpn and sum(counts[per:]) >= need // per


class NodeAllocator:
    """Free GPUs of one cluster, by node.

    Every choice depends only on which GPUs are free, never on the order of past starts and finishes: among equal
    nodes the lowest node id wins and a node gives its lowest free slots. A driver rebuilt after a restart (which
    re-takes the running jobs' GPUs in another order) therefore places the next job exactly as the one that ran all
    along: both clocks agree. Nodes are kept per number of free GPUs in lazy min-heaps (an entry is live while its
    node still has that many free GPUs), so each choice costs O(log nodes).
    """

    __slots__ = ("_heaps", "count", "free", "fresh", "gpn", "level", "node_free", "nodes", "shape")

    def __init__(self, nodes: int, gpus_per_node: int) -> None:
        """A cluster of ``nodes`` × ``gpus_per_node`` GPUs, all free."""
        self.nodes = nodes
        self.gpn = gpus_per_node
        self.free = nodes * gpus_per_node
        self.shape = self.free
        """GPUs a packed job can get here (``W * gpn + mp``, see the module docstring)."""
        self.fresh = 0
        """Nodes with id >= fresh have never been used (all their GPUs free)."""
        self.node_free: dict[int, list[int]] = {}
        """Touched node → its free slot numbers, ascending."""
        self.level: dict[int, int] = {}
        """Touched node → its free GPUs."""
        self.count = [0] * (gpus_per_node + 1)
        """count[k]: touched nodes with exactly k free GPUs."""
        self._heaps: list[list[int]] = [[] for _ in range(gpus_per_node + 1)]
        """_heaps[k]: touched node ids that had k free GPUs when pushed (live while they still have)."""

    # -- reading --------------------------------------------------------------------------------------------
    def counts(self) -> list[int]:
        """Nodes per number of free GPUs: ``counts()[k]`` nodes have exactly ``k`` GPUs free."""
        out = list(self.count)
        out[self.gpn] += self.nodes - self.fresh
        return out

    def whole(self) -> int:
        """Wholly free nodes."""
        return self.count[self.gpn] + self.nodes - self.fresh

    def fits(self, n: int, per: int = PACKED) -> bool:
        """True when a job of ``n`` GPUs and shape ``per`` can be allocated now."""
        if n > self.free:
            return False
        if per == PACKED:
            return self.shape >= n
        return fits_counts(self.counts(), self.gpn, n, per)

    # -- changing -------------------------------------------------------------------------------------------
    def allocate(self, n: int, per: int = PACKED) -> tuple[int, ...]:
        """Take ``n`` GPUs of shape ``per`` (which must fit: see :meth:`fits`) and return their ids."""
        assert 0 < n <= self.free, (n, self.free)
        if per == PACKED:
            ids = self._packed(n)
        elif per > 0:
            ids = self._nodes(n // per, per)
        else:
            ids = self._spread(n)
        assert len(ids) == n, (n, per, ids)
        self.free -= n
        self._reshape()
        return tuple(ids)

    def release(self, ids: tuple[int, ...]) -> None:
        """Give GPUs back."""
        gpn = self.gpn
        back: dict[int, list[int]] = {}
        for g in ids:
            node, slot = divmod(g, gpn)
            back.setdefault(node, []).append(slot)
        for node, slots_back in back.items():
            slots = self.node_free[node]
            slots.extend(slots_back)
            slots.sort()
            self._set(node, len(slots))
        self.free += len(ids)
        self._reshape()

    def take(self, ids: tuple[int, ...]) -> None:
        """Mark the given GPUs as used (rebuilding state after a restart), whatever their shape (a placement made by an
        older rule stays valid); each must be free, and no id may repeat. Checked before anything changes: a refusal
        (ValueError) leaves every GPU as it was."""
        gpn = self.gpn
        if len(set(ids)) != len(ids):
            raise ValueError(f"GPU ids {sorted(ids)} name one GPU twice")
        for g in ids:
            node, slot = divmod(g, gpn)
            if not 0 <= node < self.nodes:
                raise ValueError(f"GPU id {g} is outside the cluster (0..{self.nodes * gpn - 1})")
            if node < self.fresh and slot not in self.node_free[node]:
                raise ValueError(f"GPU id {g} is already held")
        for g in ids:
            node, slot = divmod(g, gpn)
            while self.fresh <= node:
                self._touch()  # a node seen for the first time: all its GPUs free (no change to what is held)
            slots = self.node_free[node]
            slots.remove(slot)
            self._set(node, len(slots))
        self.free -= len(ids)
        self._reshape()

    # -- internals ------------------------------------------------------------------------------------------
    def _set(self, node: int, k: int) -> None:
        """Touched ``node`` now has ``k`` free GPUs."""
        level = self.level
        before = level[node]
        if before == k:
            return
        count = self.count
        count[before] -= 1
        count[k] += 1
        level[node] = k
        heap = self._heaps[k]
        heappush(heap, node)
        if len(heap) > 2 * count[k] + 64:  # mostly dead entries: keep the heap small
            live = {x for x in heap if level.get(x) == k}
            heap[:] = sorted(live)

    def _lowest(self, k: int) -> int:
        """The lowest touched node with exactly ``k`` free GPUs; -1 when none."""
        if not self.count[k]:
            return -1
        heap, level = self._heaps[k], self.level
        while level[heap[0]] != k:
            heappop(heap)
        return heap[0]

    def _reshape(self) -> None:
        gpn, count = self.gpn, self.count
        mp = gpn - 1
        while mp > 0 and not count[mp]:
            mp -= 1
        self.shape = (count[gpn] + self.nodes - self.fresh) * gpn + mp

    def _touch(self) -> int:
        node = self.fresh
        self.fresh += 1
        self.node_free[node] = list(range(self.gpn))
        self.level[node] = self.gpn
        self.count[self.gpn] += 1
        heappush(self._heaps[self.gpn], node)
        return node

    def _take_from(self, node: int, k: int) -> list[int]:
        slots = self.node_free[node]
        base = node * self.gpn
        out = [base + x for x in slots[:k]]
        del slots[:k]
        self._set(node, len(slots))
        return out

    def _whole_node(self) -> int:
        """The lowest wholly free node (touched nodes have lower ids than fresh ones); -1 when none is left."""
        node = self._lowest(self.gpn)
        if node >= 0:
            return node
        return self._touch() if self.fresh < self.nodes else -1

    def _best_node(self, r: int) -> int:
        """The node with the fewest free GPUs that still holds ``r`` (best fit; the lowest id among those); -1 when
        none does."""
        for k in range(r, self.gpn):
            node = self._lowest(k)
            if node >= 0:
                return node
        return self._whole_node()

    def _packed(self, n: int) -> list[int]:
        whole, rest = divmod(n, self.gpn)
        ids: list[int] = []
        for _ in range(whole):
            ids.extend(self._take_from(self._whole_node(), self.gpn))
        if rest:
            ids.extend(self._take_from(self._best_node(rest), rest))
        return ids

    def _nodes(self, count: int, per: int) -> list[int]:
        ids: list[int] = []
        used: set[int] = set()
        for _ in range(count):  # distinct nodes: the best fit among those not used yet
            node = self._best_node_except(per, used)
            used.add(node)
            ids.extend(self._take_from(node, per))
        return ids

    def _best_node_except(self, r: int, used: set[int]) -> int:
        """As :meth:`_best_node`, skipping the nodes in ``used`` (a scan of the heaps: only jobs asking for a node
        count use it)."""
        if not used:
            return self._best_node(r)
        level = self.level
        for k in range(r, self.gpn + 1):
            if self.count[k]:
                live = [x for x in set(self._heaps[k]) if level[x] == k and x not in used]
                if live:
                    return min(live)
        return self._touch()

    def _spread(self, n: int) -> list[int]:
        ids: list[int] = []
        whole, rest = divmod(n, self.gpn)
        for _ in range(whole):
            node = self._whole_node()
            ids.extend(self._take_from(node, self.gpn) if node >= 0 else self._spread_over(self.gpn))
        if rest:
            node = self._best_node(rest)
            ids.extend(self._take_from(node, rest) if node >= 0 else self._spread_over(rest))
        return ids

    def _spread_over(self, r: int) -> list[int]:
        """``r`` GPUs from the fullest-free partly used nodes first, lowest id first (no single node holds them)."""
        out: list[int] = []
        for k in range(self.gpn - 1, 0, -1):
            while len(out) < r:
                node = self._lowest(k)
                if node < 0:
                    break
                out.extend(self._take_from(node, min(k, r - len(out))))
        return out


Spans = tuple[tuple[int, int], ...]
"""A placement by node: ``((node, GPUs on it), ...)``."""


def node_spans(ids: tuple[int, ...], gpn: int) -> Spans:
    """GPU ids ``ids`` as ``(node, GPUs)`` pairs, in order of first appearance."""
    if len(ids) == 1:
        return ((ids[0] // gpn, 1),)
    out: dict[int, int] = {}
    for g in ids:
        node = g // gpn
        out[node] = out.get(node, 0) + 1
    return tuple(out.items())


class NodeReplay:
    """A scratch copy of an allocator's per-node free counts on which releases (and their undoing) are replayed,
    to ask whether a shape would fit after some jobs end or are stopped; the allocator itself is not touched."""

    __slots__ = ("_free", "_gpn", "_node_free", "counts")

    def __init__(self, alloc: NodeAllocator) -> None:
        """The allocator's state now."""
        self.counts = alloc.counts()
        self._gpn = alloc.gpn
        self._node_free = alloc.node_free
        self._free: dict[int, int] = {}
        """Node changed by the replay → its free GPUs in the replay."""

    def give(self, ids: tuple[int, ...], sign: int = 1) -> None:
        """Free the GPUs ``ids`` (held now) in the replay; ``sign=-1`` takes them back."""
        gpn, counts, free, node_free = self._gpn, self.counts, self._free, self._node_free
        for g in ids:
            node = g // gpn
            f = free.get(node)
            if f is None:
                f = len(node_free[node])
            counts[f] -= 1
            f += sign
            counts[f] += 1
            free[node] = f

    def give_spans(self, spans: Spans) -> None:
        """Free ``(node, GPUs)`` spans (held now) in the replay."""
        counts, free, node_free = self.counts, self._free, self._node_free
        for node, k in spans:
            f = free.get(node)
            if f is None:
                f = len(node_free[node])
            counts[f] -= 1
            counts[f + k] += 1
            free[node] = f + k

    def shape(self) -> int:
        """GPUs a packed job could get on the replayed nodes (``W * gpn + mp``, see the module docstring)."""
        counts, gpn = self.counts, self._gpn
        mp = gpn - 1
        while mp > 0 and not counts[mp]:
            mp -= 1
        return counts[gpn] * gpn + mp

    def fits(self, need: int, per: int) -> bool:
        """True when a job of ``need`` GPUs and shape ``per`` would fit the replayed nodes."""
        return fits_counts(self.counts, self._gpn, need, per)
