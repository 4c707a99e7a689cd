"""Golden scenario: JCTs computed by hand, for fifo and stargate.

One cluster of 8 GPUs (1 node), one queue, estimates = actual run times:

====  =====  ======  ========
job   GPUs   submit  run time
====  =====  ======  ========
A     6      0       100
B     8      10      50
C     2      20      30
D     2      30      200
====  =====  ======  ========

fifo (strict FIFO, no backfill): A runs 0–100. B is blocked (2 free) and blocks C and D behind it.
B runs 100–150; then C and D both start at 150: C ends 180, D ends 350.
JCTs: A 100, B 140, C 160, D 320 → avg 180.

stargate (EASY backfill): B is blocked and reserved at t=100 (when A ends; extra = 8 − 8 = 0 GPUs).
C (2 GPUs, ends 20 + 30 = 50 ≤ 100) backfills at once: 20–50. D would end at 230 > 100 and there is no
extra room, so it waits. B runs 100–150, D 150–350.
JCTs: A 100, B 140, C 30, D 320 → avg 147.5.
"""

import pytest
from engine_builders_sim import run_sim

from stargate.traces import TraceJob

JOBS = [
    TraceJob("A", 0.0, 100.0, 6, "q"),
    TraceJob("B", 10.0, 50.0, 8, "q"),
    TraceJob("C", 20.0, 30.0, 2, "q"),
    TraceJob("D", 30.0, 200.0, 2, "q"),
]


@pytest.mark.parametrize(
    ("policy", "jcts"),
    [("fifo", [100, 140, 160, 320]), ("stargate", [100, 140, 30, 320])],
)
def test_hand_computed_jcts(policy: str, jcts: list[float]) -> None:
    summary, sim = run_sim(JOBS, policy, nodes=1)
    assert list(sim.state.finish - sim.state.submit) == jcts
    assert summary["avg_jct_s"] == sum(jcts) / 4
    assert summary["jobs_finished"] == 4 and summary["jobs_pending_at_end"] == 0
    assert summary["makespan_s"] == 350.0
    busy = 6 * 100 + 8 * 50 + 2 * 30 + 2 * 200
    assert summary["gpu_utilization"] == round(busy / (8 * 350), 4)
