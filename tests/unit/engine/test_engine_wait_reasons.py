"""Why a pending job waits (stargate.engine.waits): each reason comes out on a hand-built fleet, with its detail; and,
for any fleet and jobs, every pending job after a cycle has exactly one reason, a ``capacity`` one truly fitting no
acceptable cluster's free GPUs."""

from datetime import date

from engine_builders import FleetBuilder, make_job, scheduler
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.domain.reasons import WaitReason
from stargate.engine import Scheduler
from stargate.engine.alloc import shape_of
from stargate.engine.jobs import PENDING
from stargate.engine.waits import PUBLIC


def _why(s: Scheduler, job: str) -> tuple[WaitReason, str]:
    found = s.wait_reasons()[job]
    return found.reason, found.detail


def _counts(s: Scheduler) -> dict[WaitReason, int]:
    out: dict[WaitReason, int] = {}
    for code, n in enumerate(s.waits.counts):
        if n:
            out[PUBLIC[code]] = out.get(PUBLIC[code], 0) + n
    return out


def test_quota_held_by_another_job_of_the_cohort() -> None:
    fleet = (
        FleetBuilder()
        .owned()
        .cluster("a", nodes=4)
        .queue("ml", {"H100-SXM": 8}, cohort="lab", borrow=8)
        .queue("cv", {"H100-SXM": 8}, cohort="lab", borrow=0)
        .build()
    )
    s = scheduler(fleet)
    s.submit(make_job("ml-run").gpus(8).queue("ml").runs(100).build())
    s.submit(make_job("cv-run").gpus(8).queue("cv").runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("ml-2").gpus(4).queue("ml").at(1).runs(100).build())  # would borrow 4: cv holds its 8
    assert s.cycle(1.0).starts == []
    reason, detail = _why(s, "ml-2")
    assert reason is WaitReason.QUOTA
    assert detail == (
        "H100-SXM: queue ml holds 8 GPUs of a 8 GPU quota, borrowing limit 8 GPUs, cohort lab holds 16 of 16 GPUs; "
        "asks 4 GPUs"
    )
    assert _counts(s) == {WaitReason.QUOTA: 1}


def test_capacity_when_the_only_cluster_is_full() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).cluster("b", nodes=1).build())
    s.submit(make_job("r1").gpus(6).runs(100).build())
    s.submit(make_job("r2").gpus(4).runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("w").gpus(6).at(1).runs(100).build())
    assert s.cycle(1.0).starts == []
    assert _why(s, "w") == (WaitReason.CAPACITY, "largest free block on its 2 clusters: 4 GPUs (b); asks 6 GPUs")


def test_power_when_the_site_cap_forbids_free_gpus() -> None:
    # 0.007 MW of IT power: 10 GPUs of 700 W; 8 run, 8 free on the nodes but power for 2 only.
    fleet = (
        FleetBuilder()
        .owned(power_mw=10.0, pue=1.5)
        .building("b1", mw=0.007, on=date(2024, 1, 1))
        .cluster("a", nodes=2, building="b1")
        .build()
    )
    s = scheduler(fleet)
    s.submit(make_job("r").gpus(8).runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("w").gpus(4).at(1).runs(100).build())
    assert s.cycle(1.0).starts == []
    assert _why(s, "w") == (
        WaitReason.POWER,
        "a has 8 GPUs free but the power cap of site own-site leaves room for 2; asks 4 GPUs",
    )


def test_clusters_down_names_them() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a").cluster("b").build())
    s.set_cluster_status("a", "down", 0.0)
    s.set_cluster_status("b", "down", 0.0)
    s.submit(make_job("w").gpus(2).runs(100).build())
    assert s.cycle(0.0).starts == []
    reason, detail = _why(s, "w")
    assert (reason, detail, s.wait_reasons()["w"].clusters) == (
        WaitReason.CLUSTERS_DOWN,
        "waits for a (down); b (down)",
        ("a", "b"),
    )
    s.set_cluster_status("b", "up", 5.0)
    assert [x.job_id for x in s.cycle(5.0).starts] == ["w"]
    assert s.wait_reasons() == {} and _counts(s) == {}


def test_offline_before_its_cluster_comes_online() -> None:
    s = scheduler(FleetBuilder().owned().cluster("later", online_from=date(2025, 1, 3)).build())
    s.submit(make_job("w").gpus(8).runs(100).build())
    assert s.cycle(0.0).starts == []
    assert _why(s, "w") == (WaitReason.OFFLINE, "waits for later (online from 2025-01-03T00:00:00Z)")


def test_a_job_behind_a_higher_priority_gang_waits_for_order() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build())
    s.submit(make_job("A").gpus(6).prio(0, preemptible=False).runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("gang").gpus(8).prio(10).at(10).runs(50).build())  # blocked: reserved at t=100
    s.submit(make_job("long").gpus(2).at(10).runs(500).build())  # 2 GPUs free, but it would delay the gang
    assert s.cycle(10.0).starts == []
    assert _why(s, "gang")[0] is WaitReason.CAPACITY
    assert _why(s, "long") == (
        WaitReason.ORDER,
        "GPUs kept for a job ahead of it in policy order (its reservation); asks 2 GPUs",
    )


def test_a_job_the_cycle_did_not_reach_waits_for_order() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=2).build(), "fifo")  # strict FIFO: a blocked head closes
    s.submit(make_job("A").gpus(12).runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("head").gpus(8).at(1).runs(50).build())
    s.submit(make_job("small").gpus(2).at(2).runs(50).build())
    assert s.cycle(2.0).starts == []
    assert _why(s, "head")[0] is WaitReason.CAPACITY
    assert _why(s, "small")[0] is WaitReason.ORDER
    assert "did not reach it" in _why(s, "small")[1]


def test_a_started_or_cancelled_job_leaves_the_counts() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build())
    s.submit(make_job("r").gpus(8).runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("w1").gpus(8).at(1).runs(100).build())
    s.submit(make_job("w2").gpus(8).at(1).runs(100).build())
    s.cycle(1.0)
    assert _counts(s) == {WaitReason.CAPACITY: 2}
    s.cancel("w2")
    assert _counts(s) == {WaitReason.CAPACITY: 1}
    s.finish("r")
    s.cycle(100.0)
    assert _counts(s) == {} and s.wait_reasons() == {}


# -- properties ----------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    nodes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    down=st.lists(st.booleans(), min_size=3, max_size=3),
    jobs=st.lists(
        st.tuples(st.sampled_from([1, 2, 4, 8, 12, 16]), st.sampled_from(["ml", "cv"]), st.integers(0, 2)),
        min_size=1,
        max_size=25,
    ),
    policy=st.sampled_from(["stargate", "fifo", "srtf", "las"]),
)
def test_every_pending_job_has_one_reason_and_capacity_means_no_fit(
    nodes: list[int], down: list[bool], jobs: list[tuple[int, str, int]], policy: str
) -> None:
    b = FleetBuilder().owned()
    for i, n in enumerate(nodes):
        b = b.cluster(f"c{i}", nodes=n)
    fleet = b.queue("ml", {"H100-SXM": 12}, cohort="all", borrow=4).queue("cv", {"H100-SXM": 8}, cohort="all").build()
    s = scheduler(fleet, policy)
    for i in range(len(nodes)):
        if down[i]:
            s.set_cluster_status(f"c{i}", "down", 0.0)
    for k, (g, q, at) in enumerate(jobs):
        s.submit(make_job(f"j{k}").gpus(g).queue(q).at(float(at)).runs(50.0 + 7 * k).build())
        if k % 5 == 4:
            s.cycle(float(at))
    s.cycle(3.0)
    t = s.jobs
    pending = {t.ids[j] for j in range(len(t.ids)) if t.state[j] == PENDING}
    waits = s.wait_reasons()
    assert set(waits) == pending
    assert sum(s.waits.counts) == len(pending)
    occ = s.occupancy
    for job_id, wait in waits.items():
        j = t.ix[job_id]
        if wait.reason is WaitReason.CAPACITY:
            usable = s._usable(j, 3.0)
            per = shape_of(t.gpus[j], None, False)
            for c in range(s.index.n):
                if usable[c] and s.adm.fits(t.queue[j], s.index.model_of[c], t.gpus[j]):
                    assert not (occ.avail[c] >= t.gpus[j] and occ.alloc[c].fits(t.gpus[j], per)), (job_id, c)
