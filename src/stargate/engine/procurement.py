"""Procurement: the right-of-first-refusal state machine, the market award, exclusivity and the budget check.

A capacity request is raised (by queue pressure, the plan or a user). If a contract's right of first refusal covers
it (valid on the raise day, in scope for its GPU model; first by contract id), an :class:`Offer` goes to the
holder with a deadline (raise instant + response window) and the benchmark (the best market terms at that
instant). The holder matches or declines before the deadline (a response at the deadline is late; a tick at the
deadline expires the offer). A match whose terms fail the clause's match rule is ``not_matched``. Declined, expired,
not matched, or no clause: the request goes to the market, where the cheapest feasible quote wins (exclusivity
keeps other providers out). An award within the budget is made at once; one over budget waits for an admin
override with a recorded reason. See docs/reference/procurement.md for every rule and event.

Pure: no I/O, no clock (every action takes ``now``), deterministic (same calls, same events).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from stargate.domain import Contract, Fleet
from stargate.domain.limits import MAX_USD
from stargate.engine import procurement_checks as check
from stargate.engine.budget import BudgetBook
from stargate.engine.procurement_award import (
    Place,
    Terms,
    award_contract,
    award_words,
    holder_place,
    make_award,
    rule_fails,
)
from stargate.engine.procurement_market import QuoteIndex, excluded_by, exclusions, term_cost, valid_on, whole_nodes
from stargate.engine.procurement_types import (
    EVENT_KINDS,
    Award,
    CapacityRequest,
    Offer,
    OfferState,
    ProcEvent,
    ProcurementError,
    Quote,
    RequestState,
)

__all__ = [
    "EVENT_KINDS",
    "Award",
    "CapacityRequest",
    "Offer",
    "OfferState",
    "ProcEvent",
    "ProcurementBook",
    "ProcurementError",
    "Quote",
    "RequestState",
    "award_contract",
]

SYSTEM = "procurement"
"""The actor of steps nobody took by hand (expiry, market steps)."""


def offer_id_for(request_id: str) -> str:
    """The id of the offer made for ``request_id`` (at most one per request)."""
    return f"offer-{request_id}"


class ProcurementBook:
    """All requests, offers, quotes and awards, and the pure rules that move them.

    State is plain dicts (id → dataclass) so a server can load and save rows: ``requests``, ``states`` (request id
    → :class:`RequestState`), ``offers``, ``quotes``, ``awards`` (by award id, ``award-<request id>``) and
    ``events`` (append-only). Every action returns the events it appended; a refused action raises
    :class:`ProcurementError` and changes nothing.
    """

    def __init__(self, fleet: Fleet, *, rofr: bool = True) -> None:
        """A book over ``fleet`` with its price book as quotes (``price-book-1``, ...); ``rofr=False`` ignores
        right-of-first-refusal clauses (a what-if)."""
        self.fleet = fleet
        self.rofr = rofr
        self.requests: dict[str, CapacityRequest] = {}
        self.states: dict[str, RequestState] = {}
        self.offers: dict[str, Offer] = {}
        self.quotes: dict[str, Quote] = {}
        self.awards: dict[str, Award] = {}
        self.events: list[ProcEvent] = []
        self._waiting: set[str] = set()
        """Requests in the market or unfilled (what a new quote or a tick may award)."""
        self._open: set[str] = set()
        """Offers still open."""
        self._models = set(fleet.catalogue())
        self._site_provider = {s.id: s.provider for s in fleet.sites if s.provider in {p.id for p in fleet.providers}}
        self._providers = set(self._site_provider.values())
        self._excl = exclusions(list(fleet.contracts))
        self._clauses = sorted((c for c in fleet.contracts if c.right_of_first_refusal is not None), key=lambda c: c.id)
        self._index = QuoteIndex()
        self._budget = BudgetBook(fleet)
        for i, e in enumerate(fleet.procurement.price_book):
            q = Quote(
                id=f"price-book-{i + 1}",
                provider=e.provider,
                site=e.site,
                gpu_model=e.gpu_model,
                gpus_per_node=e.gpus_per_node,
                price=e.price_per_gpu_hour_usd,
                max_gpus=e.max_gpus,
                lead_time_days=e.lead_time_days,
                valid_from=e.valid_from,
                valid_until=e.valid_until,
                source="price_book",
            )
            self.quotes[q.id] = q
            self._index.add(q)

    @classmethod
    def restore(
        cls,
        fleet: Fleet,
        requests: Mapping[str, CapacityRequest],
        states: Mapping[str, RequestState],
        offers: Mapping[str, Offer],
        quotes: Mapping[str, Quote],
        awards: Mapping[str, Award],
        *,
        rofr: bool = True,
        events: Iterable[ProcEvent] = (),
    ) -> ProcurementBook:
        """A book holding saved state. Price-book quotes come from ``fleet`` (a saved ``price_book`` quote of the
        same id is replaced by the fleet's); saved ``api`` quotes are kept."""
        book = cls(fleet, rofr=rofr)
        for q in quotes.values():
            if q.source == "api" or q.id not in book.quotes:
                book.quotes[q.id] = q
                book._index.add(q)
        book.requests = dict(requests)
        book.states = {k: RequestState(v) for k, v in states.items()}
        book.offers = dict(offers)
        book.awards = dict(awards)
        for a in sorted(book.awards.values(), key=lambda a: (a.at, a.id)):
            book._budget.add_award(a)
        book.events = list(events)
        book._waiting = {r for r, s in book.states.items() if s in (RequestState.MARKET, RequestState.UNFILLED)}
        book._open = {o.id for o in book.offers.values() if o.state is OfferState.OPEN}
        return book

    # -- actions ---------------------------------------------------------------------------------------------------
    def raise_request(self, req: CapacityRequest) -> list[ProcEvent]:
        """Take a new request: offer it to the first-refusal holder when a clause covers it, else go to market."""
        check.check_request(req, self.requests, self._models)
        at = check.instant(req.at, "raise_request.at")
        req = replace(req, at=at)
        out: list[ProcEvent] = []
        self.requests[req.id] = req
        self._set(req.id, RequestState.MARKET)
        self._emit(out, at, req.id, None, "raised", req.actor, self._describe(req))
        clause = self.clause_for(req.gpu_model, at.date()) if self.rofr else None
        if clause is None:
            why = (
                "right of first refusal ignored (what-if)"
                if not self.rofr
                else f"no right of first refusal covers {req.gpu_model} on {at.date().isoformat()}"
            )
            self._emit(out, at, req.id, None, "market", SYSTEM, why)
            self._market_step(req.id, at, SYSTEM, out)
            return out
        rofr = clause.right_of_first_refusal
        assert rofr is not None
        blocked = excluded_by(self._excl, rofr.holder, req.gpu_model, at.date())
        if blocked is not None:
            why = f"holder '{rofr.holder}' of contract '{clause.id}' kept out by {blocked.words()}"
            self._emit(out, at, req.id, None, "excluded", SYSTEM, why)
            self._emit(out, at, req.id, None, "market", SYSTEM, "the first refusal cannot be honoured: " + why)
            self._market_step(req.id, at, SYSTEM, out)
            return out
        choice, _ = self._index.cheapest(req.gpu_model, req.gpus, req.start, req.term_days, at.date(), self._excl)
        offer = Offer(
            id=offer_id_for(req.id),
            request_id=req.id,
            holder=rofr.holder,
            contract_id=clause.id,
            match_rule=str(rofr.match_rule),
            offered_at=at,
            deadline=at + timedelta(days=rofr.response_window_days),
            benchmark_price=choice.quote.price if choice else None,
            benchmark_start=choice.start if choice else None,
            state=OfferState.OPEN,
            answered_at=None,
            answered_by=None,
            price=None,
            start=None,
        )
        self.offers[offer.id] = offer
        self._open.add(offer.id)
        self._set(req.id, RequestState.OFFERED)
        bench = (
            f"benchmark {offer.benchmark_price} USD per GPU-hour from {offer.benchmark_start.isoformat()}"
            if choice is not None and offer.benchmark_start is not None
            else "no market quote to benchmark"
        )
        why = (
            f"first refusal of contract '{clause.id}' to '{rofr.holder}' ({offer.match_rule}), answer before "
            f"{offer.deadline.isoformat()}; {bench}"
        )
        self._emit(out, at, req.id, offer.id, "offered", SYSTEM, why)
        return out

    def add_quote(self, quote: Quote, now: datetime) -> list[ProcEvent]:
        """Take a market quote; requests of its model waiting in the market (or unfilled) are tried again at once."""
        check.check_quote(quote, self.quotes, self._site_provider, self._providers, self._models)
        now = check.instant(now, "add_quote.now")
        self.quotes[quote.id] = quote
        self._index.add(quote)
        out: list[ProcEvent] = []
        for rid in self._in_order(self._waiting):
            if self.requests[rid].gpu_model == quote.gpu_model:
                self._market_step(rid, now, SYSTEM, out)
        return out

    def respond(
        self,
        offer_id: str,
        match: bool,
        now: datetime,
        actor: str,
        price: Decimal | None = None,
        start: date | None = None,
    ) -> list[ProcEvent]:
        """The holder's answer to an offer, strictly before its deadline.

        ``match`` without terms takes the benchmark's (price, then start; the request's start when there is no
        benchmark); with no benchmark a match must name its price. A match whose terms fail the clause's rule is
        ``not_matched`` and the request goes to the market. Refused (nothing changed): an unknown offer, a second
        answer, an answer at or after the deadline or before the offer, a bad price or start.
        """
        offer = self.offers.get(offer_id) if isinstance(offer_id, str) else None
        if offer is None:
            raise ProcurementError("respond.offer_id", check.shown(offer_id), "the id of an offer")
        now = check.instant(now, "respond.now")
        if offer.state is not OfferState.OPEN:
            when = f" at {offer.answered_at.isoformat()}" if offer.answered_at else f" at {offer.deadline.isoformat()}"
            raise ProcurementError(
                "respond.offer_id", f"offer '{offer.id}' already {offer.state}{when}", "an open offer (one answer each)"
            )
        if now >= offer.deadline:
            raise ProcurementError(
                "respond.now",
                f"{now.isoformat()}, at or after the deadline {offer.deadline.isoformat()} (late)",
                "an answer strictly before the deadline",
            )
        if now < offer.offered_at:
            raise ProcurementError(
                "respond.now", f"{now.isoformat()}, before the offer ({offer.offered_at.isoformat()})", "a later time"
            )
        if not isinstance(match, bool):
            raise ProcurementError("respond.match", check.shown(match), "true (match) or false (decline)")
        check.text(actor, "respond.actor", check.MAX_ACTOR_CHARS, required=True)
        req = self.requests[offer.request_id]
        out: list[ProcEvent] = []
        if not match:
            self._close(replace(offer, state=OfferState.DECLINED, answered_at=now, answered_by=actor))
            self._emit(out, now, req.id, offer.id, "declined", actor, f"'{offer.holder}' declined")
            self._to_market(req.id, now, f"holder '{offer.holder}' declined", out)
            return out
        place = self._holder_place(offer.holder, req.gpu_model, now.date())
        own_price = place.price if place is not None else None
        terms_price = check.price(price, "respond.price") if price is not None else offer.benchmark_price or own_price
        if terms_price is None:
            raise ProcurementError(
                "respond.price",
                "nothing (no market quote to match and no price of the holder's own for the model)",
                "the holder's price per GPU-hour in USD",
            )
        terms_start = check.day(start, "respond.start") if start is not None else offer.benchmark_start or req.start
        terms_start = max(terms_start, req.start)
        gpus = whole_nodes(req.gpus, place.gpus_per_node) if place else req.gpus
        cost = term_cost(gpus, terms_price, req.term_days)
        if cost > MAX_USD:
            raise ProcurementError(
                "respond.price",
                f"{terms_price} (an award of {cost:,} USD)",
                "a price that keeps the award at most 10^14 USD",
            )
        failed = rule_fails(offer, terms_price, terms_start)
        if failed is None and place is None:
            failed = f"holder '{offer.holder}' has no site where the capacity could land"
        answered = replace(offer, answered_at=now, answered_by=actor, price=terms_price, start=terms_start)
        if failed is not None:
            self._close(replace(answered, state=OfferState.NOT_MATCHED))
            self._emit(out, now, req.id, offer.id, "not_matched", actor, failed)
            self._to_market(req.id, now, f"holder '{offer.holder}' did not match: {failed}", out)
            return out
        assert place is not None
        self._close(replace(answered, state=OfferState.MATCHED))
        words = f"{terms_price} USD per GPU-hour from {terms_start.isoformat()}"
        self._emit(out, now, req.id, offer.id, "matched", actor, f"'{offer.holder}' matched: {words}")
        terms = Terms(offer.holder, place.site, place.gpus_per_node, gpus, terms_price, terms_start, "holder")
        self._try_award(req, terms, now, out)
        return out

    def tick(self, now: datetime) -> list[ProcEvent]:
        """Expire open offers whose deadline is at or before ``now`` (each at its deadline, where its market step
        runs too), then run the market step of requests waiting in the market."""
        now = check.instant(now, "tick.now")
        out: list[ProcEvent] = []
        due = sorted(
            (o for o in map(self.offers.__getitem__, self._open) if o.deadline <= now), key=lambda o: (o.deadline, o.id)
        )
        for o in due:
            self._close(replace(o, state=OfferState.EXPIRED))
            why = f"'{o.holder}' did not answer before {o.deadline.isoformat()}"
            self._emit(out, o.deadline, o.request_id, o.id, "expired", SYSTEM, why)
            self._to_market(o.request_id, o.deadline, f"offer to '{o.holder}' expired", out)
        for rid in self._in_order(self._waiting):
            if self.states[rid] is RequestState.MARKET and self._index.has_model(self.requests[rid].gpu_model):
                self._market_step(rid, now, SYSTEM, out)
        return out

    def override(self, request_id: str, reason: str, now: datetime, actor: str) -> list[ProcEvent]:
        """An admin's recorded decision to buy an over-budget request anyway: the holder's matched terms, else the
        cheapest feasible quote at ``now`` (none left: the request is unfilled)."""
        state = self.states.get(request_id) if isinstance(request_id, str) else None
        if state is None:
            raise ProcurementError("override.request_id", check.shown(request_id), "the id of a capacity request")
        if state is not RequestState.OVER_BUDGET:
            raise ProcurementError("override.request_id", f"'{request_id}' ({state})", "a request over budget")
        reason = check.text(reason, "override.reason", check.MAX_REASON_CHARS, required=True)
        actor = check.text(actor, "override.actor", check.MAX_ACTOR_CHARS, required=True)
        now = check.instant(now, "override.now")
        req = self.requests[request_id]
        offer = self.offers.get(offer_id_for(request_id))
        out: list[ProcEvent] = []
        if offer is not None and offer.state is OfferState.MATCHED and offer.price is not None and offer.start:
            place = self._holder_place(offer.holder, req.gpu_model, now.date())
            assert place is not None
            gpus = whole_nodes(req.gpus, place.gpus_per_node)
            terms = Terms(offer.holder, place.site, place.gpus_per_node, gpus, offer.price, offer.start, "holder")
        else:
            choice, _ = self._index.cheapest(req.gpu_model, req.gpus, req.start, req.term_days, now.date(), self._excl)
            if choice is None:
                self._set(request_id, RequestState.UNFILLED)
                self._emit(out, now, request_id, None, "unfilled", SYSTEM, "no feasible quote is left to override for")
                return out
            terms = Terms.of(choice)
        budget = self._budget.check(terms.cost(req.term_days), now.date())
        self._emit(out, now, request_id, None, "overridden", actor, f"{reason} (over budget: {budget.reason})")
        self._award(req, terms, now, out, override=(reason, actor))
        return out

    def cancel(self, request_id: str, reason: str, now: datetime, actor: str) -> list[ProcEvent]:
        """Withdraw a request in the market, over budget or unfilled (an offered request waits for the holder's
        answer or deadline: the first refusal is honoured)."""
        state = self.states.get(request_id) if isinstance(request_id, str) else None
        if state is None:
            raise ProcurementError("cancel.request_id", check.shown(request_id), "the id of a capacity request")
        if state not in (RequestState.MARKET, RequestState.OVER_BUDGET, RequestState.UNFILLED):
            raise ProcurementError(
                "cancel.request_id", f"'{request_id}' ({state})", "a request in the market, over budget or unfilled"
            )
        reason = check.text(reason, "cancel.reason", check.MAX_REASON_CHARS, required=False)
        actor = check.text(actor, "cancel.actor", check.MAX_ACTOR_CHARS, required=True)
        now = check.instant(now, "cancel.now")
        out: list[ProcEvent] = []
        self._set(request_id, RequestState.CANCELLED)
        self._emit(out, now, request_id, None, "cancelled", actor, reason or "cancelled")
        return out

    # -- queries ---------------------------------------------------------------------------------------------------
    def next_deadline(self) -> datetime | None:
        """The earliest deadline of an open offer (when :meth:`tick` has something to do next), or None."""
        return min((self.offers[o].deadline for o in self._open), default=None)

    def budget(self) -> BudgetBook:
        """The budget's draws: the fleet's plus every award so far."""
        return self._budget

    def open_models(self) -> set[str]:
        """GPU models with a request still open (offered, in the market or over budget), for the pressure gauge."""
        return {self.requests[r].gpu_model for r, s in self.states.items() if s.is_open()}

    def clause_for(self, gpu_model: str, day: date) -> Contract | None:
        """The contract whose right of first refusal covers ``gpu_model`` on ``day`` (first by contract id)."""
        for c in self._clauses:
            r = c.right_of_first_refusal
            if r is None or not r.valid_from <= day <= r.valid_until:
                continue
            if not r.gpu_models or gpu_model in r.gpu_models:
                return c
        return None

    # -- steps -----------------------------------------------------------------------------------------------------
    def _set(self, rid: str, state: RequestState) -> None:
        self.states[rid] = state
        if state in (RequestState.MARKET, RequestState.UNFILLED):
            self._waiting.add(rid)
        else:
            self._waiting.discard(rid)

    def _close(self, offer: Offer) -> None:
        self.offers[offer.id] = offer
        self._open.discard(offer.id)

    def _in_order(self, ids: set[str]) -> list[str]:
        """``ids`` of requests in the order they were raised (then by id): the same on a restored book."""
        return sorted(ids, key=lambda r: (self.requests[r].at, r))

    def _emit(
        self, out: list[ProcEvent], at: datetime, rid: str, oid: str | None, kind: str, actor: str, reason: str
    ) -> None:
        event = ProcEvent(at, rid, oid, kind, actor, reason)
        self.events.append(event)
        out.append(event)

    def _to_market(self, rid: str, at: datetime, why: str, out: list[ProcEvent]) -> None:
        self._set(rid, RequestState.MARKET)
        self._emit(out, at, rid, offer_id_for(rid), "market", SYSTEM, why)
        self._market_step(rid, at, SYSTEM, out)

    def _market_step(self, rid: str, at: datetime, actor: str, out: list[ProcEvent]) -> None:
        """Award the cheapest feasible quote, or mark the request over budget or unfilled; with no quote of its model
        at all it waits in the market."""
        req = self.requests[rid]
        offer = self.offers.get(offer_id_for(rid))
        assert offer is None or offer.state is not OfferState.OPEN, "no market step while the holder may answer"
        day = at.date()
        choice, skipped = self._index.cheapest(req.gpu_model, req.gpus, req.start, req.term_days, day, self._excl)
        for q, clause in skipped:
            why = f"quote '{q.id}' from '{q.provider}' at {q.price} USD per GPU-hour kept out by {clause.words()}"
            self._emit(out, at, rid, None, "excluded", SYSTEM, why)
        if choice is None:
            if self._index.has_model(req.gpu_model) and self.states[rid] is not RequestState.UNFILLED:
                self._set(rid, RequestState.UNFILLED)
                valid = sum(1 for q in self.quotes.values() if q.gpu_model == req.gpu_model and valid_on(q, day))
                why = (
                    f"no feasible quote for {req.gpus:,} {req.gpu_model} GPUs on {day.isoformat()}: {valid:,} valid "
                    f"that day, {len(skipped):,} kept out by exclusivity, the rest too small or too costly"
                )
                self._emit(out, at, rid, None, "unfilled", actor, why)
            return
        self._try_award(req, Terms.of(choice), at, out)

    def _try_award(self, req: CapacityRequest, terms: Terms, at: datetime, out: list[ProcEvent]) -> None:
        budget = self._budget.check(terms.cost(req.term_days), at.date())
        if not budget.ok:
            self._set(req.id, RequestState.OVER_BUDGET)
            src = f"quote '{terms.quote_id}'" if terms.quote_id else f"holder '{terms.provider}'"
            why = f"{src} at {terms.price} USD per GPU-hour for {terms.gpus:,} GPUs: {budget.reason}; waiting for an "
            self._emit(out, at, req.id, None, "over_budget", SYSTEM, why + "override")
            return
        self._award(req, terms, at, out)

    def _award(
        self,
        req: CapacityRequest,
        terms: Terms,
        at: datetime,
        out: list[ProcEvent],
        override: tuple[str, str] | None = None,
    ) -> None:
        award = make_award(req, terms, at, override)
        self.awards[award.id] = award
        self._budget.add_award(award)
        self._set(req.id, RequestState.AWARDED)
        actor = override[1] if override else SYSTEM
        oid = offer_id_for(req.id) if terms.via == "holder" else None
        self._emit(out, at, req.id, oid, "awarded", actor, award_words(award))

    def _holder_place(self, holder: str, gpu_model: str, day: date) -> Place | None:
        return holder_place(holder, gpu_model, day, self.quotes.values(), self._site_provider, self.fleet.clusters)

    def _describe(self, req: CapacityRequest) -> str:
        what = f"{req.gpus:,} {req.gpu_model} GPUs from {req.start.isoformat()} for {req.term_days:,} days"
        return f"{what} ({req.raised_by}){': ' + req.reason if req.reason else ''}"
