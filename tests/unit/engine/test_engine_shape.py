"""Node-shaped placement: a job runs on one node, on whole nodes plus one, on the nodes it asks for, or spread when it
says it may; feasibility, backfill, preemption, the failure memo and restarts all count nodes of that shape."""

import math

import pytest
from engine_builders import FleetBuilder, assert_consistent, make_job, scheduler, shape_holds
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.engine import Reason
from stargate.engine.alloc import PACKED, SPREAD, NodeAllocator, NodeReplay, node_spans
from stargate.engine.backfill import shadow_on


def _scattered(policy: str = "stargate"):
    """One cluster of 4 nodes × 4 GPUs with 3 GPUs held on every node (1 free on each: 4 free in all)."""
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=4, gpn=4).build(), policy)
    for i in range(4):
        s.submit(make_job(f"h{i}").gpus(3).runs(1000).prio(0).build())
    s.cycle(0.0)
    assert s.free_gpus() == {"a": 4}
    return s


def test_a_job_of_at_most_one_node_never_spreads_over_partly_free_nodes() -> None:
    s = _scattered()
    s.submit(make_job("four").gpus(4).runs(10).at(1).build())
    s.submit(make_job("two").gpus(2).runs(10).at(1).build())
    res = s.cycle(1.0)
    assert res.starts == [], "4 GPUs are free, but one on each node: neither a 4- nor a 2-GPU job fits one node"
    s.submit(make_job("one").gpus(1).runs(10).at(2).build())
    assert [x.job_id for x in s.cycle(2.0).starts] == ["one"]
    assert_consistent(s)


def test_a_spread_job_takes_any_free_gpus() -> None:
    s = _scattered()
    s.submit(make_job("four").gpus(4).runs(10).at(1).shape(spread=True).build())
    res = s.cycle(1.0)
    assert [x.job_id for x in res.starts] == ["four"]
    assert {g // 4 for g in res.starts[0].gpu_ids} == {0, 1, 2, 3}


def test_a_large_job_takes_whole_nodes_plus_one_node_for_the_rest() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=4, gpn=8).build())
    s.submit(make_job("small").gpus(5).runs(1000).build())
    s.cycle(0.0)
    s.submit(make_job("big").gpus(19).runs(10).at(1).build())
    (start,) = s.cycle(1.0).starts
    assert shape_holds(start.gpu_ids, 8)
    assert sum(1 for g in start.gpu_ids if g // 8 == 0) == 3, "the remainder goes to the tightest node (node 0)"
    s.submit(make_job("gang").gpus(9).runs(10).at(2).build())
    assert s.cycle(2.0).starts == [], "8 GPUs free on one whole node: a 9-GPU job needs 2 nodes' worth"
    assert_consistent(s)


def test_a_job_asking_for_nodes_gets_that_many_nodes() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=4, gpn=8).build(), backfill=False)
    s.submit(make_job("x").gpus(8).runs(10).shape(nodes=4).build())
    (start,) = s.cycle(0.0).starts
    assert sorted(g // 8 for g in start.gpu_ids) == [0, 0, 1, 1, 2, 2, 3, 3]
    s.submit(make_job("y").gpus(28).runs(10).at(1).shape(nodes=4).build())
    assert s.cycle(1.0).starts == [], "28 GPUs free, 6 on each node: 4 nodes × 7 GPUs do not fit"
    s.submit(make_job("z").gpus(24).runs(10).at(2).shape(nodes=4).build())
    assert [x.job_id for x in s.cycle(2.0).starts] == ["z"]
    assert_consistent(s)


def test_a_shape_no_cluster_can_hold_is_rejected_at_once() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=4, gpn=8).build())
    s.submit(make_job("wide").gpus(16).shape(nodes=1).build())  # 16 GPUs on one 8-GPU node
    s.submit(make_job("many").gpus(5).shape(nodes=5).build())  # 5 nodes of a 4-node cluster
    s.submit(make_job("odd").gpus(6).shape(nodes=4).build())  # 6 GPUs cannot split evenly over 4 nodes
    reasons = {r.job_id: r.reason for r in s.cycle(0.0).rejections}
    assert reasons == {
        "wide": Reason.NO_CLUSTER_FITS,
        "many": Reason.NO_CLUSTER_FITS,
        "odd": Reason.INVALID_REQUEST,
    }


def test_the_memo_lets_a_job_of_another_shape_try_where_a_bigger_one_failed() -> None:
    s = _scattered()
    s.submit(make_job("packed").gpus(2).runs(10).at(1).build())
    s.submit(make_job("spread").gpus(3).runs(10).at(2).shape(spread=True).build())
    res = s.cycle(2.0)
    assert [x.job_id for x in res.starts] == ["spread"], "a packed 2-GPU job failed; a spread 3-GPU one still fits"


def test_clusters_with_different_node_sizes_are_judged_by_their_own_nodes() -> None:
    s = scheduler(FleetBuilder().owned().cluster("small", nodes=4, gpn=4).cluster("big", nodes=1, gpn=8).build())
    s.submit(make_job("eight").gpus(8).runs(10).shape(nodes=1).build())
    (start,) = s.cycle(0.0).starts
    assert start.cluster_id == "big", "one node of 8 GPUs exists only on the 8-GPU cluster"
    s.submit(make_job("six").gpus(6).runs(10).at(1).build())
    (start,) = s.cycle(1.0).starts
    assert start.cluster_id == "small" and shape_holds(start.gpu_ids, 4), "4 + 2 on the 4-GPU nodes"
    assert sorted(g // 4 for g in start.gpu_ids) == [0, 0, 0, 0, 1, 1]


def test_backfill_shadow_waits_for_a_whole_node_not_a_gpu_count() -> None:
    alloc = NodeAllocator(nodes=2, gpus_per_node=4)
    gpu_ids = [alloc.allocate(2), alloc.allocate(2), alloc.allocate(2), alloc.allocate(2)]
    # job 0 and 1 on node 0, 2 and 3 on node 1: jobs 0 and 2 end first (4 GPUs free, 2 per node), then job 1
    running = [(100.0, 0, 2), (200.0, 2, 2), (300.0, 1, 2), (400.0, 3, 2)]
    assert {g // 4 for g in gpu_ids[0] + gpu_ids[1]} == {0}
    assert shadow_on(running, 0.0, 4) == (200.0, 0.0), "by GPU count (spread) the head fits at 200 s"
    spans = {j: node_spans(ids, 4) for j, ids in enumerate(gpu_ids)}
    shadow, extra = shadow_on(running, 0.0, 4, PACKED, alloc, spans)
    assert shadow == 300.0, "a packed 4-GPU head needs node 0 whole: 300 s"
    assert extra == 0.0, "6 GPUs free then, but only whole nodes are counted for long jobs' room (conservative)"
    assert alloc.free == 0, "the replay leaves the allocator alone"


def test_backfill_reservation_uses_the_node_shadow() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=2, gpn=4).build())
    for i, (gpus, end) in enumerate(((2, 100), (2, 300), (2, 200), (1, 400))):
        s.submit(make_job(f"r{i}").gpus(gpus).runs(end).build())
        s.cycle(0.0)  # one at a time: r0, r1 on node 0; r2, r3 on node 1 (1 GPU left free there)
    assert {jid: {g // 4 for g in ids} for jid, (_, ids) in s.running_jobs().items()} == {
        "r0": {0},
        "r1": {0},
        "r2": {1},
        "r3": {1},
    }
    s.submit(make_job("head").gpus(4).runs(1000).at(1).build())
    s.cycle(1.0)
    resv = s.backfill.resv
    assert resv is not None and math.isfinite(resv.min_shadow)
    assert resv.min_shadow == 300.0, "node 0 (r0, r1) is whole at 300 s; by GPU count (1 + 2 + 2) it would be 200 s"


def test_preemption_frees_a_whole_node_not_just_enough_gpus() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=2, gpn=4).build())
    for i in range(4):
        s.submit(make_job(f"low{i}").gpus(2).prio(100).runs(10_000).at(float(i)).build())
        s.cycle(float(i))
    # low0, low1 on node 0; low2, low3 on node 1; the most recently started low3 is the first victim by order
    s.submit(make_job("vip").gpus(4).prio(1000).runs(10).at(10).build())
    res = s.cycle(10.0)
    stopped = sorted(p.job_id for p in res.preemptions)
    assert [x.job_id for x in res.starts] == ["vip"]
    assert stopped == ["low2", "low3"], "both jobs of one node, no job on the other"
    assert shape_holds(res.starts[0].gpu_ids, 4)
    assert_consistent(s)


def test_preemption_stops_nobody_who_does_not_help_the_shape() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=2, gpn=4).build())
    s.submit(make_job("keep").gpus(3).prio(2000, preemptible=False).runs(10_000).build())  # node 0
    s.cycle(0.0)
    s.submit(make_job("a").gpus(1).prio(100).runs(10_000).at(1).build())  # node 0 (best fit)
    s.cycle(1.0)
    s.submit(make_job("b").gpus(3).prio(100).runs(10_000).at(2).build())  # node 1
    s.cycle(2.0)
    s.submit(make_job("vip").gpus(4).prio(1000).runs(10).at(3).build())
    res = s.cycle(3.0)
    assert [p.job_id for p in res.preemptions] == ["b"], "stopping 'a' would free a GPU on node 0, never a node"
    assert [x.job_id for x in res.starts] == ["vip"]


def test_restore_accepts_a_spread_placement_made_under_the_old_rule() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=2, gpn=4).build())
    s.restore_running(make_job("old").gpus(4).runs(100).build(), "a", (0, 1, 4, 5), 0.0)
    assert s.running_jobs() == {"old": ("a", (0, 1, 4, 5))}
    s.submit(make_job("next").gpus(2).runs(10).build())
    (start,) = s.cycle(1.0).starts
    assert len({g // 4 for g in start.gpu_ids}) == 1
    with pytest.raises(ValueError, match="already held"):
        s.restore_running(make_job("dup").gpus(1).build(), "a", (5,), 0.0)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 12), st.sampled_from([SPREAD, PACKED]), st.floats(1, 100)), max_size=12),
    st.integers(1, 16),
)
def test_the_packed_shadow_matches_a_plain_replay(jobs: list[tuple[int, int, float]], need: int) -> None:
    alloc = NodeAllocator(nodes=4, gpus_per_node=4)
    running: list[tuple[float, int, int]] = []
    spans = {}
    for j, (g, per, end) in enumerate(jobs):
        if alloc.fits(g, per):
            ids = alloc.allocate(g, per)
            spans[j] = node_spans(ids, 4)
            running.append((end, j, g))
    running.sort()
    have = float(alloc.free)
    shadow, _ = shadow_on(running, have, need, PACKED, alloc, spans)
    # the reference: replay every release on a plain copy and ask the generic rule after each
    expected = -math.inf if alloc.fits(need) else math.inf
    if expected > -math.inf:
        replay, left = NodeReplay(alloc), have
        for end, j, g in running:
            replay.give_spans(spans[j])
            left += g
            if left >= need and replay.fits(need, PACKED):
                expected = end
                break
    assert shadow == expected
