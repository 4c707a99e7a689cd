"""How new capacity is bought: the market's price book, when queue pressure asks for capacity, and how the
right-of-first-refusal holder answers in simulation. The rules that use them are in
:mod:`stargate.engine.procurement`."""

from typing import Annotated

from pydantic import Field

from stargate.domain.base import Count, Day, GpuCount, Model, Name, OptionalText, Real, Unit, USDPerGpuHour
from stargate.domain.ids import Id
from stargate.domain.limits import MAX_CLUSTER_GPUS, MAX_ENTITIES, MAX_FLEET_GPUS, MAX_GPUS_PER_NODE

MAX_LEAD_TIME_DAYS = 3_650
"""The longest lead time or start delay of a quote or a pressure request, days (10 years)."""
MAX_TERM_DAYS = 36_500
"""The longest term of a capacity request, days (100 years)."""
MAX_HOURS = 87_600.0
"""The longest wait or sustain time of the pressure trigger, hours (10 years)."""


class PriceBookEntry(Model):
    """A quote the market gives without being asked: a provider's price for a GPU model at one of its sites,
    valid between two dates (a dated, cited price table)."""

    provider: Id = Field(description="Id of the provider quoting.")
    site: Id = Field(description="Id of the provider's site where awarded capacity lands.")
    gpu_model: Name = Field(description="GPU model quoted (catalogue name).")
    gpus_per_node: GpuCount = Field(
        gt=0, le=MAX_GPUS_PER_NODE, description="GPUs per node of the capacity offered, at most 1,024."
    )
    price_per_gpu_hour_usd: USDPerGpuHour = Field(
        description="Price per GPU-hour for a reserved term, USD per GPU-hour, at most 100,000 (6 decimal places)."
    )
    max_gpus: GpuCount | None = Field(
        default=None,
        gt=0,
        le=MAX_CLUSTER_GPUS,
        description="Most GPUs one award may take, GPUs, at most 10,000,000; null: no limit.",
    )
    lead_time_days: Annotated[Count, Unit("days")] = Field(
        default=0,
        ge=0,
        le=MAX_LEAD_TIME_DAYS,
        description="Days from the request until the capacity can start, 0 to 3,650.",
    )
    valid_from: Day = Field(description="First day the quote may be taken (ISO 8601), 1970 to 2200.")
    valid_until: Day | None = Field(
        default=None, description="Last day the quote may be taken (ISO 8601), 1970 to 2200; null: open-ended."
    )
    source: OptionalText = Field(
        default="", description="Where the price comes from (a citation); at most 10,000 characters."
    )


class PressureSettings(Model):
    """When persistent queue pressure raises a capacity request, per GPU model."""

    min_waiting_gpus: GpuCount = Field(
        gt=0,
        le=MAX_FLEET_GPUS,
        description="GPUs of jobs waiting at least min_wait_hours that count as pressure, GPUs, at most 100,000,000.",
    )
    min_wait_hours: Annotated[Real, Unit("hours")] = Field(
        default=24.0, ge=0, le=MAX_HOURS, description="How long a job must have waited to count, hours, 0 to 87,600."
    )
    sustain_hours: Annotated[Real, Unit("hours")] = Field(
        default=72.0,
        ge=0,
        le=MAX_HOURS,
        description="How long pressure must hold before a request is raised, hours, 0 to 87,600.",
    )
    block_gpus: GpuCount = Field(
        default=1,
        gt=0,
        le=MAX_CLUSTER_GPUS,
        description="Requested GPUs are the waiting GPUs rounded up to a multiple of this, GPUs, at most 10,000,000.",
    )
    term_days: Annotated[Count, Unit("days")] = Field(
        default=365, gt=0, le=MAX_TERM_DAYS, description="Term of a requested reservation, days, 1 to 36,500."
    )
    lead_time_days: Annotated[Count, Unit("days")] = Field(
        default=0,
        ge=0,
        le=MAX_LEAD_TIME_DAYS,
        description="Days from the raise day to the requested start, 0 to 3,650.",
    )
    cooldown_days: Annotated[Count, Unit("days")] = Field(
        default=30,
        ge=0,
        le=MAX_LEAD_TIME_DAYS,
        description="No new pressure request for a model while one is open or for this many days after the last "
        "one was raised, 0 to 3,650.",
    )


class HolderResponse(Model):
    """The simulator's model of a right-of-first-refusal holder: how likely it matches and when it answers."""

    match_probability: Annotated[Real, Unit("probability")] = Field(
        default=0.5, ge=0, le=1, description="Chance the holder matches an offer, 0 to 1."
    )
    response_days: Annotated[Real, Unit("days")] = Field(
        default=7.0,
        ge=0,
        le=365,
        description="Days after the offer the holder answers, 0 to 365; an answer at or after the response window "
        "is late and the offer expires.",
    )


class Procurement(Model):
    """How new capacity is bought: the price book, the pressure trigger, the simulated holder."""

    price_book: list[PriceBookEntry] = Field(
        default_factory=list,
        max_length=MAX_ENTITIES,
        description="Quotes the market gives without being asked, at most 10,000.",
    )
    pressure: PressureSettings | None = Field(
        default=None, description="When queue pressure raises a capacity request; null: never."
    )
    holder_response: HolderResponse = Field(
        default_factory=HolderResponse,
        description="How the right-of-first-refusal holder answers in simulation (match 0.5, after 7 days).",
    )
