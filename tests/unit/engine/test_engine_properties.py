"""Property tests of the invariants in DESIGN.md over random fleets, jobs, finishes and failures:
no GPU held twice, gangs whole in one cluster, power within the cap, no job lost, determinism."""

from datetime import date

from engine_builders import FleetBuilder, assert_consistent, make_job, scheduler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stargate.engine import POLICIES

jobs_st = st.lists(
    st.tuples(
        st.integers(1, 24),
        st.sampled_from([100, 500, 1000]),
        st.floats(1, 5000),
        st.booleans(),
        st.sampled_from(["packed", "packed", "spread", "nodes"]),
    ),
    min_size=1,
    max_size=25,
)
ops_st = st.lists(st.tuples(st.sampled_from(["cycle", "finish", "down", "up"]), st.integers(0, 50)), max_size=60)


def _fleet():
    return (
        FleetBuilder()
        .owned(power_mw=1.0, pue=1.2)
        .building("b", mw=0.0112, on=date(2024, 1, 1))  # 16 GPUs of 700 W for the 24 owned ones: power binds
        .cluster("a", nodes=2, gpn=8)
        .cluster("b", nodes=1, gpn=8, building="b")
        .cloud()
        .cluster("c", nodes=3, gpn=4, price=3.0)
        .build()
    )


def _drive(policy: str, jobs: list[tuple[int, int, float, bool, str]], ops: list[tuple[str, int]]) -> list[object]:
    """Submit all jobs (packed, spread, or asking for nodes of 2 or 4 GPUs), apply the ops, check invariants after each
    step (shapes included, see ``assert_consistent``); return the decision log."""
    s = scheduler(_fleet(), policy, max_outage_stops=1)  # outages fail some jobs: none may be lost on the way
    log: list[object] = []
    failing: set[str] = set()
    for i, (g, prio, dur, pre, shape) in enumerate(jobs):
        job = make_job(f"j{i}").gpus(g).prio(prio, pre).runs(dur).ckpt(300)
        if shape == "spread":
            job = job.shape(spread=True)
        elif shape == "nodes":
            per = 4 if g % 4 == 0 and g <= 16 else 2 if g % 2 == 0 and g <= 8 else g if g <= 4 else 1
            job = job.gpus(per * (g // per)).shape(nodes=g // per)
        s.submit(job.build())
    settled: set[str] = set()
    now = 0.0
    for op, k in [("cycle", 0), *ops, *[("finish", 0), ("cycle", 0)] * 60]:
        now += 10.0
        if op == "cycle":
            res = s.cycle(now)
            log.append(res)
            settled |= {r.job_id for r in res.rejections}
            assert failing <= {r.job_id for r in res.rejections if r.reason == "outage_limit"}, "reported failed"
            failing = set()
            for x in res.starts:
                assert len(x.gpu_ids) == s.jobs.gpus[s.jobs.ix[x.job_id]], "gang all or nothing"
        elif op == "finish" and s.running_jobs():
            jid = sorted(s.running_jobs())[k % len(s.running_jobs())]
            s.finish(jid)
            settled.add(jid)
            log.append(("finish", jid))
        elif op in ("down", "up"):
            stops = s.set_cluster_status("abc"[k % 3], op, now)
            log.append(stops)
            failing |= {p.job_id for p in stops} - set(s.pending_jobs())  # its rejection comes with the next cycle
        assert_consistent(s)
        running, pending = set(s.running_jobs()), set(s.pending_jobs())
        assert running | pending | settled | failing == {f"j{i}" for i in range(len(jobs))}, "no job lost"
        assert not (running & pending) and not (running & settled) and not (pending & settled)
    for c in "abc":
        s.set_cluster_status(c, "up", now)
    assert failing <= {r.job_id for r in s.cycle(now).rejections}
    for _ in range(4 * len(jobs) + 4):
        now += 10.0
        log.append(s.cycle(now))
        for jid in sorted(s.running_jobs()):
            s.finish(jid)
        assert_consistent(s)
    assert s.pending_jobs() == [] and s.running_jobs() == {}, "every job that fits eventually runs"
    return log


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(POLICIES)), jobs_st, ops_st)
def test_invariants_hold_and_runs_are_deterministic(policy: str, jobs: list, ops: list) -> None:
    first = _drive(policy, jobs, ops)
    assert first == _drive(policy, jobs, ops)
