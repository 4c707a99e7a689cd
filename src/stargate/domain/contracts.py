"""Our agreements with providers and the money behind them: contracts, their clauses, the budget."""

from datetime import date
from enum import StrEnum

from pydantic import Field

from stargate.domain.base import USD, Model, USDPerGpuHour
from stargate.domain.ids import Id


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
    gpu_models: list[str] = Field(
        default_factory=list,
        description="GPU models in scope (catalogue names); empty means all new capacity.",
    )
    response_window_days: int = Field(gt=0, le=365, description="Days the holder has to answer an offer.")
    match_rule: MatchRule = Field(default=MatchRule.MATCH_PRICE, description="What the holder must offer to win.")
    valid_from: date = Field(description="First day the right applies (ISO 8601).")
    valid_until: date = Field(description="Last day the right applies (ISO 8601).")
    source: str = Field(default="", description="Where the clause is documented (a citation).")


class Exclusivity(Model):
    """Clause: capacity in scope may be bought only from this contract's provider until a date."""

    gpu_models: list[str] = Field(
        default_factory=list, description="GPU models in scope (catalogue names); empty means all."
    )
    until: date = Field(description="Last day of exclusivity (ISO 8601).")


class Contract(Model):
    """One agreement with a provider, with its term, its price and its optional clauses."""

    id: Id = Field(description="Contract id, e.g. 'coreweave-2025-03'.")
    provider: Id = Field(description="Id of the provider the contract is with.")
    kind: ContractKind = Field(description="'reserved', 'commitment', 'on_demand' or 'spot'.")
    start: date = Field(description="First day of the term (ISO 8601).")
    end: date = Field(description="Last day of the term (ISO 8601).")
    gpu_model: str | None = Field(default=None, description="GPU model covered (catalogue name); null for any.")
    gpus: int | None = Field(default=None, gt=0, description="GPUs reserved (for 'reserved'), GPUs.")
    price_per_gpu_hour_usd: USDPerGpuHour | None = Field(
        default=None, description="Price per GPU-hour under this contract, USD per GPU-hour."
    )
    value_usd: USD | None = Field(
        default=None, description="Total contract value, USD (e.g. a reserved tranche's headline value)."
    )
    committed_spend_usd: USD | None = Field(
        default=None, description="Minimum spend over the term (for 'commitment'), USD; unspent is lost."
    )
    right_of_first_refusal: RightOfFirstRefusal | None = Field(
        default=None, description="Right-of-first-refusal clause, if any."
    )
    exclusivity: Exclusivity | None = Field(default=None, description="Exclusivity clause, if any.")
    source: str = Field(default="", description="Where the terms come from (a citation).")

    def covers(self, day: date) -> bool:
        """True when ``day`` lies inside the contract's term."""
        return self.start <= day <= self.end


class Budget(Model):
    """The investment envelope that capital expenditure and commitments draw on."""

    initial_usd: USD = Field(description="Available at once from ``start``, USD.")
    ceiling_usd: USD = Field(description="The most that may be committed by ``end``, USD.")
    start: date = Field(description="First day of the budget period (ISO 8601).")
    end: date = Field(description="Last day of the budget period (ISO 8601).")
    source: str = Field(default="", description="Where the figures come from (a citation).")
