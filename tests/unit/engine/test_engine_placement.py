"""Placement: constraints filter clusters; prepaid and owned capacity first, then the cheapest, then best fit."""

from datetime import date

from engine_builders import DAY, FleetBuilder, make_job, scheduler


def _fleet():
    return (
        FleetBuilder()
        .cloud("cheap", region="eu")
        .cluster("cheap-a", nodes=2, price=1.0)
        .cloud("pricey", region="us")
        .cluster("pricey-a", nodes=2, price=5.0, contract="res")
        .contract("res", "pricey", "reserved", date(2025, 1, 1), date(2025, 1, 10), price=4.0, gpus=16)
        .build()
    )


def test_reserved_capacity_is_used_before_cheaper_on_demand_and_reports_its_contract() -> None:
    s = scheduler(_fleet())
    s.submit(make_job("a").gpus(8).runs(10).build())
    (start,) = s.cycle(0.0).starts
    assert (start.cluster_id, start.contract_id, start.price_usd_per_gpu_hour) == ("pricey-a", "res", 4.0)


def test_after_the_contract_ends_the_cheapest_cluster_wins() -> None:
    s = scheduler(_fleet())
    s.submit(make_job("a").gpus(8).at(11 * DAY).runs(10).build())
    (start,) = s.cycle(11 * DAY).starts
    assert (start.cluster_id, start.contract_id, start.price_usd_per_gpu_hour) == ("cheap-a", None, 1.0)


def test_fifo_is_first_fit_and_constraints_filter_clusters() -> None:
    s = scheduler(_fleet(), "fifo")
    s.submit(make_job("a").gpus(8).runs(10).build())
    s.submit(make_job("b").gpus(4).only(regions=("us",)).runs(10).build())
    s.submit(make_job("c").gpus(4).only(providers=("nobody",)).runs(10).build())
    res = s.cycle(0.0)
    assert {x.job_id: x.cluster_id for x in res.starts} == {"a": "cheap-a", "b": "pricey-a"}
    assert [(r.job_id, r.reason) for r in res.rejections] == [("c", "no_allowed_cluster")]


def test_best_fit_keeps_whole_clusters_for_gangs() -> None:
    fleet = FleetBuilder().owned().cluster("small", nodes=1).cluster("big", nodes=2).build()
    s = scheduler(fleet)
    s.submit(make_job("one").gpus(2).runs(10).build())
    s.submit(make_job("gang").gpus(16).runs(10).build())
    assert {x.job_id: x.cluster_id for x in s.cycle(0.0).starts} == {"one": "small", "gang": "big"}


def test_gpu_model_constraint() -> None:
    fleet = FleetBuilder().owned().cluster("h", model="H100-SXM").cluster("b", model="B200").build()
    s = scheduler(fleet)
    s.submit(make_job("x").gpus(8, "B200").runs(10).build())
    assert [x.cluster_id for x in s.cycle(0.0).starts] == ["b"]
