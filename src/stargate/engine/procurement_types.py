"""The values of procurement: requests, quotes, offers, awards, events and their states (plain slotted dataclasses,
so a server can store them as rows and the simulator can keep millions). The rules that move them are in
:mod:`stargate.engine.procurement`."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class ProcurementError(ValueError):
    """A procurement input or action that cannot be accepted; nothing was changed.

    ``field`` is the dotted name of what was wrong (``respond.price``, ``raise_request.gpu_model``); the message
    says what was found and what was expected.
    """

    def __init__(self, field: str, found: str, expected: str) -> None:
        super().__init__(f"{field}: found {found}; expected {expected}")
        self.field = field
        self.found = found
        self.expected = expected


class RequestState(StrEnum):
    """Where a capacity request stands.

    - ``offered``: waiting on the right-of-first-refusal holder's answer.
    - ``market``: in the market (holder declined, let the window expire or failed to match, or no clause covers it);
      it waits here while no quote for its GPU model is known.
    - ``awarded``: capacity bought (from the holder or the market).
    - ``over_budget``: the best terms found would exceed the budget; waits for an admin override.
    - ``unfilled``: quotes for its model exist but none is feasible (expired, too small, excluded); a new quote
      retries it.
    - ``cancelled``: withdrawn.
    """

    OFFERED = "offered"
    MARKET = "market"
    AWARDED = "awarded"
    OVER_BUDGET = "over_budget"
    UNFILLED = "unfilled"
    CANCELLED = "cancelled"

    def is_open(self) -> bool:
        """True while the request may still become an award without a new quote (offered, market, over_budget)."""
        return self in (RequestState.OFFERED, RequestState.MARKET, RequestState.OVER_BUDGET)


class OfferState(StrEnum):
    """Where an offer to the right-of-first-refusal holder stands."""

    OPEN = "open"
    MATCHED = "matched"
    DECLINED = "declined"
    EXPIRED = "expired"
    NOT_MATCHED = "not_matched"


RAISED_BY = ("pressure", "plan", "user")
"""Who may raise a capacity request."""
QUOTE_SOURCES = ("price_book", "api")
"""Where a quote may come from."""


@dataclass(frozen=True, slots=True)
class CapacityRequest:
    """A need for more GPUs of one model: how many, from when, for how long, and who asked."""

    id: str
    gpu_model: str
    gpus: int
    start: date
    """Earliest day the capacity is wanted."""
    term_days: int
    raised_by: str
    """'pressure', 'plan' or 'user'."""
    actor: str
    at: datetime
    """When it was raised (aware UTC)."""
    reason: str


@dataclass(frozen=True, slots=True)
class Quote:
    """A provider's terms for a GPU model at one of its sites, valid between two days."""

    id: str
    provider: str
    site: str
    gpu_model: str
    gpus_per_node: int
    price: Decimal
    """USD per GPU-hour."""
    max_gpus: int | None
    lead_time_days: int
    valid_from: date
    valid_until: date | None
    source: str
    """'price_book' or 'api'."""


@dataclass(frozen=True, slots=True)
class Offer:
    """A request offered to the right-of-first-refusal holder, and its answer."""

    id: str
    request_id: str
    holder: str
    contract_id: str
    """The contract whose clause gives the right."""
    match_rule: str
    offered_at: datetime
    deadline: datetime
    """offered_at + response window; an answer at or after it is late."""
    benchmark_price: Decimal | None
    """The best market price the holder must match (USD per GPU-hour); None: no market quote at offer time."""
    benchmark_start: date | None
    state: OfferState
    answered_at: datetime | None
    answered_by: str | None
    price: Decimal | None
    """The holder's price when it matched, USD per GPU-hour."""
    start: date | None


@dataclass(frozen=True, slots=True)
class Award:
    """Capacity bought for a request: from the holder or the market, at a price, for a term."""

    id: str
    request_id: str
    provider: str
    site: str
    gpu_model: str
    gpus: int
    """The request's GPUs rounded up to whole nodes."""
    gpus_per_node: int
    price: Decimal
    start: date
    end: date
    """Last day of the term (start + term_days − 1)."""
    cost_usd: Decimal
    """gpus × price × term_days × 24, exactly."""
    via: str
    """'holder' or 'market'."""
    quote_id: str | None
    at: datetime
    override_reason: str | None
    override_by: str | None


@dataclass(frozen=True, slots=True)
class ProcEvent:
    """One step of procurement, for the audit log.

    Kinds: raised, offered, matched, declined, expired, not_matched, market, awarded, over_budget, overridden,
    unfilled, cancelled, excluded.
    """

    at: datetime
    request_id: str
    offer_id: str | None
    kind: str
    actor: str
    reason: str


EVENT_KINDS = (
    "raised",
    "offered",
    "matched",
    "declined",
    "expired",
    "not_matched",
    "market",
    "awarded",
    "over_budget",
    "overridden",
    "unfilled",
    "cancelled",
    "excluded",
)
"""Every kind of :class:`ProcEvent`."""
