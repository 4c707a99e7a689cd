"""Node-aware GPU allocation: whole nodes for gangs, best fit for small jobs, ids never handed out twice."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.engine.alloc import NodeAllocator


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


def test_spreads_when_no_single_node_holds_the_rest() -> None:
    a = NodeAllocator(nodes=2, gpus_per_node=4)
    first = a.allocate(3)
    a.allocate(3)
    a.release(first[:1])
    ids = a.allocate(3)
    assert len(set(ids)) == 3 and a.free == 0
    assert {g // 4 for g in ids} == {0, 1}, "3 GPUs from a node with 2 free and a node with 1 free"


def test_take_rebuilds_state_and_refuses_a_held_gpu() -> None:
    a = NodeAllocator(nodes=3, gpus_per_node=8)
    a.take((17, 18))
    assert a.free == 22
    with pytest.raises(ValueError, match="already held"):
        a.take((18,))
    with pytest.raises(ValueError, match="outside"):
        a.take((24,))
    assert 17 not in a.allocate(22)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 20)), max_size=40))
def test_never_hands_out_a_gpu_twice(ops: list[tuple[bool, int]]) -> None:
    a = NodeAllocator(nodes=5, gpus_per_node=4)
    held: list[tuple[int, ...]] = []
    for alloc, n in ops:
        if alloc and n <= a.free:
            ids = a.allocate(n)
            flat = {g for h in held for g in h}
            assert len(ids) == n and not flat & set(ids) and all(0 <= g < 20 for g in ids)
            held.append(ids)
        elif held:
            a.release(held.pop(n % len(held)))
        assert a.free == 20 - sum(len(h) for h in held)


def test_a_refused_take_changes_nothing() -> None:
    alloc = NodeAllocator(2, 8)
    alloc.take((0, 1))
    for bad in ((2, 3, 16), (4, 4), (5, 1)):  # out of the cluster, twice, already held: each after good ids
        with pytest.raises(ValueError):
            alloc.take(bad)
        assert alloc.free == 14
    assert sorted(alloc.allocate(14)) == list(range(2, 16))  # every GPU but the two taken is still free
