"""Learned run-time estimates: the run history's groups, quantile, bounds and order insensitivity, and how the
driver feeds it and uses it (the simulator's estimates modes: tests/unit/sim/test_sim_estimates.py)."""

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargate.domain import Cluster, Fleet, Provider, Queue, Site, Team
from stargate.engine import Driver, JobTerms, get_policy
from stargate.engine.estimates import Completion, RunHistory, group_keys
from stargate.engine.scheduler import DEFAULT, LEARNED, OWN

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _done(i: int, run_s: float, at: float | None = None, **kw: object) -> Completion:
    fields: dict[str, object] = {"queue": "q", "gpus": 1} | kw
    return Completion(at if at is not None else float(i), f"j{i:04d}", run_s=run_s, **fields)  # type: ignore[arg-type]


def test_the_estimate_is_a_high_quantile_of_the_group() -> None:
    h = RunHistory(quantile=0.8, window=100, min_samples=3)
    for i, r in enumerate([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]):
        h.record(_done(i, r))
    assert h.estimate("q", 1) == 80.0  # nearest rank: the 8th of 10
    assert RunHistory(quantile=0.5).estimate("q", 1) is None  # nothing learned: the caller's default


def test_the_most_specific_group_with_enough_samples_wins() -> None:
    h = RunHistory(quantile=1.0, min_samples=2)
    h.seed([_done(i, 100.0, user="ann", name="train") for i in range(2)])
    h.seed([_done(10 + i, 10.0, gpus=8) for i in range(5)])
    assert h.estimate("q", 1, "ann", "train") == 100.0  # (queue, user, name, GPUs)
    assert h.estimate("q", 8, "ann", "train") == 100.0  # (queue, user, name): 2 samples
    assert h.estimate("q", 8, "bob", "eval") == 10.0  # (queue, GPUs)
    assert h.estimate("q", 4) == 100.0  # (queue): the largest of all seven
    assert h.estimate("other", 4) == 100.0  # every job
    assert group_keys("q", None, None, 1) == [("qg", "q", 1), ("q", "q"), ("all",)]


def test_memory_is_bounded_per_group_and_in_groups() -> None:
    h = RunHistory(quantile=1.0, window=4, min_samples=1, max_groups=10, service_window=3)
    for i in range(1000):
        h.record(_done(i, float(i), name=f"n{i}"))
    assert h.groups <= 10
    assert h.estimate("q", 1) == 999.0  # the window holds the last 4: 996..999
    assert list(h.service_samples("q")) == [997.0, 998.0, 999.0]
    assert h.recorded == 1000


def test_service_samples_are_sorted_gpu_seconds_of_the_queue() -> None:
    h = RunHistory()
    h.record(_done(1, 100.0, gpus=4))
    h.record(_done(2, 50.0, gpus=1))
    h.record(_done(3, 10.0, queue="other"))
    assert list(h.service_samples("q")) == [50.0, 400.0]
    assert list(h.service_samples("none")) == []


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"quantile": 0.0}, "run history setting quantile: found 0.0; expected a number > 0 and <= 1"),
        ({"window": 0}, "window: found 0"),
        ({"min_samples": 9, "window": 4}, "min_samples: found 9; expected a whole number >= 1 and <= window"),
    ],
)
def test_bad_settings_are_refused(kw: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RunHistory(**kw)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 50)), min_size=1, max_size=40),
    seed=st.randoms(use_true_random=False),
)
def test_the_order_of_same_instant_completions_changes_nothing(runs: list[tuple[int, int]], seed: object) -> None:
    done = [_done(i, float(r), at=float(t), gpus=1 + i % 2) for i, (t, r) in enumerate(runs)]
    by_time = sorted(done, key=lambda c: c.at_s)
    shuffled = sorted(done, key=lambda c: (c.at_s, seed.random()))  # type: ignore[attr-defined]
    a, b = RunHistory(window=3, min_samples=1), RunHistory(window=3, min_samples=1)
    for c in by_time:
        a.record(c)
    for c in shuffled:
        b.record(c)
    for g in (1, 2):
        assert a.estimate("q", g) == b.estimate("q", g)
    assert list(a.service_samples("q")) == list(b.service_samples("q"))


def _driver(history: RunHistory | None = None) -> Driver:
    fleet = Fleet(
        name="estimates",
        providers=[Provider(id="lab", name="Lab", kind="owned")],  # type: ignore[arg-type]
        sites=[Site(id="s", provider="lab", region="local")],
        clusters=[Cluster(id="a", site="s", gpu_model="H100-SXM", gpus_per_node=8, nodes=2, price_per_gpu_hour_usd=1)],
        teams=[Team(id="t", name="T")],
        queues=[Queue(id="q", team="t")],
    )
    return Driver(fleet, get_policy("stargate"), EPOCH, history=history)


def test_the_driver_learns_completed_run_times_and_estimates_new_jobs() -> None:
    d = _driver(RunHistory(quantile=1.0, min_samples=1))
    d.submit(JobTerms(id="a", queue="q", gpus=1, submit_s=0.0, progress_s=30.0))
    d.submit(JobTerms(id="b", queue="q", gpus=1, submit_s=0.0))
    d.submit(JobTerms(id="c", queue="q", gpus=1, submit_s=0.0))
    assert d.sched.estimate_source == DEFAULT
    assert len(d.decide(0.0).starts) == 3
    d.finish("a", 100.0, completed=True)  # ran 100 s on top of 30 s checkpointed
    d.finish("b", 500.0)  # failed or cancelled: not learned from
    d.finish("c", 1000.0, completed=False)
    d.submit(JobTerms(id="d", queue="q", gpus=1, submit_s=100.0))
    assert d.sched.estimate_source == LEARNED
    assert d.sched.jobs.est[d.sched.jobs.ix["d"]] == 130.0
    d.submit(JobTerms(id="e", queue="q", gpus=1, submit_s=100.0, estimate_s=7.0))
    assert d.sched.estimate_source == OWN and d.sched.jobs.est[d.sched.jobs.ix["e"]] == 7.0


def test_a_rebuilt_driver_keeps_the_history_and_its_jobs_estimates() -> None:
    history = RunHistory(quantile=1.0, min_samples=1)
    d = _driver(history)
    d.submit(JobTerms(id="a", queue="q", gpus=1, submit_s=0.0))
    d.decide(0.0)
    d.finish("a", 50.0, completed=True)
    d.submit(JobTerms(id="b", queue="q", gpus=1, submit_s=50.0))
    history.record(_done(99, 1000.0, at=60.0))  # the history learns more after b was estimated
    kept = d.estimates()
    assert kept == {"b": 50.0}
    pending = [JobTerms(id="b", queue="q", gpus=1, submit_s=50.0), JobTerms(id="c", queue="q", gpus=1, submit_s=70.0)]
    rebuilt, lost = Driver.rebuilt(d.fleet, d.policy, EPOCH, [], pending, 70.0, history=history, estimates=kept)
    assert not lost and rebuilt.history is history
    t = rebuilt.sched.jobs
    assert t.est[t.ix["b"]] == 50.0  # as before the rebuild
    assert t.est[t.ix["c"]] == 1000.0  # learned now
