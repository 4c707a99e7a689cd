"""The decision engine: pure functions and in-memory state, no I/O, no clock, no global random.

State in → decisions out. The server drives it with the wall clock, the simulator with a virtual clock, both
through one :class:`Driver` (see :mod:`stargate.engine.driver`)::

    driver = Driver(fleet, policy_for(fleet.scheduling), epoch=datetime(2025, 1, 1, tzinfo=UTC))
    driver.submit(JobTerms(id="j1", queue="research", gpus=8, submit_s=0.0))
    decisions = driver.decide(now=0.0)     # starts, preemptions, rejections (already applied)
"""

from stargate.engine.driver import Decisions, Driver, JobTerms, RestoreError
from stargate.engine.index import FleetIndex
from stargate.engine.policies import POLICIES, FifoPolicy, Policy, SrtfPolicy, StargatePolicy, get_policy
from stargate.engine.priorities import PriorityRule, Resolved
from stargate.engine.scheduler import Scheduler
from stargate.engine.scheduling import Override, policy_for
from stargate.engine.types import CycleResult, JobRequest, Preemption, Reason, Rejection, Start

__all__ = [
    "POLICIES",
    "CycleResult",
    "Decisions",
    "Driver",
    "FifoPolicy",
    "FleetIndex",
    "JobRequest",
    "JobTerms",
    "Override",
    "Policy",
    "Preemption",
    "PriorityRule",
    "Reason",
    "Rejection",
    "RestoreError",
    "Resolved",
    "Scheduler",
    "SrtfPolicy",
    "StargatePolicy",
    "Start",
    "get_policy",
    "policy_for",
]
