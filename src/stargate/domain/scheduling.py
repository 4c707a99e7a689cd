"""How the fleet is scheduled: the policy and its settings, as ``stargate simulate --policy/--set`` name them.

The fleet file's ``scheduling:`` section is what the server decides with (unless ``stargate up --policy/--set`` says
otherwise) and what ``stargate simulate`` replays with by default, so what you simulate is what you deploy. Which
policies and settings exist, and their ranges, is the engine's to say (``stargate.engine.scheduling``).
"""

from typing import Annotated, Literal

from pydantic import Field, Strict

from stargate.domain.base import Model, Real
from stargate.domain.ids import Id
from stargate.domain.limits import MAX_SMALL_LIST

SettingValue = Annotated[bool, Strict()] | Annotated[int, Strict()] | Real | Literal["inf"] | None
"""A policy setting's value: true/false, a number, 'inf' (no limit) or null."""


class Scheduling(Model):
    """The scheduling policy and its settings."""

    policy: Id = Field(default="stargate", description="Policy name: fifo, stargate (default) or srtf.")
    settings: dict[Id, SettingValue] = Field(
        default_factory=dict,
        max_length=MAX_SMALL_LIST,
        description="Policy settings by name, e.g. {runtime_weight: 2, burst_after_s: 3600}; 'inf' for no limit.",
    )
