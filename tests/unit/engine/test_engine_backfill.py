"""Backfill: small jobs fill holes without delaying the reserved start of a blocked queue head."""

from engine_builders import FleetBuilder, make_job, scheduler


def _busy(policy: str):
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build(), policy)
    s.submit(make_job("A").gpus(6).runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("B").gpus(8).at(10).runs(50).build())
    s.cycle(10.0)
    return s


def test_a_short_job_backfills_but_a_long_one_waits_behind_the_reservation() -> None:
    s = _busy("stargate")
    s.submit(make_job("C").gpus(2).at(20).runs(30).build())
    s.submit(make_job("D").gpus(2).at(20).runs(200).build())
    assert [x.job_id for x in s.cycle(20.0).starts] == ["C"], "C ends at 50 < reserved start 100; D would not"
    s.finish("C")
    assert s.cycle(50.0).starts == []
    s.finish("A")
    assert [x.job_id for x in s.cycle(100.0).starts] == ["B"], "the head starts exactly at its reservation"


def test_fifo_does_not_backfill() -> None:
    s = _busy("fifo")
    s.submit(make_job("C").gpus(2).at(20).runs(30).build())
    assert s.cycle(20.0).starts == []


def test_a_job_that_leaves_the_reserved_gpus_alone_may_run_long() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=2).build())
    s.submit(make_job("A").gpus(12).runs(100).build())
    s.cycle(0.0)
    s.submit(make_job("B").gpus(8).at(1).runs(50).build())
    s.submit(make_job("L").gpus(4).at(1).runs(1000).build())
    # B is blocked (4 free) and reserved at t=100, when 16 will be free: 8 more than B needs.
    assert [x.job_id for x in s.cycle(1.0).starts] == ["L"]
    s.finish("A")
    assert [x.job_id for x in s.cycle(100.0).starts] == ["B"]
