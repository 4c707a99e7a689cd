"""Failures and capacity over time: down clusters requeue their jobs, energised buildings and starting
contracts are used from that instant, the site power cap holds."""

from datetime import date

from engine_builders import DAY, FleetBuilder, assert_consistent, make_job, scheduler


def test_a_cluster_going_down_requeues_its_jobs_with_checkpointed_progress() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).cluster("b", nodes=1).build())
    s.submit(make_job("j").gpus(8).ckpt(100).runs(1000).build())
    (start,) = s.cycle(0.0).starts
    stops = s.set_cluster_status(start.cluster_id, "down", 250.0)
    assert [(p.job_id, p.reason, p.progress_s) for p in stops] == [("j", "cluster_down", 200.0)]
    other = "b" if start.cluster_id == "a" else "a"
    assert [x.cluster_id for x in s.cycle(250.0).starts] == [other]
    assert s.free_gpus()[start.cluster_id] == 8
    assert_consistent(s)


def test_capacity_of_an_energised_building_is_used_from_that_instant() -> None:
    fleet = (
        FleetBuilder()
        .owned(power_mw=100.0, pue=1.25)
        .building("b1", mw=10.0, on=date(2025, 1, 3))
        .cluster("late", nodes=2, building="b1")
        .build()
    )
    s = scheduler(fleet)
    s.submit(make_job("j").gpus(8).runs(10).build())
    res = s.cycle(0.0)
    assert res.starts == [] and res.next_wakeup_s == 2 * DAY
    assert [x.job_id for x in s.cycle(2 * DAY).starts] == ["j"]


def test_the_site_power_cap_limits_running_gpus() -> None:
    # 0.007 MW of IT power: 10 GPUs of 700 W; facility cap = 0.007 MW × PUE 1.5.
    fleet = (
        FleetBuilder()
        .owned(power_mw=10.0, pue=1.5)
        .building("b1", mw=0.007, on=date(2024, 1, 1))
        .cluster("a", nodes=2, building="b1")
        .build()
    )
    s = scheduler(fleet)
    for i in range(3):
        s.submit(make_job(f"j{i}").gpus(4).runs(10).build())
    res = s.cycle(0.0)
    assert len(res.starts) == 2, "12 GPUs × 700 W × 1.5 would exceed 10.5 kW"
    assert s.site_power_draw_w()["own-site"] == 8 * 700 * 1.5
    assert_consistent(s)


def test_a_contract_that_ends_takes_its_cluster_offline_and_requeues() -> None:
    fleet = (
        FleetBuilder()
        .cloud("c")
        .cluster("rented", nodes=1, online_until=date(2025, 1, 1))
        .cluster("spare", nodes=1, online_from=date(2025, 1, 2))
        .build()
    )
    s = scheduler(fleet)
    s.submit(make_job("j").gpus(8).ckpt(DAY / 4).runs(3 * DAY).build())
    assert [x.cluster_id for x in s.cycle(0.0).starts] == ["rented"]
    res = s.cycle(DAY)
    assert [(p.job_id, p.reason, p.progress_s) for p in res.preemptions] == [("j", "cluster_offline", DAY)]
    assert [x.cluster_id for x in res.starts] == ["spare"]


def test_restore_running_rebuilds_state() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build())
    s.restore_running(make_job("r").gpus(4).runs(100).build(), "a", (0, 1, 2, 3), 0.0)
    s.submit(make_job("n").gpus(4).runs(100).build())
    (start,) = s.cycle(1.0).starts
    assert set(start.gpu_ids) == {4, 5, 6, 7}
    s.cancel("r")
    assert s.free_gpus() == {"a": 4}
    assert_consistent(s)
