"""The nouns of Stargate as typed, validated data (pydantic v2). Pure: no I/O, no clock."""

from stargate.domain.catalog import BUILTIN_GPU_MODELS, GpuModel
from stargate.domain.checks import fleet_problems
from stargate.domain.contracts import (
    Budget,
    Contract,
    ContractKind,
    Exclusivity,
    MatchRule,
    RightOfFirstRefusal,
)
from stargate.domain.fleet import Fleet
from stargate.domain.infrastructure import (
    Building,
    Cluster,
    ClusterStatus,
    ExecutorKind,
    Provider,
    ProviderKind,
    Site,
)
from stargate.domain.jobs import JobKind, JobSpec
from stargate.domain.problems import Path, Problem
from stargate.domain.procurement import HolderResponse, PressureSettings, PriceBookEntry, Procurement
from stargate.domain.reasons import JobReason, read_reason
from stargate.domain.scheduling import Scheduling
from stargate.domain.teams import ANY_GPU, DEFAULT_PRIORITY_CLASSES, PriorityClass, Queue, Quota, Team

__all__ = [
    "ANY_GPU",
    "BUILTIN_GPU_MODELS",
    "DEFAULT_PRIORITY_CLASSES",
    "Budget",
    "Building",
    "Cluster",
    "ClusterStatus",
    "Contract",
    "ContractKind",
    "Exclusivity",
    "ExecutorKind",
    "Fleet",
    "GpuModel",
    "HolderResponse",
    "JobKind",
    "JobReason",
    "JobSpec",
    "MatchRule",
    "Path",
    "PressureSettings",
    "PriceBookEntry",
    "PriorityClass",
    "Problem",
    "Procurement",
    "Provider",
    "ProviderKind",
    "Queue",
    "Quota",
    "RightOfFirstRefusal",
    "Scheduling",
    "Site",
    "Team",
    "fleet_problems",
    "read_reason",
]
