"""Who supplies capacity and where it is: providers, sites, buildings and clusters."""

from datetime import date
from enum import StrEnum

from pydantic import Field

from stargate.domain.base import USD, Model, USDPerGpuHour
from stargate.domain.ids import Id


class ProviderKind(StrEnum):
    """Whether we own the capacity (a campus operator) or rent it (a cloud)."""

    OWNED = "owned"
    CLOUD = "cloud"


class ExecutorKind(StrEnum):
    """The engine that runs jobs on a provider's clusters."""

    LOCAL = "local"
    RAY = "ray"
    SLURM = "slurm"
    KUBERNETES = "kubernetes"


class ClusterStatus(StrEnum):
    """A cluster's health; only ``up`` and ``degraded`` clusters accept new work."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"

    def accepts_work(self) -> bool:
        """True when new placements may land on the cluster."""
        return self is not ClusterStatus.DOWN


class Provider(Model):
    """A supplier of GPU capacity: our own campus operator or a cloud."""

    id: Id = Field(description="Provider id, e.g. 'azure'.")
    name: str = Field(min_length=1, description="Display name, e.g. 'Microsoft Azure'.")
    kind: ProviderKind = Field(description="'owned' for our campuses, 'cloud' for rented capacity.")
    executor: ExecutorKind = Field(
        default=ExecutorKind.LOCAL, description="Executor that runs jobs on this provider's clusters."
    )
    capacity_limit_gpus: int | None = Field(
        default=None,
        ge=0,
        description="GPUs the provider can add on demand beyond its declared clusters; null for none.",
    )


class Site(Model):
    """A place of one provider: an owned campus or a cloud region, with its power envelope."""

    id: Id = Field(description="Site id, e.g. 'abilene'.")
    provider: Id = Field(description="Id of the provider that operates the site.")
    region: str = Field(min_length=1, description="Geographic region, e.g. 'us-south' or 'Abilene, TX'.")
    power_mw: float | None = Field(
        default=None,
        gt=0,
        description="Facility power envelope, MW (grid plus on-site generation); null when not limited.",
    )
    pue: float = Field(default=1.2, ge=1.0, le=3.0, description="Power usage effectiveness (facility / IT).")


class Building(Model):
    """A data hall of an owned site, energised on a date; clusters in it draw on its power."""

    id: Id = Field(description="Building id, e.g. 'abilene-b1'.")
    site: Id = Field(description="Id of the site the building stands on.")
    floor_area_sq_ft: int = Field(gt=0, description="Floor area, sq ft.")
    it_power_mw: float = Field(gt=0, description="IT power the building supplies once energised, MW.")
    gpus: int = Field(gt=0, description="GPUs the building is designed to hold.")
    gpu_model: str = Field(description="GPU model the building is fitted with (catalogue name).")
    capex_usd: USD = Field(description="Capital expenditure for the building, USD.")
    planned_energization: date = Field(description="Planned energisation date (ISO 8601).")
    actual_energization: date | None = Field(
        default=None, description="Actual energisation date (ISO 8601); null until it happens."
    )

    def energized_on(self) -> date:
        """The date the building's power counts: the actual date when known, else the planned one."""
        return self.actual_energization or self.planned_energization


class Cluster(Model):
    """A homogeneous pool of GPUs in one interconnect domain: a gang job must fit inside one cluster."""

    id: Id = Field(description="Cluster id, e.g. 'abilene-b1-gb200'.")
    site: Id = Field(description="Id of the site the cluster is at.")
    building: Id | None = Field(
        default=None,
        description="Id of the building it is in (owned sites); its energisation brings it online.",
    )
    gpu_model: str = Field(description="GPU model of every GPU in the cluster (catalogue name).")
    gpus_per_node: int = Field(gt=0, le=1024, description="GPUs per node (72 for a GB200 NVL72 rack).")
    nodes: int = Field(gt=0, description="Nodes in the cluster.")
    interconnect: str = Field(
        default="infiniband",
        min_length=1,
        description="Interconnect domain, e.g. 'nvlink-nvl72', 'infiniband'.",
    )
    price_per_gpu_hour_usd: USDPerGpuHour = Field(
        description="What one GPU-hour costs on this cluster when no contract covers it, USD per GPU-hour."
    )
    contract: Id | None = Field(
        default=None, description="Id of the contract the capacity is bought under (reserved or commitment)."
    )
    online_from: date | None = Field(
        default=None,
        description="First date the cluster accepts work (ISO 8601); null: its building's date or always.",
    )
    online_until: date | None = Field(
        default=None, description="Last date the cluster accepts work (ISO 8601); null: no end."
    )
    status: ClusterStatus = Field(default=ClusterStatus.UP, description="Health: 'up', 'degraded' or 'down'.")

    @property
    def gpus(self) -> int:
        """Total GPUs in the cluster, GPUs."""
        return self.gpus_per_node * self.nodes
