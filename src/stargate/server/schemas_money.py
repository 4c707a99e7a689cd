"""The API's bodies for contracts, procurement, the budget and costs. Money is a decimal string in USD (every digit
kept: JSON numbers are floats to most readers); days are ISO 8601 dates, instants ISO 8601 UTC times."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer, StrictInt

from stargate.domain import Contract
from stargate.domain.base import Name, USDPerGpuHour
from stargate.domain.ids import Id
from stargate.server.schemas import Body

Money = Annotated[Decimal, PlainSerializer(lambda v: str(v), return_type=str, when_used="json")]
"""An amount or price written as a decimal string."""

MAX_REASON = 10_000


class ContractOut(Contract):
    """A contract of the fleet in force, with what has been spent under it so far."""

    spent_usd: Money | None = Field(
        default=None,
        description="What runs under this contract have cost so far, USD (admin only; null for other roles).",
    )
    awarded_for: str | None = Field(
        default=None, description="The capacity request whose award added this contract; null for a fleet contract."
    )


class CapacityRequestIn(Body):
    """A request for new capacity (admin)."""

    gpu_model: Name = Field(description="GPU model wanted (a catalogue name of the fleet), e.g. 'GB200'.")
    gpus: StrictInt = Field(ge=1, le=10_000_000, description="GPUs wanted, 1 to 10,000,000.")
    start: date = Field(description="Earliest day the capacity is wanted (ISO 8601).")
    term_days: int = Field(ge=1, le=36_500, description="Term of the reservation, days, 1 to 36,500.")
    reason: str = Field(default="", max_length=MAX_REASON, description="Why it is needed (recorded in the events).")
    raised_by: Literal["user", "plan"] = Field(
        default="user", description="'user' (asked by hand) or 'plan' (from a capacity plan)."
    )


class OfferOut(BaseModel):
    """An offer of a request to the holder of a right of first refusal, with the request's terms."""

    id: str
    request_id: str
    holder: str = Field(description="The provider that holds the right (only its provider tokens may answer).")
    contract_id: str = Field(description="The contract whose clause gives the right.")
    match_rule: str
    offered_at: datetime
    deadline: datetime = Field(description="An answer at or after this instant is late (409).")
    benchmark_price_per_gpu_hour_usd: Money | None = Field(
        description="The best market price at offer time, USD per GPU-hour; null: no market quote."
    )
    benchmark_start: date | None
    state: Literal["open", "matched", "declined", "expired", "not_matched"]
    answered_at: datetime | None
    answered_by: str | None
    price_per_gpu_hour_usd: Money | None = Field(description="The holder's price when it matched, USD per GPU-hour.")
    start: date | None = Field(description="The holder's start when it matched.")
    gpu_model: str = Field(description="The request's GPU model.")
    gpus: int = Field(description="The request's GPUs.")
    request_start: date = Field(description="The request's earliest start.")
    term_days: int = Field(description="The request's term, days.")


class AwardOut(BaseModel):
    """Capacity bought for a request; its contract and cluster are in fleet version ``fleet_version``."""

    id: str
    request_id: str
    provider: str
    site: str
    gpu_model: str
    gpus: int
    gpus_per_node: int
    price_per_gpu_hour_usd: Money
    start: date
    end: date
    cost_usd: Money
    via: Literal["holder", "market"]
    quote_id: str | None
    at: datetime
    override_reason: str | None
    override_by: str | None
    contract_id: str = Field(description="The reserved contract the award became.")
    fleet_version: str | None = Field(description="The fleet version that added its contract and cluster.")


class CapacityRequestOut(BaseModel):
    """A capacity request and where it stands, with its latest offer and its award."""

    id: str
    gpu_model: str
    gpus: int
    start: date
    term_days: int
    raised_by: str
    actor: str
    at: datetime
    reason: str
    state: Literal["offered", "market", "awarded", "over_budget", "unfilled", "cancelled"]
    offer: OfferOut | None = None
    award: AwardOut | None = None


class ProcEventOut(BaseModel):
    """One procurement step: who did what, when and why."""

    id: int
    at: datetime
    request_id: str
    offer_id: str | None
    kind: str = Field(description="raised, offered, matched, declined, expired, not_matched, market, awarded, ...")
    actor: str
    reason: str


class ProcEventPage(BaseModel):
    """A page of procurement events, oldest first."""

    items: list[ProcEventOut]
    next_cursor: str | None = Field(description="Pass as 'after' for the next page; null on the last page.")


class ProcurementStep(BaseModel):
    """What one procurement call did: the request after it, and the events it recorded."""

    request: CapacityRequestOut
    events: list[ProcEventOut]


class RespondIn(Body):
    """The holder's answer to an offer."""

    answer: Literal["match", "decline"]
    price_per_gpu_hour_usd: USDPerGpuHour | None = Field(
        default=None, description="The holder's price when it matches, USD per GPU-hour (default: the benchmark)."
    )
    start: date | None = Field(default=None, description="The holder's start when it matches (default: the request's).")


class QuoteIn(Body):
    """A market quote (admin)."""

    provider: Id
    site: Id = Field(description="The provider's site where awarded capacity lands.")
    gpu_model: Name
    gpus_per_node: int = Field(ge=1, le=1024, description="GPUs per node of the capacity offered, 1 to 1,024.")
    price_per_gpu_hour_usd: USDPerGpuHour
    max_gpus: StrictInt | None = Field(default=None, ge=1, le=10_000_000, description="Most GPUs one award may take.")
    lead_time_days: int = Field(default=0, ge=0, le=3650, description="Days from the request to the earliest start.")
    valid_from: date
    valid_until: date | None = None


class QuoteOut(BaseModel):
    """A market quote (from the fleet's price book or entered through the API)."""

    id: str
    provider: str
    site: str
    gpu_model: str
    gpus_per_node: int
    price_per_gpu_hour_usd: Money
    max_gpus: int | None
    lead_time_days: int
    valid_from: date
    valid_until: date | None
    source: Literal["price_book", "api"]


class QuoteStep(BaseModel):
    """A quote added, and the events it set off (requests waiting for a quote may be awarded at once)."""

    quote: QuoteOut
    events: list[ProcEventOut]


class OverrideIn(Body):
    """An admin's override of the budget for a request over budget."""

    reason: str = Field(min_length=1, max_length=MAX_REASON, description="Why the budget is overridden (required).")


class CostRow(BaseModel):
    """The cost of one team, contract, provider, day, queue or job."""

    key: str
    cost_usd: Money
    gpu_hours: Money


class CostsOut(BaseModel):
    """Costs of the runs the caller may see, grouped."""

    by: str
    currency: Literal["USD"] = "USD"
    team: str | None = Field(description="The only team counted (a member's or viewer's own); null: every team.")
    since: date | None
    until: date | None
    as_of: datetime = Field(description="Runs still running are counted up to this instant.")
    total_usd: Money
    gpu_hours: Money
    rows: list[CostRow]
