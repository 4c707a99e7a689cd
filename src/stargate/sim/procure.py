"""Procurement in the simulator: the pressure gauge, the procurement book and a simulated right-of-first-refusal
holder, driven on the virtual clock (see docs/reference/cli-simulate.md, "Procurement").

At every instant the simulator decided, at every offer deadline, holder answer and hourly check, :meth:`SimProcurement
.step` answers the offers whose answer is due, ticks the book (offers expire at their deadline, requests go to the
market), feeds the driver's waiting GPUs to the :class:`~stargate.engine.pressure.PressureGauge` and raises what it
asks for. It returns the awards made since the last step; the simulator turns each into a contract and a cluster
(:func:`~stargate.engine.procurement.award_contract`) of its fleet.

The holder's answer to an offer is drawn when the offer is made, from a generator seeded by the run's seed: it
matches (the benchmark's terms) with probability ``match_probability``, else declines, ``response_days`` after the
offer; an answer at or after the deadline is never given (the offer expires). Every rule is the engine's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from stargate.domain import Fleet
from stargate.engine.pressure import PressureGauge
from stargate.engine.procurement import Award, OfferState, ProcEvent, ProcurementBook, RequestState

CHECK_EVERY_S = 3600.0
"""How often the simulator also looks at queue pressure when nothing else happens, s (engine time)."""

HOLDER_ACTOR = "simulated holder"
"""The actor of the simulated holder's answers in the procurement events."""

_SEED_SALT = 0x50524F43
"""Mixed into the run's seed for the holder's draws, so they leave the failure draws unchanged."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A holder's answer drawn for an offer: when, and whether it matches."""

    offer_id: str
    at_s: float
    match: bool


class SimProcurement:
    """One run's procurement: book, gauge, holder and the instants the simulator must wake for."""

    def __init__(
        self,
        fleet: Fleet,
        epoch: datetime,
        seed: int,
        *,
        rofr: bool = True,
        match_probability: float | None = None,
        response_days: float | None = None,
    ) -> None:
        """Procurement over ``fleet`` (its ``procurement`` section); the flags' values override the fleet's
        ``holder_response`` when given."""
        settings = fleet.procurement
        self.epoch = epoch
        self.book = ProcurementBook(fleet, rofr=rofr)
        self.gauge = PressureGauge(settings.pressure) if settings.pressure is not None else None
        holder = settings.holder_response
        self.match_probability = holder.match_probability if match_probability is None else match_probability
        self.response_days = holder.response_days if response_days is None else response_days
        self.rng = np.random.default_rng([seed, _SEED_SALT])
        self.answers: list[Answer] = []
        """Answers drawn and not yet given, in the order the offers were made."""
        self._awarded: set[str] = set()

    @property
    def active(self) -> bool:
        """Whether anything can happen: only queue pressure raises requests in a simulation."""
        return self.gauge is not None

    def at(self, now_s: float) -> datetime:
        """Engine time ``now_s`` as an instant."""
        return self.epoch + timedelta(seconds=now_s)

    def seconds(self, at: datetime) -> float:
        """An instant as engine time, s."""
        return (at - self.epoch).total_seconds()

    def day_s(self, day: date) -> float:
        """Midnight UTC starting ``day`` as engine time, s."""
        return self.seconds(datetime(day.year, day.month, day.day, tzinfo=UTC))

    def step(self, now_s: float, waiting_gpus: Callable[[float, float], Mapping[str, int]]) -> list[Award]:
        """Answer the offers due by ``now_s``, tick the book, raise what pressure asks for (and answer at once what
        is due at once: ``response_days`` 0); the new awards."""
        now = self.at(now_s)
        book = self.book
        self._answer(now_s)
        book.tick(now)
        if self.gauge is not None:
            waiting = waiting_gpus(now_s, self.gauge.min_wait_s)
            for req in self.gauge.observe(now, waiting, book.open_models()):
                self._offered(book.raise_request(req))
            self._answer(now_s)
        new = [a for a in book.awards.values() if a.id not in self._awarded]
        self._awarded.update(a.id for a in new)
        return sorted(new, key=lambda a: (a.at, a.id))

    def _answer(self, now_s: float) -> None:
        """Give the holder's answers due by ``now_s``, each at its own instant (what fell due before it first)."""
        due = [a for a in self.answers if a.at_s <= now_s]
        if not due:
            return
        self.answers = [a for a in self.answers if a.at_s > now_s]
        book = self.book
        for a in due:
            at = self.at(a.at_s)
            if book.offers[a.offer_id].state is OfferState.OPEN and at < book.offers[a.offer_id].deadline:
                book.tick(at)
                book.respond(a.offer_id, a.match, at, HOLDER_ACTOR)

    def _offered(self, events: list[ProcEvent]) -> None:
        """Draw the holder's answer to each offer just made."""
        for e in events:
            if e.kind == "offered" and e.offer_id is not None:
                offer = self.book.offers[e.offer_id]
                match = bool(self.rng.random() < self.match_probability)
                at = offer.offered_at + timedelta(days=self.response_days)
                if at < offer.deadline:
                    self.answers.append(Answer(offer.id, self.seconds(at), match))

    def wake_instants(self) -> list[float]:
        """Instants, s, at which something is due: answers and offer deadlines."""
        out = [a.at_s for a in self.answers]
        deadline = self.book.next_deadline()
        if deadline is not None:
            out.append(self.seconds(deadline))
        return out

    def summary(self, end_s: float, log: bool = False) -> dict[str, Any]:
        """The counts, requests and time to capacity of the ``procurement`` block (see cli-simulate.md)."""
        book = self.book
        kinds: dict[str, int] = {}
        for e in book.events:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        via: dict[str, int] = {"holder": 0, "market": 0}
        for a in book.awards.values():
            via[a.via] = via.get(a.via, 0) + 1
        awards = {a.request_id: a for a in book.awards.values()}
        waits = [(awards[r].start - req.at.date()).days for r, req in book.requests.items() if r in awards]
        out: dict[str, Any] = {
            "requests": len(book.requests),
            "offers": len(book.offers),
            "matches": kinds.get("matched", 0),
            "declines": kinds.get("declined", 0),
            "expiries": kinds.get("expired", 0),
            "not_matched": kinds.get("not_matched", 0),
            "awards": len(book.awards),
            "awards_by_via": via,
            "awarded_gpus": sum(a.gpus for a in book.awards.values()),
            "awarded_cost_usd": _usd(sum((a.cost_usd for a in book.awards.values()), Decimal(0))),
            "over_budget": sum(1 for s in book.states.values() if s is RequestState.OVER_BUDGET),
            "unfilled": sum(1 for s in book.states.values() if s is RequestState.UNFILLED),
            "time_to_capacity_days": _median(waits),
            "requests_detail": [self._request(r, awards.get(r)) for r in _in_order(book)],
        }
        if log:
            out["events"] = [
                {
                    "at": e.at.isoformat(),
                    "request": e.request_id,
                    "offer": e.offer_id,
                    "kind": e.kind,
                    "actor": e.actor,
                    "reason": e.reason,
                }
                for e in book.events
            ]
        return out

    def _request(self, rid: str, award: Award | None) -> dict[str, Any]:
        """One request in the JSON: when it was raised, where it went first and how it ended."""
        book = self.book
        req = book.requests[rid]
        offer = book.offers.get(f"offer-{rid}")
        return {
            "id": rid,
            "gpu_model": req.gpu_model,
            "gpus": req.gpus,
            "raised_at": req.at.isoformat(),
            "raised_day": req.at.date().isoformat(),
            "first_step": "holder" if offer is not None else "market",
            "holder": offer.holder if offer is not None else None,
            "offer": str(offer.state) if offer is not None else None,
            "outcome": str(book.states[rid]),
            "via": award.via if award is not None else None,
            "provider": award.provider if award is not None else None,
            "awarded_gpus": award.gpus if award is not None else None,
            "price_usd_per_gpu_hour": str(award.price) if award is not None else None,
            "capacity_from": award.start.isoformat() if award is not None else None,
            "days_to_capacity": (award.start - req.at.date()).days if award is not None else None,
        }


def _in_order(book: ProcurementBook) -> list[str]:
    return sorted(book.requests, key=lambda r: (book.requests[r].at, r))


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


def _usd(value: Decimal) -> float:
    """A USD amount for the JSON summary, to the cent."""
    return round(float(value), 2) if math.isfinite(float(value)) else 0.0
