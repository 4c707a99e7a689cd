"""Admission: quotas per GPU class, borrowing inside a cohort with limits, rejections that can never fit."""

from engine_builders import FleetBuilder, make_job, scheduler


def _fleet(borrow: int | None = None):
    return (
        FleetBuilder()
        .owned()
        .cluster("a", nodes=4, gpn=8)
        .queue("ml", {"*": 8}, cohort="c", borrow=borrow)
        .queue("web", {"*": 16}, cohort="c")
        .queue("solo", {"H100-SXM": 8})
        .build()
    )


def test_a_queue_borrows_idle_quota_from_its_cohort() -> None:
    s = scheduler(_fleet())
    s.submit(make_job("big").queue("ml").gpus(20).runs(100).build())
    res = s.cycle(0.0)
    assert [x.job_id for x in res.starts] == ["big"]


def test_the_borrowing_limit_holds_and_the_cohort_total_caps_borrowing() -> None:
    s = scheduler(_fleet(borrow=4))
    s.submit(make_job("a").queue("ml").gpus(8).runs(100).build())
    s.submit(make_job("b").queue("ml").gpus(4).runs(100).build())
    s.submit(make_job("c").queue("ml").gpus(1).runs(100).build())
    started = {x.job_id for x in s.cycle(0.0).starts}
    assert started == {"a", "b"}, "8 nominal + 4 borrowed; the 13th GPU exceeds the limit"
    s.submit(make_job("w").queue("web").gpus(12).runs(100).build())
    assert {x.job_id for x in s.cycle(1.0).starts} == {"w"}, "the lender still gets its own quota"
    s.submit(make_job("w2").queue("web").gpus(8).runs(100).build())
    assert s.cycle(2.0).starts == [], "cohort total 24 GPUs is used up (12 + 12)"


def test_quota_without_cohort_and_jobs_that_can_never_fit_are_rejected() -> None:
    s = scheduler(_fleet())
    s.submit(make_job("x").queue("solo").gpus(9).build())
    s.submit(make_job("y").queue("nope").build())
    s.submit(make_job("z").queue("web").gpus(33).build())
    s.submit(make_job("m").queue("web").gpus(1, "B200").build())
    s.submit(make_job("zero").queue("web").gpus(0).build())
    reasons = {r.job_id: r.reason for r in s.cycle(0.0).rejections}
    assert reasons == {
        "x": "exceeds_quota",
        "y": "unknown_queue",
        "z": "no_cluster_fits",
        "m": "gpu_model_unavailable",
        "zero": "invalid_request",
    }


def test_finishing_gives_quota_back() -> None:
    s = scheduler(_fleet())
    s.submit(make_job("a").queue("solo").gpus(8).runs(10).build())
    s.submit(make_job("b").queue("solo").gpus(8).runs(10).build())
    assert [x.job_id for x in s.cycle(0.0).starts] == ["a"]
    s.finish("a")
    assert [x.job_id for x in s.cycle(10.0).starts] == ["b"]
