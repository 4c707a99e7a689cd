"""Input checks of procurement: every refusal is a :class:`ProcurementError` naming the field, what was found and
what was expected, raised before anything changes."""

from __future__ import annotations

import re
from collections.abc import Container
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from stargate.domain.base import visible
from stargate.domain.ids import ID_PATTERN
from stargate.domain.limits import MAX_CLUSTER_GPUS, MAX_DATE, MAX_GPUS_PER_NODE, MAX_USD_PER_GPU_HOUR, MIN_DATE
from stargate.domain.procurement import MAX_LEAD_TIME_DAYS, MAX_TERM_DAYS
from stargate.engine.procurement_types import QUOTE_SOURCES, RAISED_BY, CapacityRequest, ProcurementError, Quote

_ID = re.compile(ID_PATTERN)
MAX_ID_CHARS = 63
MAX_ACTOR_CHARS = 200
MAX_REASON_CHARS = 10_000


def shown(value: Any) -> str:
    """A value as a message shows it: text quoted and escaped, short."""
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:59] + "…"
        return f"'{visible(text)}'"
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = visible(repr(value) if not isinstance(value, Decimal) else str(value))
    return text if len(text) <= 60 else text[:59] + "…"


def instant(value: Any, field: str) -> datetime:
    """``value`` as an aware UTC datetime, or a ProcurementError."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ProcurementError(field, shown(value), "a timezone-aware date-time (UTC)")
    return value.astimezone(UTC)


def day(value: Any, field: str) -> date:
    """``value`` as a calendar date from 1970 to 2200, or a ProcurementError."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ProcurementError(field, shown(value), "a calendar date (YYYY-MM-DD)")
    if not MIN_DATE <= value <= MAX_DATE:
        raise ProcurementError(field, value.isoformat(), f"a date from {MIN_DATE} to {MAX_DATE}")
    return value


def whole(value: Any, field: str, low: int, high: int, unit: str) -> int:
    """``value`` as an integer in [low, high], or a ProcurementError."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProcurementError(field, shown(value), f"an integer from {low:,} to {high:,} ({unit})")
    return value


def price(value: Any, field: str) -> Decimal:
    """``value`` as a price per GPU-hour: a finite Decimal, not negative, at most 100,000 USD, at most 6 decimal
    places; or a ProcurementError (floats are refused: money is exact)."""
    expected = "a decimal price from 0 to 100,000 USD per GPU-hour with at most 6 decimal places"
    if not isinstance(value, Decimal):
        raise ProcurementError(field, f"{shown(value)} ({type(value).__name__})", expected)
    if not value.is_finite() or value < 0 or value > MAX_USD_PER_GPU_HOUR:
        raise ProcurementError(field, shown(value), expected)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6 and value != value.quantize(Decimal("0.000001")):
        raise ProcurementError(field, shown(value), expected)
    return value


def ident(value: Any, field: str, room: int = 0) -> str:
    """``value`` as an id (1–63 characters: lowercase letters, digits, '.', '_', '-'), leaving ``room`` characters
    for what ids built from it add."""
    limit = MAX_ID_CHARS - room
    if not isinstance(value, str) or not _ID.fullmatch(value) or len(value) > limit:
        raise ProcurementError(
            field,
            shown(value),
            f"an id of 1 to {limit} characters: lowercase letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
        )
    return value


def text(value: Any, field: str, limit: int, *, required: bool) -> str:
    """``value`` as printable text of at most ``limit`` characters (non-blank when ``required``)."""
    ok = isinstance(value, str) and len(value) <= limit and (value.strip() or not required)
    if ok and isinstance(value, str) and not value.replace("\n", " ").replace("\t", " ").isprintable():
        ok = False
    if not ok:
        what = "non-blank " if required else ""
        raise ProcurementError(field, shown(value), f"{what}printable text of at most {limit:,} characters")
    return str(value)


def check_request(req: CapacityRequest, known: Container[str], models: set[str]) -> None:
    """Refuse a capacity request with a bad field (see :class:`CapacityRequest`)."""
    f = "raise_request"
    if not isinstance(req, CapacityRequest):
        raise ProcurementError(f, shown(req), "a CapacityRequest")
    if req.gpu_model not in models:
        raise ProcurementError(f"{f}.gpu_model", shown(req.gpu_model), f"a GPU model of the catalogue ({_few(models)})")
    ident(req.id, f"{f}.id", room=len("award-") + 1 + len(req.gpu_model))
    if req.id in known:
        raise ProcurementError(f"{f}.id", f"{shown(req.id)} again", "an id no other request has")
    whole(req.gpus, f"{f}.gpus", 1, MAX_CLUSTER_GPUS, "GPUs")
    whole(req.term_days, f"{f}.term_days", 1, MAX_TERM_DAYS, "days")
    start = day(req.start, f"{f}.start")
    if (MAX_DATE - start).days < req.term_days:
        raise ProcurementError(f"{f}.start", start.isoformat(), f"a start that leaves the term inside {MAX_DATE}")
    if req.raised_by not in RAISED_BY:
        raise ProcurementError(f"{f}.raised_by", shown(req.raised_by), "'pressure', 'plan' or 'user'")
    text(req.actor, f"{f}.actor", MAX_ACTOR_CHARS, required=True)
    text(req.reason, f"{f}.reason", MAX_REASON_CHARS, required=False)
    instant(req.at, f"{f}.at")


def check_quote(
    q: Quote, known: Container[str], site_provider: dict[str, str], providers: set[str], models: set[str]
) -> None:
    """Refuse a quote with a bad field (see :class:`Quote`); ``providers``: those with a site."""
    f = "add_quote"
    if not isinstance(q, Quote):
        raise ProcurementError(f, shown(q), "a Quote")
    ident(q.id, f"{f}.id")
    if q.id in known:
        raise ProcurementError(f"{f}.id", f"{shown(q.id)} again", "an id no other quote has")
    if q.provider not in providers:
        raise ProcurementError(f"{f}.provider", shown(q.provider), f"a provider with a site ({_few(providers)})")
    owner = site_provider.get(q.site)
    if owner != q.provider:
        found = shown(q.site) + (f" (a site of '{owner}')" if owner else " (no such site)")
        raise ProcurementError(f"{f}.site", found, f"a site of '{q.provider}'")
    if q.gpu_model not in models:
        raise ProcurementError(f"{f}.gpu_model", shown(q.gpu_model), f"a GPU model of the catalogue ({_few(models)})")
    whole(q.gpus_per_node, f"{f}.gpus_per_node", 1, MAX_GPUS_PER_NODE, "GPUs")
    price(q.price, f"{f}.price")
    if q.max_gpus is not None:
        whole(q.max_gpus, f"{f}.max_gpus", 1, MAX_CLUSTER_GPUS, "GPUs")
    whole(q.lead_time_days, f"{f}.lead_time_days", 0, MAX_LEAD_TIME_DAYS, "days")
    first = day(q.valid_from, f"{f}.valid_from")
    if q.valid_until is not None and day(q.valid_until, f"{f}.valid_until") < first:
        raise ProcurementError(f"{f}.valid_until", q.valid_until.isoformat(), f"a day on or after valid_from {first}")
    if q.source not in QUOTE_SOURCES:
        raise ProcurementError(f"{f}.source", shown(q.source), "'price_book' or 'api'")


def _few(names: set[str]) -> str:
    shown_names = sorted(names)[:8]
    more = len(names) - len(shown_names)
    return ", ".join(shown_names) + (f", … {more} more" if more > 0 else "") if names else "none defined"
