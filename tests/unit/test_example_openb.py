"""The openb-synthetic example replays the synthetic Alibaba openb sample: every GPU pod runs, on a GPU model its
``gpu_spec`` allows, inside one node."""

from pathlib import Path

from stargate.fleetfile import load_fleet
from stargate.sim import SimConfig, run_simulation
from stargate.traces import read_trace

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "data" / "traces" / "alibaba-openb" / "synthetic_pod_list.csv"


def test_every_gpu_pod_of_the_sample_runs_on_a_model_it_allows() -> None:
    fleet = load_fleet(ROOT / "examples" / "openb-synthetic")
    trace = read_trace(SAMPLE, "alibaba-openb")
    summary, sim = run_simulation(fleet, trace.jobs, SimConfig(record_log=True))
    assert summary["jobs_total"] == summary["jobs_finished"] == len(trace.jobs) == 238
    model_of = {c.id: c.gpu_model for c in fleet.clusters}
    gpus_of = {c.id: c.gpus for c in fleet.clusters}
    allowed = {j.id: j.gpu_models for j in trace.jobs}
    starts = [e for e in sim.state.log if e[1] == "start"]
    assert len(starts) >= 238
    for _, _, job_id, cluster, gpu_ids in starts:
        assert not allowed[job_id] or model_of[cluster] in allowed[job_id], (job_id, cluster)
        assert all(0 <= g < gpus_of[cluster] for g in gpu_ids)
