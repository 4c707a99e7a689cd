"""The API's bodies for capacity plans: a scenario to compute (its YAML text), the stored plan, its summary in a
listing, and what applying it did."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt

from stargate.server.schemas import Body
from stargate.server.schemas_money import CapacityRequestOut, ProcEventOut

MAX_SCENARIO_BYTES = 1_000_000
"""The longest scenario YAML the API computes, characters (1 MB)."""
MAX_API_SCENARIOS = 1_000
"""The most Monte Carlo scenarios one API plan runs (they run inside the server, in one worker thread)."""
MAX_SEED = 2**63 - 1


class PlanIn(Body):
    """A scenario to plan against the server's fleet in force."""

    scenario_yaml: str = Field(
        min_length=1,
        max_length=MAX_SCENARIO_BYTES,
        description="The scenario file's text (YAML, as `stargate plan --scenario` reads), at most 1,000,000 "
        "characters; its `fleet` key is ignored (the server plans against its own fleet).",
    )
    scenarios: StrictInt = Field(
        default=0, ge=0, le=MAX_API_SCENARIOS, description="Monte Carlo scenarios, 0 (none) to 1,000."
    )
    seed: StrictInt = Field(default=0, ge=0, le=MAX_SEED, description="Seed of the Monte Carlo scenarios, 0 or more.")


class ApplyIn(Body):
    """Which of a plan's actions to apply (default: every 'sign' action)."""

    actions: list[StrictInt] | None = Field(
        default=None,
        max_length=10_000,
        description="Indices into the plan's `actions` list, from 0; null: every 'sign' action.",
    )


class PlanSummary(BaseModel):
    """A stored plan in a listing."""

    id: str
    created_at: datetime
    created_by: str
    fleet_version: str = Field(description="The fleet version the plan was computed on.")
    scenario: str = Field(description="The scenario's name.")
    scenarios: int = Field(description="Monte Carlo scenarios run (0: none).")
    seed: int
    status: Literal["computed", "applied"]
    first_shortfall_month: str | None = Field(description="First month with unmet demand (YYYY-MM); null: none.")
    unmet_gpu_hours: float = Field(description="Demand left unmet over the horizon, GPU-hours.")
    applied: bool
    applied_at: datetime | None
    applied_by: str | None


class PlanOut(PlanSummary):
    """A stored plan: its summary, the result and the capacity requests its applied actions raised."""

    applied_requests: dict[str, str] | None = Field(
        description="The capacity request each applied action raised, by action index; null until applied."
    )
    result: dict[str, Any] = Field(
        description="The plan as `stargate plan --json` prints it: {scenario, plan, risk} (risk null without "
        "scenarios)."
    )


class PlanDetail(PlanOut):
    """A stored plan with the scenario YAML it was computed from."""

    scenario_yaml: str


class AppliedAction(BaseModel):
    """An action of the plan turned into a capacity request."""

    action: int = Field(description="The action's index in the plan's `actions` list.")
    request: CapacityRequestOut


class SkippedAction(BaseModel):
    """An action of the plan that raised nothing: a building (not a purchase), or a signing whose month has passed
    or whose capacity starts after the horizon."""

    action: int
    kind: str
    reason: str


class ApplyOut(BaseModel):
    """What applying a plan did: one capacity request per 'sign' action, all raised in one transaction."""

    plan_id: str
    applied_at: datetime
    applied_by: str
    requests: list[AppliedAction]
    not_applicable: list[SkippedAction]
    events: list[ProcEventOut] = Field(description="The procurement steps the requests set off, in order.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What the admin should know, e.g. that the plan was computed on an older fleet version.",
    )
