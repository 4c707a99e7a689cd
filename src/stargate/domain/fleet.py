"""The fleet: everything Stargate knows about capacity, contracts, money and teams, as one validated value."""

from datetime import date

from pydantic import Field, model_validator

from stargate.domain.base import Day, Model, Name, OptionalText
from stargate.domain.catalog import BUILTIN_GPU_MODELS, GpuModel
from stargate.domain.contracts import Budget, Contract
from stargate.domain.executors import AnyExecutorConfig, ExecutorConfig, executors_by_id
from stargate.domain.infrastructure import Building, Cluster, Provider, Site
from stargate.domain.limits import MAX_ENTITIES, MAX_FLEET_GPUS, MAX_SMALL_LIST
from stargate.domain.procurement import Procurement
from stargate.domain.scheduling import Scheduling
from stargate.domain.teams import DEFAULT_PRIORITY_CLASSES, PriorityClass, Queue, Team


class Fleet(Model):
    """Root of a fleet file: providers, sites, buildings, clusters, contracts, budget, procurement, teams, queues,
    scheduling and executors.

    Field-level rules are enforced by the models; rules across entities (references, power, dates) by
    :func:`stargate.domain.checks.fleet_problems`.
    """

    name: Name = Field(description="Fleet name, e.g. 'stargate-2025'; at most 200 characters.")
    description: OptionalText = Field(default="", description="What this fleet describes; at most 10,000 characters.")
    as_of: Day | None = Field(
        default=None, description="Date the fleet description is true on (ISO 8601), 1970 to 2200."
    )
    gpu_models: list[GpuModel] = Field(
        default_factory=list,
        max_length=MAX_SMALL_LIST,
        description="GPU models added to the built-in catalogue (H100-SXM, H200, B200, GB200, MI300X), at most 1,000.",
    )
    providers: list[Provider] = Field(
        default_factory=list, max_length=MAX_ENTITIES, description="Suppliers of capacity, at most 10,000."
    )
    sites: list[Site] = Field(
        default_factory=list, max_length=MAX_ENTITIES, description="Campuses and cloud regions, at most 10,000."
    )
    buildings: list[Building] = Field(
        default_factory=list, max_length=MAX_ENTITIES, description="Data halls of owned sites, at most 10,000."
    )
    clusters: list[Cluster] = Field(
        default_factory=list,
        max_length=MAX_ENTITIES,
        description="Homogeneous GPU pools, at most 10,000, with at most 100,000,000 GPUs in all.",
    )
    contracts: list[Contract] = Field(
        default_factory=list, max_length=MAX_ENTITIES, description="Agreements with providers, at most 10,000."
    )
    budget: Budget | None = Field(default=None, description="The investment envelope; null when not tracked.")
    procurement: Procurement = Field(
        default_factory=Procurement,
        description="How new capacity is bought: the price book, the pressure trigger, the simulated holder.",
    )
    priority_classes: list[PriorityClass] = Field(
        default_factory=lambda: list(DEFAULT_PRIORITY_CLASSES),
        max_length=MAX_SMALL_LIST,
        description="Named priorities, at most 1,000; defaults to low (100), normal (500), high (1000).",
    )
    teams: list[Team] = Field(
        default_factory=list, max_length=MAX_ENTITIES, description="Groups that submit work, at most 10,000."
    )
    queues: list[Queue] = Field(
        default_factory=list, max_length=MAX_ENTITIES, description="Teams' queues with quotas, at most 10,000."
    )
    scheduling: Scheduling = Field(
        default_factory=Scheduling,
        description="The scheduling policy and its settings, as `stargate simulate --policy/--set` name them.",
    )
    executors: list[ExecutorConfig] = Field(
        default_factory=list,
        max_length=MAX_SMALL_LIST,
        description="Engines that run jobs (Ray, Slurm, Kubernetes, local), each with an id providers and clusters "
        "name, at most 1,000; 'local', 'ray', 'slurm' and 'kubernetes' exist with their defaults unless declared.",
    )

    @model_validator(mode="after")
    def _fleet_size(self) -> "Fleet":
        """At most MAX_FLEET_GPUS GPUs across all clusters."""
        total = self.total_gpus()
        if total > MAX_FLEET_GPUS:
            raise ValueError(
                f"found {total:,} GPUs in {len(self.clusters):,} clusters, expected at most {MAX_FLEET_GPUS:,} GPUs "
                "in one fleet"
            )
        return self

    def catalogue(self) -> dict[str, GpuModel]:
        """Every GPU model this fleet knows, built-in and declared, by name."""
        models = {m.name: m for m in BUILTIN_GPU_MODELS}
        models.update({m.name: m for m in self.gpu_models})
        return models

    def executor_configs(self) -> dict[str, AnyExecutorConfig]:
        """Every executor this fleet can name, by id: the defaults, replaced or joined by the declared ones."""
        return executors_by_id(self.executors)

    def cluster_executor_ids(self) -> dict[str, str]:
        """Cluster id → the id of the executor that runs its jobs: its own ``executor``, else its provider's (else
        'local', for a cluster whose site or provider is not declared)."""
        provider_of = {s.id: s.provider for s in self.sites}
        executor_of = {p.id: p.executor for p in self.providers}
        return {c.id: c.executor or executor_of.get(provider_of.get(c.site, ""), "local") for c in self.clusters}

    def cluster_executors(self) -> dict[str, AnyExecutorConfig]:
        """Cluster id → the settings of the executor that runs its jobs (a cluster naming an executor this fleet
        does not know, which the fleet's checks refuse, is left out)."""
        known = self.executor_configs()
        return {c: known[e] for c, e in self.cluster_executor_ids().items() if e in known}

    def total_gpus(self) -> int:
        """GPUs across all clusters, GPUs."""
        return sum(c.gpus for c in self.clusters)

    def energized_it_mw(self, site_id: str, day: date) -> float | None:
        """IT power energised at a site on ``day``, MW.

        A site with buildings has the sum of its energised buildings (capped by the envelope divided by PUE);
        a site without buildings has its envelope divided by PUE, or None when it is not power-limited.
        """
        site = next(s for s in self.sites if s.id == site_id)
        envelope_it = site.power_mw / site.pue if site.power_mw is not None else None
        buildings = [b for b in self.buildings if b.site == site_id]
        if not buildings:
            return envelope_it
        energized = sum(b.it_power_mw for b in buildings if b.energized_on() <= day)
        return energized if envelope_it is None else min(energized, envelope_it)
