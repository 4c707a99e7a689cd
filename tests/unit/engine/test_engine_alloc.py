"""Node-aware GPU allocation: whole nodes for gangs, best fit for small jobs, ids never handed out twice."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.engine.alloc import PACKED, SPREAD, NodeAllocator, NodeReplay


def test_gang_takes_whole_nodes_and_small_jobs_pack_onto_a_partly_used_node() -> None:
    a = NodeAllocator(nodes=4, gpus_per_node=8)
    gang = a.allocate(16)
    assert sorted({g // 8 for g in gang}) == [0, 1]
    one = a.allocate(1)
    two = a.allocate(2)
    assert {g // 8 for g in one + two} == {2}, "small jobs share one partly used node"
    whole = a.allocate(8)
    assert {g // 8 for g in whole} == {3}, "the untouched node stays whole for the next gang"
    assert a.free == 32 - 27


def test_a_spread_job_spreads_when_no_single_node_holds_the_rest() -> None:
    a = NodeAllocator(nodes=2, gpus_per_node=4)
    first = a.allocate(3)
    a.allocate(3)
    a.release(first[:1])
    assert a.free == 3 and not a.fits(3), "3 GPUs free on two nodes: a packed 3-GPU job does not fit"
    assert a.fits(3, SPREAD)
    ids = a.allocate(3, SPREAD)
    assert len(set(ids)) == 3 and a.free == 0
    assert {g // 4 for g in ids} == {0, 1}, "3 GPUs from a node with 2 free and a node with 1 free"


def test_shape_counts_whole_nodes_and_the_best_partly_free_node() -> None:
    a = NodeAllocator(nodes=4, gpus_per_node=8)
    assert a.shape == 32
    a.allocate(3)  # node 0: 5 free
    assert a.shape == 3 * 8 + 5
    a.allocate(8)  # node 1 whole
    a.allocate(8)  # node 2 whole
    assert a.shape == 8 + 5 and a.fits(13) and not a.fits(14)
    a.allocate(6)  # node 3 (node 0 holds only 5): 2 free there
    assert a.shape == 5 and a.free == 7 and not a.fits(6) and a.fits(6, SPREAD)


def test_a_large_packed_job_takes_whole_nodes_plus_the_best_fitting_node() -> None:
    a = NodeAllocator(nodes=4, gpus_per_node=8)
    a.allocate(5)  # node 0: 3 free
    ids = a.allocate(19)  # 2 whole nodes + 3 on node 0 (the tightest node holding 3)
    nodes = [g // 8 for g in ids]
    assert sorted(set(nodes)) == [0, 1, 2] and nodes.count(0) == 3
    assert a.shape == 8 and a.free == 8


def test_a_nodes_shaped_job_gets_exactly_its_nodes() -> None:
    a = NodeAllocator(nodes=4, gpus_per_node=8)
    a.allocate(4)  # node 0: 4 free
    a.allocate(6)  # node 1: 2 free
    assert a.fits(8, 4) and a.fits(12, 4) and not a.fits(16, 4) and not a.fits(16, 16)
    ids = a.allocate(12, 4)  # 3 nodes × 4: node 0 (tightest), then the two untouched ones
    per_node: dict[int, int] = {}
    for g in ids:
        per_node[g // 8] = per_node.get(g // 8, 0) + 1
    assert per_node == {0: 4, 2: 4, 3: 4}


def test_replay_frees_nodes_without_touching_the_allocator() -> None:
    a = NodeAllocator(nodes=2, gpus_per_node=4)
    x = a.allocate(2, SPREAD)
    y = a.allocate(2, SPREAD)
    z = a.allocate(4)
    assert not a.fits(4)
    r = NodeReplay(a)
    r.give(z)
    assert r.fits(4, PACKED) and r.shape() == 4
    r.give(z, -1)
    r.give(x)
    assert not r.fits(4, PACKED) and r.fits(2, PACKED)
    assert a.free == 0 and a.shape == 0, "the allocator is unchanged"
    del y


def test_take_rebuilds_state_and_refuses_a_held_gpu() -> None:
    a = NodeAllocator(nodes=3, gpus_per_node=8)
    a.take((17, 18))
    assert a.free == 22
    with pytest.raises(ValueError, match="already held"):
        a.take((18,))
    with pytest.raises(ValueError, match="outside"):
        a.take((24,))
    assert 17 not in a.allocate(22)


def _shape_holds(ids: tuple[int, ...], gpn: int, per: int) -> bool:
    """``ids`` are one node's (at most gpn GPUs), or whole nodes plus one node (packed), or ``n // per`` nodes of
    ``per`` each (nodes-shaped)."""
    per_node: dict[int, int] = {}
    for g in ids:
        per_node[g // gpn] = per_node.get(g // gpn, 0) + 1
    counts = sorted(per_node.values(), reverse=True)
    if per > 0:
        return counts == [per] * (len(ids) // per)
    whole, rest = divmod(len(ids), gpn)
    return counts == [gpn] * whole + ([rest] if rest else [])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(1, 20), st.sampled_from([SPREAD, PACKED, 1, 2, 4])), max_size=40)
)
def test_never_hands_out_a_gpu_twice_and_keeps_every_shape(ops: list[tuple[int, int, int]]) -> None:
    a = NodeAllocator(nodes=5, gpus_per_node=4)
    held: list[tuple[int, ...]] = []
    for op, n, per in ops:
        if per > 0:
            n = per * max(1, n // per)
        if op and a.fits(n, per):
            assert n <= a.free
            ids = a.allocate(n, per)
            flat = {g for h in held for g in h}
            assert len(ids) == n and not flat & set(ids) and all(0 <= g < 20 for g in ids)
            if per != SPREAD:
                assert _shape_holds(ids, 4, per), (ids, per)
            held.append(ids)
        elif held:
            a.release(held.pop(n % len(held)))
        assert a.free == 20 - sum(len(h) for h in held)
        # shape is exact: a packed job fits iff its nodes are free (checked against a brute-force count)
        used = {g for h in held for g in h}
        free_on = [sum(1 for s in range(4) if node * 4 + s not in used) for node in range(5)]
        whole = free_on.count(4)
        mp = max([f for f in free_on if f < 4], default=0)
        assert a.shape == whole * 4 + mp


def test_a_refused_take_changes_nothing() -> None:
    alloc = NodeAllocator(2, 8)
    alloc.take((0, 1))
    for bad in ((2, 3, 16), (4, 4), (5, 1)):  # out of the cluster, twice, already held: each after good ids
        with pytest.raises(ValueError):
            alloc.take(bad)
        assert alloc.free == 14
    assert sorted(alloc.allocate(14)) == list(range(2, 16))  # every GPU but the two taken is still free
