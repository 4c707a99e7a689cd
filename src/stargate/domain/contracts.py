"""Our agreements with providers and the money behind them: contracts, their clauses, the budget."""

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from stargate.domain.base import USD, Count, Day, GpuCount, Model, Name, OptionalText, Unit, USDPerGpuHour
from stargate.domain.ids import Id
from stargate.domain.limits import MAX_FLEET_GPUS, MAX_SMALL_LIST


class ContractKind(StrEnum):
    """How capacity is bought.

    - ``reserved``: N GPUs for the term at a price, paid whether used or not.
    - ``commitment``: spend at least X USD over the term; what is not spent is lost (use it or lose it).
    - ``on_demand``: pay per GPU-hour used at list price, no minimum.
    - ``spot``: pay per GPU-hour at a discount; capacity can be taken back at any time.
    """

    RESERVED = "reserved"
    COMMITMENT = "commitment"
    ON_DEMAND = "on_demand"
    SPOT = "spot"

    def is_prepaid(self) -> bool:
        """True when the capacity is paid for anyway, so using it costs nothing extra."""
        return self in (ContractKind.RESERVED, ContractKind.COMMITMENT)


class MatchRule(StrEnum):
    """What the right-of-first-refusal holder must offer to win new capacity."""

    MATCH_PRICE = "match_price"
    """The holder wins by matching the best market price per GPU-hour."""
    MATCH_PRICE_AND_DATE = "match_price_and_date"
    """The holder must match both the best price and the earliest delivery date."""
    ANY_OFFER = "any_offer"
    """Any offer from the holder wins (a plain first look)."""


class RightOfFirstRefusal(Model):
    """Clause: new capacity in scope must be offered to the holder first; the market only after it declines,
    fails to match, or lets the response window expire."""

    holder: Id = Field(description="Id of the provider that holds the right.")
    gpu_models: list[Name] = Field(
        default_factory=list,
        max_length=MAX_SMALL_LIST,
        description="GPU models in scope (catalogue names), at most 1,000; empty means all new capacity.",
    )
    response_window_days: Annotated[Count, Unit("days")] = Field(
        gt=0, le=365, description="Days the holder has to answer an offer, 1 to 365."
    )
    match_rule: MatchRule = Field(default=MatchRule.MATCH_PRICE, description="What the holder must offer to win.")
    valid_from: Day = Field(description="First day the right applies (ISO 8601), 1970 to 2200.")
    valid_until: Day = Field(description="Last day the right applies (ISO 8601), 1970 to 2200.")
    source: OptionalText = Field(
        default="", description="Where the clause is documented (a citation); at most 10,000 characters."
    )


class Exclusivity(Model):
    """Clause: capacity in scope may be bought only from this contract's provider until a date."""

    gpu_models: list[Name] = Field(
        default_factory=list,
        max_length=MAX_SMALL_LIST,
        description="GPU models in scope (catalogue names), at most 1,000; empty means all.",
    )
    until: Day = Field(description="Last day of exclusivity (ISO 8601), 1970 to 2200.")


class Contract(Model):
    """One agreement with a provider, with its term, its price and its optional clauses."""

    id: Id = Field(description="Contract id, e.g. 'coreweave-2025-03'.")
    provider: Id = Field(description="Id of the provider the contract is with.")
    kind: ContractKind = Field(description="'reserved', 'commitment', 'on_demand' or 'spot'.")
    start: Day = Field(description="First day of the term (ISO 8601), 1970 to 2200.")
    end: Day = Field(description="Last day of the term (ISO 8601), 1970 to 2200.")
    gpu_model: Name | None = Field(default=None, description="GPU model covered (catalogue name); null for any.")
    gpus: GpuCount | None = Field(
        default=None, gt=0, le=MAX_FLEET_GPUS, description="GPUs reserved (for 'reserved'), GPUs, at most 100,000,000."
    )
    price_per_gpu_hour_usd: USDPerGpuHour | None = Field(
        default=None,
        description="Price per GPU-hour under this contract, USD per GPU-hour, at most 100,000 (6 decimal places).",
    )
    value_usd: USD | None = Field(
        default=None,
        description="Total contract value, USD, at most 10^14 (6 decimal places); e.g. a reserved tranche's "
        "headline value.",
    )
    committed_spend_usd: USD | None = Field(
        default=None,
        description="Minimum spend over the term (for 'commitment'), USD, at most 10^14; unspent is lost.",
    )
    right_of_first_refusal: RightOfFirstRefusal | None = Field(
        default=None, description="Right-of-first-refusal clause, if any."
    )
    exclusivity: Exclusivity | None = Field(default=None, description="Exclusivity clause, if any.")
    source: OptionalText = Field(
        default="", description="Where the terms come from (a citation); at most 10,000 characters."
    )

    def covers(self, day: date) -> bool:
        """True when ``day`` lies inside the contract's term."""
        return self.start <= day <= self.end


class Budget(Model):
    """The investment envelope that capital expenditure and commitments draw on."""

    initial_usd: USD = Field(description="Available at once from ``start``, USD, at most 10^14.")
    ceiling_usd: USD = Field(description="The most that may be committed by ``end``, USD, at most 10^14.")
    start: Day = Field(description="First day of the budget period (ISO 8601), 1970 to 2200.")
    end: Day = Field(description="Last day of the budget period (ISO 8601), 1970 to 2200.")
    source: OptionalText = Field(
        default="", description="Where the figures come from (a citation); at most 10,000 characters."
    )
