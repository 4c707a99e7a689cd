"""Who supplies capacity and where it is: providers, sites, buildings and clusters."""

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from stargate.domain.base import USD, Count, Day, GpuCount, Megawatts, Model, Name, Real, Unit, USDPerGpuHour
from stargate.domain.ids import Id
from stargate.domain.limits import (
    MAX_CLUSTER_GPUS,
    MAX_FLEET_GPUS,
    MAX_FLOOR_AREA_SQ_FT,
    MAX_GPUS_PER_NODE,
    MAX_NODES_PER_CLUSTER,
    MAX_POWER_MW,
)

MAX_USD_PER_MWH = 100_000
"""Any energy price, USD per MWh (wholesale prices spike to about 10,000 USD per MWh at their caps)."""

USDPerMWh = Annotated[Decimal, Field(ge=0, le=MAX_USD_PER_MWH, max_digits=12, decimal_places=6), Unit("USD per MWh")]
"""An exact energy price in US dollars per MWh, at most 100,000 with at most 6 decimal places."""


class ProviderKind(StrEnum):
    """Whether we own the capacity (a campus operator) or rent it (a cloud)."""

    OWNED = "owned"
    CLOUD = "cloud"


class ExecutorKind(StrEnum):
    """The kinds of engine an executor runs jobs on (each is also the id of a default executor: see
    :mod:`stargate.domain.executors`)."""

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
    name: Name = Field(description="Display name, e.g. 'Microsoft Azure'; at most 200 characters.")
    kind: ProviderKind = Field(description="'owned' for our campuses, 'cloud' for rented capacity.")
    executor: Id = Field(
        default="local",
        description="Id of the executor that runs jobs on this provider's clusters: one of the fleet's `executors`, "
        "or a default ('local', 'ray', 'slurm', 'kubernetes').",
    )
    capacity_limit_gpus: GpuCount | None = Field(
        default=None,
        ge=0,
        le=MAX_FLEET_GPUS,
        description="GPUs the provider can add on demand beyond its declared clusters, at most 100,000,000; "
        "null for none.",
    )


class Site(Model):
    """A place of one provider: an owned campus or a cloud region, with its power envelope."""

    id: Id = Field(description="Site id, e.g. 'abilene'.")
    provider: Id = Field(description="Id of the provider that operates the site.")
    region: Name = Field(description="Geographic region, e.g. 'us-south' or 'Abilene, TX'; at most 200 characters.")
    power_mw: Megawatts | None = Field(
        default=None,
        gt=0,
        le=MAX_POWER_MW,
        description="Facility power envelope, MW, at most 100,000 (grid plus on-site generation); "
        "null when not limited.",
    )
    pue: Real = Field(default=1.2, ge=1.0, le=3.0, description="Power usage effectiveness (facility / IT), 1 to 3.")
    energy_usd_per_mwh: USDPerMWh | None = Field(
        default=None,
        description="What one MWh of facility energy costs at this site, USD per MWh, at most 100,000 with at most "
        "6 decimal places; on owned capacity a GPU-hour then costs TDP × PUE × this / 1,000,000 USD at the margin. "
        "null: energy not priced.",
    )


class Building(Model):
    """A data hall of an owned site, energised on a date; clusters in it draw on its power."""

    id: Id = Field(description="Building id, e.g. 'abilene-b1'.")
    site: Id = Field(description="Id of the site the building stands on.")
    floor_area_sq_ft: Annotated[Count, Unit("sq ft")] = Field(
        gt=0, le=MAX_FLOOR_AREA_SQ_FT, description="Floor area, sq ft, at most 100,000,000."
    )
    it_power_mw: Megawatts = Field(
        gt=0, le=MAX_POWER_MW, description="IT power the building supplies once energised, MW, at most 100,000."
    )
    gpus: GpuCount = Field(
        gt=0, le=MAX_CLUSTER_GPUS, description="GPUs the building is designed to hold, at most 10,000,000."
    )
    gpu_model: Name = Field(description="GPU model the building is fitted with (catalogue name).")
    capex_usd: USD = Field(description="Capital expenditure for the building, USD.")
    planned_energization: Day = Field(description="Planned energisation date (ISO 8601), 1970 to 2200.")
    actual_energization: Day | None = Field(
        default=None, description="Actual energisation date (ISO 8601), 1970 to 2200; null until it happens."
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
    gpu_model: Name = Field(description="GPU model of every GPU in the cluster (catalogue name).")
    gpus_per_node: GpuCount = Field(
        gt=0, le=MAX_GPUS_PER_NODE, description="GPUs per node, at most 1,024 (72 for a GB200 NVL72 rack)."
    )
    nodes: Annotated[Count, Unit("nodes")] = Field(
        gt=0,
        le=MAX_NODES_PER_CLUSTER,
        description="Nodes in the cluster, at most 10,000,000; GPUs per node × nodes is at most 10,000,000.",
    )
    interconnect: Name = Field(
        default="infiniband",
        description="Interconnect domain, e.g. 'nvlink-nvl72', 'infiniband'; at most 200 characters.",
    )
    price_per_gpu_hour_usd: USDPerGpuHour = Field(
        description="What one GPU-hour costs on this cluster when no contract covers it, USD per GPU-hour, "
        "at most 100,000 with at most 6 decimal places."
    )
    contract: Id | None = Field(
        default=None, description="Id of the contract the capacity is bought under (reserved or commitment)."
    )
    online_from: Day | None = Field(
        default=None,
        description="First date the cluster accepts work (ISO 8601), 1970 to 2200; null: its building's date "
        "or always.",
    )
    online_until: Day | None = Field(
        default=None, description="Last date the cluster accepts work (ISO 8601), 1970 to 2200; null: no end."
    )
    status: ClusterStatus = Field(default=ClusterStatus.UP, description="Health: 'up', 'degraded' or 'down'.")
    executor: Id | None = Field(
        default=None,
        description="Id of the executor that runs jobs on this cluster, overriding its provider's; null: the "
        "provider's.",
    )

    @model_validator(mode="after")
    def _cluster_size(self) -> "Cluster":
        """GPUs per node × nodes is at most MAX_CLUSTER_GPUS."""
        if self.gpus > MAX_CLUSTER_GPUS:
            raise ValueError(
                f"found {self.gpus:,} GPUs ({self.gpus_per_node:,} GPUs per node × {self.nodes:,} nodes), "
                f"expected at most {MAX_CLUSTER_GPUS:,} GPUs in one cluster"
            )
        return self

    @property
    def gpus(self) -> int:
        """Total GPUs in the cluster, GPUs."""
        return self.gpus_per_node * self.nodes
