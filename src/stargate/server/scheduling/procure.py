"""Scheduler loop, step 5: procurement. The leader raises capacity requests from persistent queue pressure (the
kept driver's waiting GPUs, through the fleet's ``procurement.pressure`` gauge) and ticks the procurement book
when an offer's deadline has come or the fleet changed (offers expire, requests go to the market); an award becomes
a new fleet version, which the next cycle decides with.

Cheap when there is nothing to do: one read of the newest procurement event id per cycle; the book is loaded again
only when that id moved (a step through the API or another server), and written only when a deadline is due, the
fleet changed or pressure raised a request. The gauge lives in memory: a restarted leader starts measuring pressure
again (at most ``sustain_hours`` late).
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from stargate.domain import Fleet
from stargate.engine.pressure import PressureGauge
from stargate.engine.procurement_types import CapacityRequest, RequestState
from stargate.server.context import ProcureState, ServerContext
from stargate.server.errors import NotFoundError
from stargate.server.scheduling.apply import LostLeadershipError
from stargate.server.services import procurement as service
from stargate.server.terms import engine_seconds
from stargate.store.repositories import procurement as repo

log = logging.getLogger("stargate.scheduler")


@dataclass
class Procured:
    """What one procurement step of the loop did."""

    raised: int = 0
    events: int = 0
    awards: int = 0


def step(ctx: ServerContext, now: datetime) -> Procured:
    """Raise pressure requests and tick the book when something is due (see the module docstring)."""
    state = ctx.loop.procure
    if state is None:
        state = ctx.loop.procure = ProcureState()
    with ctx.db.read() as session:
        try:
            version, fleet = ctx.fleet.get(session)
        except NotFoundError:
            return Procured()
        last = repo.last_event_id(session)
        if last != state.seen:
            book, _ = service.restore(session, fleet)
            state.seen, state.deadline, state.open_models = last, book.next_deadline(), book.open_models()
            state.waiting = any(s is RequestState.MARKET for s in book.states.values())
    requests = _pressure(ctx, state, fleet, now)
    due = (state.deadline is not None and now >= state.deadline) or (state.waiting and version != state.version)
    state.version = version
    if not requests and not due:
        return Procured()
    with ctx.db.write() as session:
        out = service.tick(session, now, requests)
        if ctx.loop.fence is not None and not ctx.loop.fence(session):
            raise LostLeadershipError(
                "the scheduler lock was lost during this cycle; its procurement step was rolled back"
            )
    state.seen = -1  # read the book again next cycle (its deadline and open models moved)
    for event in out.events:
        log.info("procurement: %s %s (%s): %s", event.kind, event.request_id, event.actor, event.reason[:200])
    raised = sum(1 for e in out.events if e.kind == "raised")
    return Procured(raised=raised, events=len(out.events), awards=len(out.awards))


def _pressure(ctx: ServerContext, state: ProcureState, fleet: Fleet, now: datetime) -> list[CapacityRequest]:
    """The requests the pressure gauge raises now from the kept driver's waiting GPUs (none without a gauge in the
    fleet or a driver kept from the last decision)."""
    settings = fleet.procurement.pressure
    if settings is None:
        state.gauge = state.settings = None
        return []
    if state.gauge is None or state.settings != settings:
        state.gauge, state.settings = PressureGauge(settings), settings
    kept = ctx.loop.driver
    if kept is None:
        return []
    waiting = kept.driver.waiting_gpus(engine_seconds(now), state.gauge.min_wait_s)
    return state.gauge.observe(now, waiting, state.open_models)
