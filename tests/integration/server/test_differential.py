"""One engine, two clocks: the same trace through the simulator and through the real server decides the same.

The trace has a few hundred jobs in four queues and four priority classes (one that may not preempt), gangs of up to
three 8-GPU nodes, preemptible and non-preemptible work, an outage of a cluster, and an on-demand cloud that jobs burst
to after a wait. Both decision logs (instant, job, cluster, GPU ids, preemptions and their reasons, rejections,
finishes) must be equal, on SQLite and on PostgreSQL, under the fleet's policy and under ``stargate up
--policy/--set``. A Hypothesis variant runs small random traces on small random fleets.
"""

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from integration.server.differential_support import serve, simulate
from stargate.engine import Override
from stargate.fleetfile import load_fleet
from stargate.server.scheduling.snapshot import ENGINE_EPOCH
from stargate.sim.simulator import Failure
from stargate.traces import TraceJob

FLEET = Path(__file__).parent / "fleet" / "differential.yaml"


def _t0() -> float:
    """2026-01-01 (the fleet's as_of date) in engine seconds: when the trace starts."""
    return (datetime(2026, 1, 1, tzinfo=UTC) - ENGINE_EPOCH).total_seconds()


QUEUES = {
    # queue: (share, GPU choices, classes, preemptible probability)
    "research-train": (0.3, (8, 8, 16, 24), (None, "high", "normal"), 0.8),
    "research-batch": (0.35, (1, 2, 4), (None, "normal", "high"), 1.0),
    "product-serve": (0.2, (1, 2, 4, 8), (None, "urgent"), 0.0),
    "infra-ops": (0.15, (1, 8, 64), (None, "batch", "high"), 0.5),
}


def make_trace(seed: int, n: int, span_s: int) -> list[TraceJob]:
    """``n`` jobs over ``span_s`` seconds from :func:`_t0`, whole seconds throughout (so both clocks see the same
    floats)."""
    rng = random.Random(seed)
    t0 = _t0()
    names, weights = list(QUEUES), [QUEUES[q][0] for q in QUEUES]
    jobs = []
    for i in range(n):
        queue = rng.choices(names, weights)[0]
        _, sizes, classes, p_preempt = QUEUES[queue]
        duration = float(rng.choice((60, 300, 900, 1800, 3600, 7200)) + rng.randrange(0, 600))
        preemptible = rng.random() < p_preempt
        jobs.append(
            TraceJob(
                id=f"t{i:04d}",
                submit_s=t0 + rng.randrange(0, span_s),
                duration_s=duration,
                gpus=rng.choice(sizes),
                queue=queue,
                priority_class=rng.choice(classes),
                preemptible=preemptible,
                checkpoint_interval_s=600.0 if preemptible else None,
                estimated_duration_s=duration,
            )
        )
    return jobs


def _kinds(log: list[tuple[object, ...]]) -> set[str]:
    """What the log shows: start, start-gang, start-cloud, preempt-<reason>, reject-<reason>, finish."""
    out = set()
    for row in log:
        out.add(str(row[1]))
        if row[1] == "start":
            out |= {"start-gang"} if len(row[4]) > 8 else set()  # type: ignore[arg-type]
            out |= {"start-cloud"} if row[3] == "cloud-h100" else set()
        if row[1] in ("preempt", "reject"):
            out.add(f"{row[1]}-{row[3]}")
    return out


@pytest.mark.parametrize(
    "override",
    [Override(), Override(settings={"runtime_weight": 2.0}), Override(policy="srtf")],
    ids=["fleet-policy", "set-runtime-weight", "policy-srtf"],
)
def test_the_simulator_and_the_server_make_the_same_decisions(override: Override, db_url: str, tmp_path: Path) -> None:
    fleet = load_fleet(FLEET)
    jobs = make_trace(seed=7, n=240, span_s=8 * 3600)
    outages = [Failure("lab-a", _t0() + 3 * 3600, 2 * 3600)]
    expected = simulate(fleet, jobs, outages, override)
    got = serve(FLEET, db_url, tmp_path / "home", jobs, outages, override)
    for i, (e, g) in enumerate(zip(expected, got, strict=False)):
        assert e == g, f"first difference at row {i}: simulator {e}, server {g}"
    assert len(expected) == len(got)
    shown = _kinds(expected)
    wanted = {"start-gang", "start-cloud", "preempt-cluster_down", "reject-no_cluster_fits", "finish"}
    wanted |= {"reject-priority_class_not_allowed"}
    wanted |= {"preempt-priority"} if override.policy != "srtf" else set()
    assert wanted <= shown, f"the trace no longer exercises {sorted(wanted - shown)}"
    if override:  # the options reach the decisions (else this case would prove nothing about deploying them)
        assert expected != simulate(fleet, jobs, outages, Override())
