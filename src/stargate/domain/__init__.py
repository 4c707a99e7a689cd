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
from stargate.domain.executors import (
    DEFAULT_EXECUTORS,
    AnyExecutorConfig,
    ExecutorHealth,
    KubernetesExecutorConfig,
    LocalExecutorConfig,
    RayExecutorConfig,
    SlurmExecutorConfig,
    job_needs,
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
    "DEFAULT_EXECUTORS",
    "DEFAULT_PRIORITY_CLASSES",
    "AnyExecutorConfig",
    "Budget",
    "Building",
    "Cluster",
    "ClusterStatus",
    "Contract",
    "ContractKind",
    "Exclusivity",
    "ExecutorHealth",
    "ExecutorKind",
    "Fleet",
    "GpuModel",
    "HolderResponse",
    "JobKind",
    "JobReason",
    "JobSpec",
    "KubernetesExecutorConfig",
    "LocalExecutorConfig",
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
    "RayExecutorConfig",
    "RightOfFirstRefusal",
    "Scheduling",
    "Site",
    "SlurmExecutorConfig",
    "Team",
    "fleet_problems",
    "job_needs",
    "read_reason",
]
