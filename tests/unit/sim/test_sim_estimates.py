"""The simulator's run-time estimates modes: learned (the default), trace and actual (the oracle), and the
estimate error the summary reports."""

from datetime import UTC, datetime

import pytest
from engine_builders_sim import run_sim, tiny_fleet

from stargate.engine.scheduler import DEFAULT, LEARNED, OWN
from stargate.sim.metrics import estimate_error
from stargate.sim.simulator import SimConfig, Simulator
from stargate.traces import TraceJob

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_simulator_learns_by_default_and_reports_the_estimate_error() -> None:
    jobs = [TraceJob(f"j{i}", float(i * 100), 100.0 + i, 1, "q") for i in range(10)]
    jobs.append(TraceJob("told", 2000.0, 50.0, 1, "q", estimated_duration_s=100.0))
    assert SimConfig().estimates == "learned"
    sim = Simulator(tiny_fleet(1), jobs, SimConfig(), EPOCH)
    st_ = sim.run_all()
    src = list(st_.estimate_source)
    # job i runs 100 + i s from 100 i s: job 4 is the first submitted after 3 completions (0, 1, 2)
    assert src[:4] == [DEFAULT] * 4 and set(src[4:10]) == {LEARNED} and src[10] == OWN
    assert st_.estimate[10] == 100.0
    assert st_.estimate[4] == 102.0  # the 80th percentile of 100, 101, 102
    e = estimate_error(st_)
    assert (e["jobs"], e["jobs_own"], e["jobs_learned"], e["jobs_default"]) == (7, 1, 6, 4)
    assert e["median"] is not None and 0 < e["median"] < 0.05
    assert e["p90"] is not None and e["p90"] > 0.3  # the job told 100 s that ran 50 s is 100 % off
    oracle = Simulator(tiny_fleet(1), jobs, SimConfig(estimates="actual"), EPOCH).run_all()
    assert estimate_error(oracle)["median"] == 0.0 and estimate_error(oracle)["jobs_default"] == 0
    assert (
        estimate_error(Simulator(tiny_fleet(1), jobs, SimConfig(estimates="trace"), EPOCH).run_all())["jobs_default"]
        == 10
    )


def test_an_unknown_estimates_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="simulation setting estimates: found 'psychic'; expected learned or trace"):
        Simulator(tiny_fleet(1), [], SimConfig(estimates="psychic"), EPOCH)


def test_the_summary_names_the_mode() -> None:
    jobs = [TraceJob(f"j{i}", float(i), 100.0, 1, "q") for i in range(4)]
    learned, _ = run_sim(jobs, estimates="learned")
    oracle, _ = run_sim(jobs)  # the helper's default: the oracle
    assert learned["estimates"] == "learned" and oracle["estimates"] == "actual"
    assert learned["estimate_error"]["jobs_default"] == 4  # all submitted at once: nothing learned yet
