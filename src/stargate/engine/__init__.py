"""The decision engine: pure functions and in-memory state, no I/O, no clock, no global random.

State in → decisions out. The server drives it with the wall clock, the simulator with a virtual clock::

    index = FleetIndex.from_fleet(fleet, epoch=datetime(2025, 1, 1, tzinfo=UTC))
    sched = Scheduler(index, get_policy("stargate"))
    sched.submit(JobRequest(id="j1", queue="research", gpus=8, submit_s=0.0))
    result = sched.cycle(now=0.0)          # starts, preemptions, rejections (already applied)
"""

from stargate.engine.index import FleetIndex
from stargate.engine.policies import POLICIES, FifoPolicy, Policy, SrtfPolicy, StargatePolicy, get_policy
from stargate.engine.scheduler import Scheduler
from stargate.engine.types import CycleResult, JobRequest, Preemption, Reason, Rejection, Start

__all__ = [
    "POLICIES",
    "CycleResult",
    "FifoPolicy",
    "FleetIndex",
    "JobRequest",
    "Policy",
    "Preemption",
    "Reason",
    "Rejection",
    "Scheduler",
    "SrtfPolicy",
    "StargatePolicy",
    "Start",
    "get_policy",
]
