"""Procurement through the API and the scheduler loop: raise a capacity request, answer an offer, add a quote,
override the budget, tick the book; the contracts and the budget.

Every operation runs in ONE write transaction: the procurement lock is taken (and the fleet lock, as an award adds
a fleet version), the book is loaded from its rows (:meth:`ProcurementBook.restore`) with the fleet in force, the
engine moves it, and what changed is written with the events the step recorded. A refused step raises before
anything is written (422 for bad input, 409 for a late or second answer). Each new award becomes a fleet version
holding its reserved contract and its cluster, recorded like any fleet apply (the scheduler picks it up next cycle).
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from stargate.domain import Fleet
from stargate.engine.procurement import ProcurementBook, award_contract
from stargate.engine.procurement_types import (
    Award,
    CapacityRequest,
    Offer,
    OfferState,
    ProcEvent,
    ProcurementError,
    Quote,
)
from stargate.fleetfile.describe import found_text
from stargate.server.auth import Principal, Role
from stargate.server.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from stargate.server.schemas_money import (
    AwardOut,
    CapacityRequestIn,
    CapacityRequestOut,
    ContractOut,
    OfferOut,
    ProcEventOut,
    ProcEventPage,
    ProcurementStep,
    QuoteIn,
    QuoteOut,
    QuoteStep,
    RespondIn,
)
from stargate.server.services import fleet as fleet_service
from stargate.store.models import ProcurementEventRow
from stargate.store.repositories import fleet_versions
from stargate.store.repositories import procurement as repo

FIELDS = {
    "respond.price": "body.price_per_gpu_hour_usd",
    "add_quote.price": "body.price_per_gpu_hour_usd",
    "respond.offer_id": "offer",
    "respond.now": "answered at",
    "override.request_id": "request",
}
"""The API's name of an engine field where they differ (the rest are named ``body.<field>``)."""
STATE_FIELDS = ("respond.offer_id", "respond.now", "override.request_id")
"""Engine fields whose refusal means the state does not allow the step (409), not a bad body (422)."""


def _api_error(exc: ProcurementError) -> ConflictError | InvalidError:
    """A :class:`ProcurementError` as a 409 (the state does not allow it) or a 422 naming the API field."""
    name = FIELDS.get(exc.field) or "body." + exc.field.split(".", 1)[-1]
    kind = ConflictError if exc.field in STATE_FIELDS else InvalidError
    return kind(f"{name}: found {exc.found}, expected {exc.expected}")


@dataclass
class Outcome:
    """What one step did: the book after it, the events it recorded (with their row ids), the new awards, and the
    fleet version that added each award's contract and cluster (by award id)."""

    book: ProcurementBook
    events: list[ProcurementEventRow]
    awards: list[Award]
    versions: dict[str, str | None]


Step = Callable[[ProcurementBook], list[ProcEvent]]


def run_step(session: Session, now: datetime, actor: str, step: Step) -> Outcome:
    """Take the locks, load the fleet in force and the book, apply ``step``, write what changed, its events and a
    fleet version per new award (see the module docstring). The caller's transaction commits it all or nothing.

    The fleet is read after the locks are held: a step that read it before could build its award's fleet version
    on a fleet another step's award has since replaced, and drop that award's contract and cluster."""
    fleet_versions.lock(session)
    repo.lock(session)
    fleet = current_fleet(session)
    stored = repo.load(session)
    book = ProcurementBook.restore(fleet, stored.requests, stored.states, stored.offers, stored.quotes, stored.awards)
    try:
        events = step(book)
    except ProcurementError as exc:
        raise _api_error(exc) from None
    new = repo.save(
        session, stored, book.requests, book.states, book.offers, book.quotes.values(), book.awards, actor, now
    )
    versions = dict(stored.fleet_versions)
    if new:
        grown = fleet
        for award in new:
            contract, cluster = award_contract(award)
            grown = grown.model_copy(
                update={"contracts": [*grown.contracts, contract], "clusters": [*grown.clusters, cluster]}
            )
        version = fleet_service.record(session, grown, actor, now)
        for award in new:
            repo.set_fleet_version(session, award.id, version.version)
            versions[award.id] = version.version
    rows = repo.add_events(session, events)
    return Outcome(book, rows, new, versions)


def current_fleet(session: Session) -> Fleet:
    """The fleet in force (404 before any fleet was applied)."""
    row = fleet_versions.current(session)
    if row is None:
        raise NotFoundError("no fleet has been applied yet")
    return Fleet.model_validate(row.document)


def new_request_id() -> str:
    """A fresh capacity request id (short: the award's cluster id is built from it)."""
    return f"r-{uuid.uuid4().hex[:10]}"


def raise_request(session: Session, who: Principal, body: CapacityRequestIn, now: datetime) -> ProcurementStep:
    """Raise a capacity request (admin): it is offered to the right-of-first-refusal holder whose clause covers it,
    else taken to the market at once."""
    who.require_admin()
    req = CapacityRequest(
        new_request_id(),
        body.gpu_model,
        body.gpus,
        body.start,
        body.term_days,
        body.raised_by,
        who.actor,
        now,
        body.reason,
    )
    out = run_step(session, now, who.actor, lambda book: book.raise_request(req))
    return ProcurementStep(
        request=request_out(out.book, req.id, out.versions), events=[event_out(e) for e in out.events]
    )


def respond(session: Session, who: Principal, offer_id: str, body: RespondIn, now: datetime) -> ProcurementStep:
    """The holder's answer to an offer; 403 unless ``who`` is a ``provider`` token of the offer's holder, 404 for an
    unknown offer, 409 when it was answered already or its window closed, 422 for bad terms."""
    offer = repo.get_offer(session, offer_id)
    if offer is None:
        raise NotFoundError(f"no offer {found_text(offer_id)}")
    if who.role is not Role.PROVIDER or who.provider != offer.holder:
        whose = f"provider '{who.provider}'" if who.role is Role.PROVIDER else f"role '{who.role.value}'"
        raise ForbiddenError(
            f"only a 'provider' token of provider '{offer.holder}' (the holder of offer {offer.id}) may answer it; "
            f"token '{who.name}' has {whose}"
        )
    _answerable(offer, now)
    match = body.answer == "match"
    price, start = (body.price_per_gpu_hour_usd, body.start) if match else (None, None)

    def answer(book: ProcurementBook) -> list[ProcEvent]:
        return book.respond(offer.id, match, now, who.actor, price=price, start=start)

    out = run_step(session, now, who.actor, answer)
    return ProcurementStep(
        request=request_out(out.book, offer.request_id, out.versions), events=[event_out(e) for e in out.events]
    )


def _answerable(offer: Offer, now: datetime) -> None:
    """409 when ``offer`` was answered (or closed) already, or its response window closed before ``now``."""
    if offer.state is not OfferState.OPEN:
        by = f" by {offer.answered_by} at {_iso(offer.answered_at)}" if offer.answered_at is not None else ""
        raise ConflictError(f"offer {offer.id}: found it {offer.state.value}{by}, expected an open offer (one answer)")
    if now >= offer.deadline:
        raise ConflictError(
            f"offer {offer.id}: found an answer at {_iso(now)}, expected one before its deadline {_iso(offer.deadline)}"
            " (the response window is closed)"
        )


def _iso(at: datetime | None) -> str:
    return "" if at is None else at.isoformat().replace("+00:00", "Z")


def add_quote(session: Session, who: Principal, body: QuoteIn, now: datetime) -> QuoteStep:
    """Add a market quote (admin); requests waiting for one may be awarded at once."""
    who.require_admin()
    quote = Quote(
        f"q-{uuid.uuid4().hex[:10]}",
        body.provider,
        body.site,
        body.gpu_model,
        body.gpus_per_node,
        body.price_per_gpu_hour_usd,
        body.max_gpus,
        body.lead_time_days,
        body.valid_from,
        body.valid_until,
        "api",
    )
    out = run_step(session, now, who.actor, lambda book: book.add_quote(quote, now))
    return QuoteStep(quote=quote_out(quote), events=[event_out(e) for e in out.events])


def override(session: Session, who: Principal, request_id: str, reason: str, now: datetime) -> ProcurementStep:
    """Award a request that is over budget anyway (admin; the reason is recorded with the actor and time)."""
    who.require_admin()
    if not reason.strip():
        raise InvalidError("body.reason: found blank text, expected why the budget is overridden")

    def step(book: ProcurementBook) -> list[ProcEvent]:
        if request_id not in book.requests:
            raise NotFoundError(f"no capacity request {found_text(request_id)}")
        return book.override(request_id, reason, now, who.actor)

    out = run_step(session, now, who.actor, step)
    return ProcurementStep(
        request=request_out(out.book, request_id, out.versions), events=[event_out(e) for e in out.events]
    )


def tick(session: Session, now: datetime, requests: Sequence[CapacityRequest] = ()) -> Outcome:
    """The scheduler's step: raise ``requests`` (from queue pressure), then expire offers past their deadline and
    run the market steps that are due."""

    def step(book: ProcurementBook) -> list[ProcEvent]:
        events: list[ProcEvent] = []
        for req in requests:
            try:
                events += book.raise_request(req)
            except ProcurementError:  # e.g. a model the fleet no longer has: the gauge asks again later
                continue
        return events + book.tick(now)

    return run_step(session, now, "scheduler", step)


def restore(session: Session, fleet: Fleet) -> tuple[ProcurementBook, dict[str, str | None]]:
    """The book as stored, read only (for listings, the budget and the loop's next deadline), and the fleet version
    of each award."""
    stored = repo.load(session)
    book = ProcurementBook.restore(fleet, stored.requests, stored.states, stored.offers, stored.quotes, stored.awards)
    return book, stored.fleet_versions


def list_requests(session: Session, who: Principal) -> list[CapacityRequestOut]:
    """Every capacity request, newest first (not for provider tokens)."""
    who.require_not_provider()
    book, versions = restore(session, current_fleet(session))
    ids = sorted(book.requests, key=lambda r: (book.requests[r].at, r), reverse=True)
    return [request_out(book, r, versions) for r in ids]


def get_request(session: Session, who: Principal, request_id: str) -> CapacityRequestOut:
    """One capacity request (404 when unknown)."""
    who.require_not_provider()
    book, versions = restore(session, current_fleet(session))
    if request_id not in book.requests:
        raise NotFoundError(f"no capacity request {found_text(request_id)}")
    return request_out(book, request_id, versions)


def list_offers(session: Session, who: Principal, state: str | None = None) -> list[OfferOut]:
    """Offers, newest first: a provider token sees only those made to its provider."""
    book, _ = restore(session, current_fleet(session))
    offers = [o for o in book.offers.values() if who.role is not Role.PROVIDER or o.holder == who.provider]
    if state is not None:
        offers = [o for o in offers if o.state.value == state]
    offers.sort(key=lambda o: (o.offered_at, o.id), reverse=True)
    return [offer_out(book, o) for o in offers]


def list_quotes(session: Session, who: Principal) -> list[QuoteOut]:
    """Every quote the market gives (the fleet's price book and those entered through the API)."""
    who.require_not_provider()
    book, _ = restore(session, current_fleet(session))
    return [quote_out(q) for q in sorted(book.quotes.values(), key=lambda q: (q.gpu_model, q.price, q.id))]


def list_events(
    session: Session, who: Principal, request_id: str | None, after: str | None, limit: int
) -> ProcEventPage:
    """Procurement events oldest first after the cursor; a provider token sees only those of its offers."""
    after_id = None
    if after is not None:
        if not (after.isascii() and after.isdigit() and len(after) <= 18):
            raise InvalidError(f"after: found {found_text(after)}, expected a cursor from a previous page")
        after_id = int(after)
    offer_ids = None
    if who.role is Role.PROVIDER:
        book, _ = restore(session, current_fleet(session))
        offer_ids = [o.id for o in book.offers.values() if o.holder == who.provider]
    rows, cursor = repo.events(session, request_id=request_id, offer_ids=offer_ids, after_id=after_id, limit=limit)
    return ProcEventPage(items=[event_out(r) for r in rows], next_cursor=None if cursor is None else str(cursor))


def contracts(session: Session, who: Principal, spent: dict[str, Decimal] | None) -> list[ContractOut]:
    """The contracts of the fleet in force (a provider token: its provider's only), with what was spent under
    each (``spent``, admin only) and the request each award contract came from."""
    fleet = current_fleet(session)
    stored = repo.load(session)
    awarded = {f"award-{a.request_id}": a.request_id for a in stored.awards.values()}
    out = []
    for c in fleet.contracts:
        if who.role is Role.PROVIDER and c.provider != who.provider:
            continue
        extra = {
            "spent_usd": None if spent is None else spent.get(c.id, Decimal(0)),
            "awarded_for": awarded.get(c.id),
        }
        out.append(ContractOut.model_validate(c.model_dump() | extra))
    return out


def budget(session: Session, who: Principal) -> dict[str, object]:
    """The budget report: every draw, drawn, headroom, beyond the initial envelope, conflicts (not for providers)."""
    who.require_not_provider()
    book, _ = restore(session, current_fleet(session))
    return book.budget().report().to_dict()


def request_out(book: ProcurementBook, request_id: str, versions: dict[str, str | None]) -> CapacityRequestOut:
    """The API view of a request with its latest offer and its award (``versions``: each award's fleet version)."""
    req = book.requests[request_id]
    offers = sorted((o for o in book.offers.values() if o.request_id == request_id), key=lambda o: o.offered_at)
    award = next((a for a in book.awards.values() if a.request_id == request_id), None)
    return CapacityRequestOut(
        id=req.id,
        gpu_model=req.gpu_model,
        gpus=req.gpus,
        start=req.start,
        term_days=req.term_days,
        raised_by=req.raised_by,
        actor=req.actor,
        at=req.at,
        reason=req.reason,
        state=book.states[request_id].value,
        offer=offer_out(book, offers[-1]) if offers else None,
        award=None if award is None else award_out(award, versions.get(award.id)),
    )


def offer_out(book: ProcurementBook, o: Offer) -> OfferOut:
    """The API view of an offer, with its request's terms."""
    req = book.requests[o.request_id]
    return OfferOut(
        id=o.id,
        request_id=o.request_id,
        holder=o.holder,
        contract_id=o.contract_id,
        match_rule=o.match_rule,
        offered_at=o.offered_at,
        deadline=o.deadline,
        benchmark_price_per_gpu_hour_usd=o.benchmark_price,
        benchmark_start=o.benchmark_start,
        state=o.state.value,
        answered_at=o.answered_at,
        answered_by=o.answered_by,
        price_per_gpu_hour_usd=o.price,
        start=o.start,
        gpu_model=req.gpu_model,
        gpus=req.gpus,
        request_start=req.start,
        term_days=req.term_days,
    )


def award_out(a: Award, fleet_version: str | None) -> AwardOut:
    """The API view of an award."""
    return AwardOut(
        id=a.id,
        request_id=a.request_id,
        provider=a.provider,
        site=a.site,
        gpu_model=a.gpu_model,
        gpus=a.gpus,
        gpus_per_node=a.gpus_per_node,
        price_per_gpu_hour_usd=a.price,
        start=a.start,
        end=a.end,
        cost_usd=a.cost_usd,
        via=a.via,
        quote_id=a.quote_id,
        at=a.at,
        override_reason=a.override_reason,
        override_by=a.override_by,
        contract_id=f"award-{a.request_id}",
        fleet_version=fleet_version,
    )


def quote_out(q: Quote) -> QuoteOut:
    """The API view of a quote."""
    return QuoteOut(
        id=q.id,
        provider=q.provider,
        site=q.site,
        gpu_model=q.gpu_model,
        gpus_per_node=q.gpus_per_node,
        price_per_gpu_hour_usd=q.price,
        max_gpus=q.max_gpus,
        lead_time_days=q.lead_time_days,
        valid_from=q.valid_from,
        valid_until=q.valid_until,
        source=q.source,
    )


def event_out(row: ProcurementEventRow) -> ProcEventOut:
    """The API view of an event row."""
    return ProcEventOut(
        id=row.id,
        at=row.at,
        request_id=row.request_id,
        offer_id=row.offer_id,
        kind=row.kind,
        actor=row.actor,
        reason=row.reason,
    )
