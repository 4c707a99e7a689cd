"""The fleet: everything Stargate knows about capacity, contracts, money and teams, as one validated value."""

from datetime import date

from pydantic import Field

from stargate.domain.base import Model
from stargate.domain.catalog import BUILTIN_GPU_MODELS, GpuModel
from stargate.domain.contracts import Budget, Contract
from stargate.domain.infrastructure import Building, Cluster, Provider, Site
from stargate.domain.teams import DEFAULT_PRIORITY_CLASSES, PriorityClass, Queue, Team


class Fleet(Model):
    """Root of a fleet file: providers, sites, buildings, clusters, contracts, budget, teams and queues.

    Field-level rules are enforced by the models; rules across entities (references, power, dates) by
    :func:`stargate.domain.checks.fleet_problems`.
    """

    name: str = Field(min_length=1, description="Fleet name, e.g. 'stargate-2025'.")
    description: str = Field(default="", description="What this fleet describes.")
    as_of: date | None = Field(default=None, description="Date the fleet description is true on (ISO 8601).")
    gpu_models: list[GpuModel] = Field(
        default_factory=list,
        description="GPU models added to the built-in catalogue (H100-SXM, H200, B200, GB200, MI300X).",
    )
    providers: list[Provider] = Field(default_factory=list, description="Suppliers of capacity.")
    sites: list[Site] = Field(default_factory=list, description="Campuses and cloud regions.")
    buildings: list[Building] = Field(default_factory=list, description="Data halls of owned sites.")
    clusters: list[Cluster] = Field(default_factory=list, description="Homogeneous GPU pools.")
    contracts: list[Contract] = Field(default_factory=list, description="Agreements with providers.")
    budget: Budget | None = Field(default=None, description="The investment envelope; null when not tracked.")
    priority_classes: list[PriorityClass] = Field(
        default_factory=lambda: list(DEFAULT_PRIORITY_CLASSES),
        description="Named priorities; defaults to low (100), normal (500), high (1000).",
    )
    teams: list[Team] = Field(default_factory=list, description="Groups that submit work.")
    queues: list[Queue] = Field(default_factory=list, description="Teams' queues with quotas.")

    def catalogue(self) -> dict[str, GpuModel]:
        """Every GPU model this fleet knows, built-in and declared, by name."""
        models = {m.name: m for m in BUILTIN_GPU_MODELS}
        models.update({m.name: m for m in self.gpu_models})
        return models

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
