"""The simulator: a discrete-event driver with a virtual clock over a trace, and its metrics."""

from stargate.sim.metrics import job_metrics, summarize
from stargate.sim.run import epoch_for, run_simulation
from stargate.sim.simulator import Failure, SimConfig, SimState, Simulator, TraceJobLike

__all__ = [
    "Failure",
    "SimConfig",
    "SimState",
    "Simulator",
    "TraceJobLike",
    "epoch_for",
    "job_metrics",
    "run_simulation",
    "summarize",
]
