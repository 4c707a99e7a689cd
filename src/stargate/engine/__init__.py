"""The decision engine: pure functions and in-memory state, no I/O, no clock, no global random.

State in → decisions out. The server drives it with the wall clock, the simulator with a virtual clock, both
through one :class:`Driver` (see :mod:`stargate.engine.driver`)::

    driver = Driver(fleet, policy_for(fleet.scheduling), epoch=datetime(2025, 1, 1, tzinfo=UTC))
    driver.submit(JobTerms(id="j1", queue="research", gpus=8, submit_s=0.0))
    decisions = driver.decide(now=0.0)     # starts, preemptions, rejections (already applied)
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stargate.engine.budget import BudgetBook, BudgetConflict, BudgetReport, Draw
    from stargate.engine.driver import Decisions, Driver, JobTerms, Lost, RestoreError
    from stargate.engine.index import FleetIndex
    from stargate.engine.policies import POLICIES, FifoPolicy, Policy, SrtfPolicy, StargatePolicy, get_policy
    from stargate.engine.pressure import PressureGauge
    from stargate.engine.priorities import PriorityRule, Resolved
    from stargate.engine.procurement import ProcurementBook, award_contract
    from stargate.engine.procurement_types import (
        Award,
        CapacityRequest,
        Offer,
        OfferState,
        ProcEvent,
        ProcurementError,
        Quote,
        RequestState,
    )
    from stargate.engine.scheduler import Scheduler
    from stargate.engine.scheduling import Override, policy_for
    from stargate.engine.types import CycleResult, JobRequest, Preemption, Reason, Rejection, Start

_HOME = {
    **dict.fromkeys(("Decisions", "Driver", "JobTerms", "Lost", "RestoreError"), "driver"),
    **dict.fromkeys(("BudgetBook", "BudgetConflict", "BudgetReport", "Draw"), "budget"),
    "FleetIndex": "index",
    "PressureGauge": "pressure",
    **dict.fromkeys(("ProcurementBook", "award_contract"), "procurement"),
    **dict.fromkeys(
        ("Award", "CapacityRequest", "Offer", "OfferState", "ProcEvent", "ProcurementError", "Quote", "RequestState"),
        "procurement_types",
    ),
    **dict.fromkeys(("POLICIES", "FifoPolicy", "Policy", "SrtfPolicy", "StargatePolicy", "get_policy"), "policies"),
    **dict.fromkeys(("PriorityRule", "Resolved"), "priorities"),
    "Scheduler": "scheduler",
    **dict.fromkeys(("Override", "policy_for"), "scheduling"),
    **dict.fromkeys(("CycleResult", "JobRequest", "Preemption", "Reason", "Rejection", "Start"), "types"),
}
"""Where each public name lives: a module is imported on first use, so reading a fleet file (which checks its
``scheduling:`` section with :mod:`stargate.engine.scheduling`) loads neither NumPy nor the scheduler."""


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'stargate.engine' has no attribute '{name}'")
    value = getattr(import_module(f"stargate.engine.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "POLICIES",
    "Award",
    "BudgetBook",
    "BudgetConflict",
    "BudgetReport",
    "CapacityRequest",
    "CycleResult",
    "Decisions",
    "Draw",
    "Driver",
    "FifoPolicy",
    "FleetIndex",
    "JobRequest",
    "JobTerms",
    "Lost",
    "Offer",
    "OfferState",
    "Override",
    "Policy",
    "Preemption",
    "PressureGauge",
    "PriorityRule",
    "ProcEvent",
    "ProcurementBook",
    "ProcurementError",
    "Quote",
    "Reason",
    "Rejection",
    "RequestState",
    "Resolved",
    "RestoreError",
    "Scheduler",
    "SrtfPolicy",
    "StargatePolicy",
    "Start",
    "award_contract",
    "get_policy",
    "policy_for",
]
