"""Procurement rows: capacity requests, offers, API quotes, awards and their events, read as the engine's values and
written back as the book moves them.

A server loads the whole book (:func:`load`) inside the transaction of one operation, lets
:class:`stargate.engine.procurement.ProcurementBook` move it, and writes what changed (:func:`save`); the PostgreSQL
advisory lock of :func:`lock` makes those transactions take turns, so two operations never decide on the same state.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from stargate.engine.procurement_types import (
    Award,
    CapacityRequest,
    Offer,
    OfferState,
    ProcEvent,
    Quote,
    RequestState,
)
from stargate.store.models import (
    CapacityRequestRow,
    ProcurementAwardRow,
    ProcurementEventRow,
    ProcurementOfferRow,
    ProcurementQuoteRow,
    fit_actor,
)

PROCUREMENT_LOCK_KEY = 0x5354_4752_5052_4F43  # "STGRPROC"


def lock(session: Session) -> None:
    """Serialise procurement operations until the transaction ends (PostgreSQL advisory lock; SQLite writers
    already queue)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PROCUREMENT_LOCK_KEY})


@dataclass
class Stored:
    """The book as stored: every request (with its state), offer, API quote and award, by id."""

    requests: dict[str, CapacityRequest] = field(default_factory=dict)
    states: dict[str, RequestState] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)
    quotes: dict[str, Quote] = field(default_factory=dict)
    awards: dict[str, Award] = field(default_factory=dict)
    fleet_versions: dict[str, str | None] = field(default_factory=dict)
    """The fleet version that added each award's contract and cluster, by award id (None: not yet)."""


def load(session: Session) -> Stored:
    """Every procurement row, as the engine's values."""
    out = Stored()
    for r in session.scalars(select(CapacityRequestRow).order_by(CapacityRequestRow.at, CapacityRequestRow.id)):
        out.requests[r.id] = CapacityRequest(
            r.id, r.gpu_model, r.gpus, r.start, r.term_days, r.raised_by, r.actor, r.at, r.reason
        )
        out.states[r.id] = RequestState(r.state)
    for o in session.scalars(select(ProcurementOfferRow).order_by(ProcurementOfferRow.offered_at)):
        out.offers[o.id] = _offer(o)
    for q in session.scalars(select(ProcurementQuoteRow).order_by(ProcurementQuoteRow.added_at)):
        out.quotes[q.id] = Quote(
            q.id,
            q.provider,
            q.site,
            q.gpu_model,
            q.gpus_per_node,
            q.price,
            q.max_gpus,
            q.lead_time_days,
            q.valid_from,
            q.valid_until,
            q.source,
        )
    for a in session.scalars(select(ProcurementAwardRow).order_by(ProcurementAwardRow.at)):
        out.awards[a.id] = Award(
            a.id,
            a.request_id,
            a.provider,
            a.site,
            a.gpu_model,
            a.gpus,
            a.gpus_per_node,
            a.price,
            a.start,
            a.end,
            a.cost_usd,
            a.via,
            a.quote_id,
            a.at,
            a.override_reason,
            a.override_by,
        )
        out.fleet_versions[a.id] = a.fleet_version
    return out


def _offer(o: ProcurementOfferRow) -> Offer:
    return Offer(
        o.id,
        o.request_id,
        o.holder,
        o.contract_id,
        o.match_rule,
        o.offered_at,
        o.deadline,
        o.benchmark_price,
        o.benchmark_start,
        OfferState(o.state),
        o.answered_at,
        o.answered_by,
        o.price,
        o.start,
    )


def get_offer(session: Session, offer_id: str) -> Offer | None:
    """The offer ``offer_id``, or None."""
    row = session.get(ProcurementOfferRow, offer_id)
    return None if row is None else _offer(row)


def save(
    session: Session,
    before: Stored,
    requests: dict[str, CapacityRequest],
    states: dict[str, RequestState],
    offers: dict[str, Offer],
    quotes: Iterable[Quote],
    awards: dict[str, Award],
    actor: str,
    now: datetime,
) -> list[Award]:
    """Write what changed since ``before``: new requests, offers, API quotes (added by ``actor`` at ``now``) and
    awards inserted, changed request states and offers updated. Returns the new awards (their fleet version is set by
    :func:`set_fleet_version`)."""
    for rid, req in requests.items():
        if rid not in before.requests:
            session.add(
                CapacityRequestRow(
                    id=req.id,
                    gpu_model=req.gpu_model,
                    gpus=req.gpus,
                    start=req.start,
                    term_days=req.term_days,
                    raised_by=req.raised_by,
                    actor=fit_actor(req.actor),
                    at=req.at,
                    reason=req.reason,
                    state=states[rid].value,
                )
            )
    session.flush()  # requests first: offers and awards refer to them
    for rid, state in states.items():
        if rid in before.states and before.states[rid] != state:
            row = session.get(CapacityRequestRow, rid)
            assert row is not None
            row.state = state.value
    for oid, offer in offers.items():
        if before.offers.get(oid) == offer:
            continue
        values = _offer_values(offer)
        offer_row = session.get(ProcurementOfferRow, oid)
        if offer_row is None:
            session.add(ProcurementOfferRow(**values))
        else:
            for key, value in values.items():
                setattr(offer_row, key, value)
    for q in quotes:
        if q.id not in before.quotes and q.source == "api":
            session.add(_quote_row(q, actor, now))
    new = [a for aid, a in awards.items() if aid not in before.awards]
    for a in new:
        session.add(
            ProcurementAwardRow(
                id=a.id,
                request_id=a.request_id,
                provider=a.provider,
                site=a.site,
                gpu_model=a.gpu_model,
                gpus=a.gpus,
                gpus_per_node=a.gpus_per_node,
                price=a.price,
                start=a.start,
                end=a.end,
                cost_usd=a.cost_usd,
                via=a.via,
                quote_id=a.quote_id,
                at=a.at,
                override_reason=a.override_reason,
                override_by=None if a.override_by is None else fit_actor(a.override_by),
            )
        )
    session.flush()
    return new


def _quote_row(q: Quote, added_by: str, added_at: datetime) -> ProcurementQuoteRow:
    return ProcurementQuoteRow(
        id=q.id,
        provider=q.provider,
        site=q.site,
        gpu_model=q.gpu_model,
        gpus_per_node=q.gpus_per_node,
        price=q.price,
        max_gpus=q.max_gpus,
        lead_time_days=q.lead_time_days,
        valid_from=q.valid_from,
        valid_until=q.valid_until,
        source=q.source,
        added_at=added_at,
        added_by=fit_actor(added_by),
    )


def _offer_values(o: Offer) -> dict[str, object]:
    return {
        "id": o.id,
        "request_id": o.request_id,
        "holder": o.holder,
        "contract_id": o.contract_id,
        "match_rule": o.match_rule,
        "offered_at": o.offered_at,
        "deadline": o.deadline,
        "benchmark_price": o.benchmark_price,
        "benchmark_start": o.benchmark_start,
        "state": o.state.value,
        "answered_at": o.answered_at,
        "answered_by": None if o.answered_by is None else fit_actor(o.answered_by),
        "price": o.price,
        "start": o.start,
    }


def set_fleet_version(session: Session, award_id: str, version: str) -> None:
    """Record the fleet version that added award ``award_id``'s contract and cluster."""
    row = session.get(ProcurementAwardRow, award_id)
    assert row is not None
    row.fleet_version = version


def add_events(session: Session, events: Sequence[ProcEvent]) -> list[ProcurementEventRow]:
    """Append procurement events (in their order); their rows, with ids."""
    rows = [
        ProcurementEventRow(
            at=e.at,
            request_id=e.request_id,
            offer_id=e.offer_id,
            kind=e.kind,
            actor=fit_actor(e.actor),
            reason=e.reason,
        )
        for e in events
    ]
    session.add_all(rows)
    session.flush()
    return rows


def events(
    session: Session, *, request_id: str | None, offer_ids: Sequence[str] | None, after_id: int | None, limit: int
) -> tuple[list[ProcurementEventRow], int | None]:
    """Up to ``limit`` events oldest first with id above ``after_id`` (of one request, or of these offers), and the
    cursor of the next page."""
    query = select(ProcurementEventRow).order_by(ProcurementEventRow.id).limit(limit + 1)
    if request_id is not None:
        query = query.where(ProcurementEventRow.request_id == request_id)
    if offer_ids is not None:
        query = query.where(ProcurementEventRow.offer_id.in_(list(offer_ids)))
    if after_id is not None:
        query = query.where(ProcurementEventRow.id > after_id)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def last_event_id(session: Session) -> int:
    """The id of the newest procurement event (0: none): it moves with every procurement step."""
    return int(session.scalar(select(func.max(ProcurementEventRow.id))) or 0)


def counts(session: Session) -> dict[str, int]:
    """Rows per table (tests check that a refused operation wrote nothing)."""
    tables = (CapacityRequestRow, ProcurementOfferRow, ProcurementQuoteRow, ProcurementAwardRow, ProcurementEventRow)
    return {str(t.__tablename__): int(session.scalar(select(func.count()).select_from(t)) or 0) for t in tables}
