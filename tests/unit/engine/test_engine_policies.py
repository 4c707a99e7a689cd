"""Policies: ordering keys, settings, and the scan that never hides small jobs behind blocked big ones."""

import pytest
from engine_builders import FleetBuilder, make_job, scheduler

from stargate.engine import POLICIES, get_policy
from stargate.engine.policies import SETTING_RULES


def test_policies_and_settings_are_checked() -> None:
    assert set(POLICIES) == {"fifo", "stargate", "srtf", "las", "gittins"}
    assert get_policy("stargate", runtime_weight=0.0).key(500, 10.0, 99.0, 1) == (-500, 10.0)
    with pytest.raises(ValueError, match="unknown policy 'lottery'"):
        get_policy("lottery")
    with pytest.raises(ValueError, match="unknown policy setting"):
        get_policy("fifo", runtime_weight=1.0)


def test_stargate_orders_by_virtual_deadline_within_a_priority() -> None:
    p = get_policy("stargate")
    short_late = p.key(500, 100.0, 10.0, 1)
    long_early = p.key(500, 0.0, 1000.0, 1)
    urgent = p.key(1000, 5000.0, 1e6, 64)
    assert urgent < short_late < long_early


def test_a_small_job_deep_in_a_queue_is_not_hidden_by_blocked_big_ones() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build(), "stargate", scan_depth=4, runtime_weight=0.0)
    s.submit(make_job("hog").gpus(6).runs(1000).build())
    s.cycle(0.0)
    for i in range(10):
        s.submit(make_job(f"big{i}").gpus(8).at(1 + i).runs(10).build())
    s.submit(make_job("tiny").gpus(1).at(20).runs(10).build())
    assert [x.job_id for x in s.cycle(20.0).starts] == ["tiny"], "tiny is 11th in its queue, depth is 4"


def test_srtf_runs_the_shortest_first() -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=1).build(), "srtf")
    s.submit(make_job("long").gpus(8).runs(1000).build())
    s.submit(make_job("short").gpus(8).runs(10).build())
    assert [x.job_id for x in s.cycle(0.0).starts] == ["short"]


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_a_queue_deeper_than_scan_depth_keeps_starting_in_later_cycles_at_the_same_instant(policy: str) -> None:
    s = scheduler(FleetBuilder().owned().cluster("a", nodes=4).build(), policy, scan_depth=4)
    for i in range(10):
        s.submit(make_job(f"j{i}").gpus(1).runs(100).build())
    results = [s.cycle(0.0)]
    while results[-1].more:
        results.append(s.cycle(0.0))
    assert [len(r.starts) for r in results] == [4, 4, 2], "free GPUs must not sit idle until an unrelated event"
    assert s.n_pending == 0


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("preemption", 5.0, "true or false"),
        ("strict_fifo", 2, "true or false"),
        ("scan_depth", 0, "whole number from 1 to 1,000,000,000"),
        ("scan_depth", -5, "whole number from 1 to 1,000,000,000"),
        ("scan_depth", 1.5, "whole number from 1 to 1,000,000,000"),
        ("scan_depth", 10**9 + 1, "whole number from 1 to 1,000,000,000"),
        ("scan_budget", -1, "whole number from 0 to 1,000,000,000"),
        ("runtime_weight", -1.0, "number from 0 to 1,000,000,000"),
        ("runtime_weight", float("inf"), "number from 0 to 1,000,000,000"),
        ("runtime_weight", 1e9 + 1, "number from 0 to 1,000,000,000"),
        ("reserve_after_s", float("nan"), "number from 0 to 1,000,000,000,000 or inf"),
        ("reserve_after_s", float("-inf"), "number from 0 to 1,000,000,000,000 or inf"),
        ("default_checkpoint_interval_s", 0.0, "number greater than 0 and at most 1,000,000,000,000"),
        ("default_estimate_s", 1e12 + 1, "number greater than 0 and at most 1,000,000,000,000"),
        ("burst_after_s", -1.0, "number from 0 to 1,000,000,000,000, inf or null"),
    ],
)
def test_settings_of_the_wrong_type_or_range_are_refused_by_name(setting: str, value: object, expected: str) -> None:
    with pytest.raises(ValueError, match=f"policy setting {setting}: found .*; expected (a )?{expected}$"):
        get_policy("stargate", **{setting: value})


@pytest.mark.parametrize("setting", sorted(SETTING_RULES))
@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), 10**5000, 1e308, "x\x1b[2J", [1, 2], {"a": 1}, object()],
    ids=["400 digits", "-400 digits", "5000 digits", "1e308", "escape", "list", "mapping", "object"],
)
def test_a_setting_check_never_raises_and_every_number_is_bounded(setting: str, value: object) -> None:
    problem = SETTING_RULES[setting].check(value)
    assert problem is not None and problem.startswith("found ") and "\x1b" not in problem


def test_a_huge_integer_is_shown_shortened() -> None:
    problem = SETTING_RULES["scan_depth"].check(int("1234" + "5" * 396))
    assert problem == "found 1234…(400 digits); expected a whole number from 1 to 1,000,000,000"
    with pytest.raises(ValueError, match=r"policy setting scan_budget: found 1000…\(401 digits\)"):
        get_policy("fifo", scan_budget=10**400)


def test_settings_in_range_are_accepted() -> None:
    p = get_policy("stargate", scan_depth=1, scan_budget=0, runtime_weight=2, backfill_window_s=float("inf"))
    assert (p.scan_depth, p.scan_budget, p.runtime_weight) == (1, 0, 2)
    assert get_policy("fifo", burst_after_s=None, reserve_after_s=float("inf")).burst_after_s is None
    top = get_policy(
        "stargate", scan_depth=10**9, runtime_weight=10**9, backfill_window_s=1e12, default_estimate_s=1e12
    )
    assert (top.scan_depth, top.backfill_window_s) == (10**9, 1e12)
