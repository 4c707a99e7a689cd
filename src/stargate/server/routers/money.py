"""Contracts, procurement (capacity requests, offers, quotes, overrides, events), the budget and costs.

Who may do what: every role reads contracts (a ``provider`` token: its provider's only) and offers (a provider
token: those made to its provider); admins, members and viewers read requests, quotes, events and the budget; only
admins raise requests, add quotes and override the budget; only a ``provider`` token of the offer's holder answers
an offer (everyone else, admins included, gets 403). Costs: members and viewers see their own team's, admins all.
"""

from collections.abc import Iterator
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from stargate.server.deps import AdminDep, AnyPrincipalDep, CtxDep, NowDep, PrincipalDep, ReadSessionDep
from stargate.server.routers.strict import StrictJsonRoute
from stargate.server.schemas_money import (
    CapacityRequestIn,
    CapacityRequestOut,
    ContractOut,
    CostsOut,
    OfferOut,
    OverrideIn,
    ProcEventPage,
    ProcurementStep,
    QuoteIn,
    QuoteOut,
    QuoteStep,
    RespondIn,
)
from stargate.server.services import costs as cost_service
from stargate.server.services import procurement as service

router = APIRouter(route_class=StrictJsonRoute)

IdPath = Annotated[str, Path(max_length=40)]


@router.get("/contracts", response_model=list[ContractOut], tags=["money"])
def list_contracts(who: AnyPrincipalDep, session: ReadSessionDep, now: NowDep) -> list[ContractOut]:
    """The contracts of the fleet in force (a provider token: its provider's), with what was spent under each so
    far (``spent_usd``, admins only)."""
    spent = None
    if who.is_admin:
        spent = cost_service.spent_by_contract(session, now)
    return service.contracts(session, who, spent)


@router.get("/procurement/requests", response_model=list[CapacityRequestOut], tags=["money"])
def list_requests(who: PrincipalDep, session: ReadSessionDep) -> list[CapacityRequestOut]:
    """Every capacity request, newest first, with its latest offer and its award."""
    return service.list_requests(session, who)


@router.get("/procurement/requests/{request_id}", response_model=CapacityRequestOut, tags=["money"])
def get_request(who: PrincipalDep, request_id: IdPath, session: ReadSessionDep) -> CapacityRequestOut:
    """One capacity request."""
    return service.get_request(session, who, request_id)


@router.post("/procurement/requests", response_model=ProcurementStep, status_code=201, tags=["money"])
def raise_request(who: AdminDep, body: CapacityRequestIn, ctx: CtxDep, now: NowDep) -> ProcurementStep:
    """Raise a capacity request (admin): offered to the right-of-first-refusal holder whose clause covers it, else
    taken to the market at once (awarded when a quote fits the budget)."""
    with ctx.db.write() as session:
        return service.raise_request(session, who, body, now)


@router.post("/procurement/requests/{request_id}/override", response_model=ProcurementStep, tags=["money"])
def override(who: AdminDep, request_id: IdPath, body: OverrideIn, ctx: CtxDep, now: NowDep) -> ProcurementStep:
    """Award a request that is over budget anyway (admin); the reason is recorded with who and when."""
    with ctx.db.write() as session:
        return service.override(session, who, request_id, body.reason, now)


@router.get("/procurement/offers", response_model=list[OfferOut], tags=["money"])
def list_offers(
    who: AnyPrincipalDep,
    session: ReadSessionDep,
    state: Annotated[Literal["open", "matched", "declined", "expired", "not_matched"] | None, Query()] = None,
) -> list[OfferOut]:
    """Offers to right-of-first-refusal holders, newest first (a provider token: those made to its provider)."""
    return service.list_offers(session, who, state)


@router.post("/procurement/offers/{offer_id}/respond", response_model=ProcurementStep, tags=["money"])
def respond(who: AnyPrincipalDep, offer_id: IdPath, body: RespondIn, ctx: CtxDep, now: NowDep) -> ProcurementStep:
    """Answer an offer: only a ``provider`` token of the offer's holder may (403 for anyone else, admins too); 409
    when it was answered already or its window closed; 422 for terms that are not a price or a day."""
    with ctx.db.write() as session:
        return service.respond(session, who, offer_id, body, now)


@router.get("/procurement/quotes", response_model=list[QuoteOut], tags=["money"])
def list_quotes(who: PrincipalDep, session: ReadSessionDep) -> list[QuoteOut]:
    """The market's quotes: the fleet's price book and those entered through the API."""
    return service.list_quotes(session, who)


@router.post("/procurement/quotes", response_model=QuoteStep, status_code=201, tags=["money"])
def add_quote(who: AdminDep, body: QuoteIn, ctx: CtxDep, now: NowDep) -> QuoteStep:
    """Add a market quote (admin); requests waiting in the market for one may be awarded at once."""
    with ctx.db.write() as session:
        return service.add_quote(session, who, body, now)


@router.get("/procurement/events", response_model=ProcEventPage, tags=["money"])
def list_events(
    who: AnyPrincipalDep,
    session: ReadSessionDep,
    request_id: Annotated[str | None, Query(max_length=40)] = None,
    after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ProcEventPage:
    """Procurement steps oldest first after the cursor ``after`` (who, when, what, why); a provider token sees
    those of its offers."""
    return service.list_events(session, who, request_id, after, limit)


@router.get("/budget", tags=["money"])
def get_budget(who: PrincipalDep, session: ReadSessionDep) -> dict[str, object]:
    """The budget: every draw, drawn, headroom (ceiling − drawn), what is beyond the initial envelope, conflicts."""
    return service.budget(session, who)


@router.get("/costs", response_model=CostsOut, tags=["money"])
def get_costs(
    who: PrincipalDep,
    session: ReadSessionDep,
    now: NowDep,
    by: Annotated[str, Query(max_length=16)] = "team",
    since: date | None = None,
    until: date | None = None,
) -> CostsOut:
    """What runs cost, grouped by team, contract, provider, day, queue or job (members and viewers: their team's
    runs only); ``since``/``until``: whole UTC days, inclusive."""
    return cost_service.costs(session, who, by, now, since, until)


FOCUS_CHUNK = 64 * 1024
"""Bytes per chunk of a streamed FOCUS export."""


@router.get(
    "/costs/focus",
    tags=["money"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "FOCUS 1.0 CSV, one row per run and UTC day."}},
)
def get_focus(
    who: PrincipalDep,
    ctx: CtxDep,
    now: NowDep,
    since: date | None = None,
    until: date | None = None,
    billing_account: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> StreamingResponse:
    """The ledger as a FOCUS 1.0 CSV (members and viewers: their team's runs); ``billing_account`` fills
    BillingAccountId (default: the fleet's name)."""
    with ctx.db.read() as session:
        account = billing_account or service.current_fleet(session).name
        spool = cost_service.focus_export(session, who, now, since, until, account)

    def chunks() -> Iterator[bytes]:
        with spool:
            while block := spool.read(FOCUS_CHUNK):
                yield block

    name = f"stargate-focus-{now:%Y%m%dT%H%M%SZ}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers=headers)


@router.post(
    "/costs/reconcile",
    tags=["money"],
    openapi_extra={"requestBody": {"content": {"text/csv": {}}, "required": True}},
)
async def reconcile_bill(who: AdminDep, ctx: CtxDep, now: NowDep, request: Request) -> dict[str, object]:
    """Compare a provider's FOCUS bill (the CSV as the body) with the ledger (admin): charges missing from the
    bill, extra in it, or off by more than 0.01 USD (``ok`` false when there is any); 422 naming the line and column
    of a bill with an unknown column, another currency or a bad value."""
    data = await request.body()

    def run() -> dict[str, object]:
        with ctx.db.read() as session:
            return cost_service.reconcile_bill(session, who, now, data)

    return await run_in_threadpool(run)
