"""The first line of ``stargate queues``: the policy in force, where it comes from, and a server's options set aside."""

from stargate.cli.render import scheduling_text


def test_the_policy_line_names_its_sources() -> None:
    plain = {"policy": "stargate", "changed": {}, "override": None}
    assert scheduling_text(plain) == "scheduling policy: stargate (from the fleet file)"
    changed = {"policy": "stargate", "changed": {"runtime_weight": 2.5}, "override": "--set runtime_weight=2.5"}
    expected = "scheduling policy: stargate, runtime_weight=2.5 (from the fleet file and stargate up --set "
    assert scheduling_text(changed) == expected + "runtime_weight=2.5)"


def test_options_set_aside_are_not_credited_with_the_policy() -> None:
    aside = {"policy": "srtf", "changed": {"burst_after_s": 60.0}, "override": "--set runtime_weight=2.0"}
    got = scheduling_text(aside | {"problem": "no fit"})
    assert got.startswith("scheduling policy: srtf, burst_after_s=60.0 (from the fleet file; this server's stargate up")
    assert got.endswith("--set runtime_weight=2.0 set aside: no fit)")
