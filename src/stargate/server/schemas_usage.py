"""The API's answer of ``GET /api/v1/fleet/usage``: GPUs held per cluster and IT power energised per site, sampled
over a window, and the fleet's buildout schedule."""

from datetime import date, datetime

from pydantic import BaseModel, Field

DEFAULT_POINTS = 200
"""Samples when ``points`` is not given."""
MAX_POINTS = 1000
"""The most samples one answer holds."""
MAX_WINDOW_DAYS = 366
"""The longest window one answer covers, days."""
DEFAULT_WINDOW_H = 24
"""The window when ``since`` is not given: the 24 h before ``until``."""


class BuildingOut(BaseModel):
    """One building of the fleet in force and when its power counts."""

    building: str = Field(description="The building's id.")
    site: str = Field(description="The id of the site it stands on.")
    it_power_mw: float = Field(description="IT power it supplies once energised, MW.")
    gpus: int = Field(description="GPUs it is designed to hold, GPUs.")
    energised_on: date = Field(
        description="The day its power counts from (00:00 UTC): the actual energisation date when known, else the "
        "planned one (ISO 8601 date)."
    )
    actual: bool = Field(description="True when energised_on is the actual energisation date, false when planned.")


class FleetUsage(BaseModel):
    """The fleet's use sampled at ``points`` evenly spaced instants from ``since`` to ``until`` (both included)."""

    version: str = Field(description="The fleet version in force (its clusters, sites and buildings are used).")
    since: datetime = Field(description="The first sample instant (ISO 8601 UTC).")
    until: datetime = Field(description="The last sample instant (ISO 8601 UTC).")
    now: datetime = Field(description="When the answer was made; gpus_in_use is null at instants after it.")
    step_s: float = Field(description="Time between two samples, s.")
    at: list[datetime] = Field(description="The sample instants, oldest first (ISO 8601 UTC).")
    gpus_in_use: dict[str, list[int | None]] = Field(
        description="Cluster id → GPUs held at each instant of 'at' by runs placed or running then, GPUs; every "
        "cluster of the fleet in force (zeros when idle), and any other cluster runs held GPUs on in the window; "
        "null at instants after 'now'."
    )
    gpus_total: dict[str, int] = Field(
        description="Cluster id → GPUs it has (nodes × GPUs per node), GPUs; the clusters of the fleet in force."
    )
    energised_mw: dict[str, list[float]] = Field(
        description="Site id → IT power energised at each instant of 'at', MW: the buildings energised by that day "
        "(capped by the site's envelope ÷ PUE); a site without buildings: its envelope ÷ PUE; a site with neither "
        "is left out."
    )
    buildout: list[BuildingOut] = Field(description="Every building of the fleet in force, by day energised.")
