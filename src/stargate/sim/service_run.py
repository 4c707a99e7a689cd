"""One service in a simulated run: its replicas as jobs of the engine, its autoscaler, its queueing model.

The simulator (:mod:`stargate.sim.services_sim`) calls a :class:`ServiceRun` at the instants that concern it and
hands the engine's decisions about its replicas back to it:

- **deploy** at the service's start (its first request): ``min_replicas`` replicas are submitted; those the engine
  places at that very instant are ready at once (the service was up before its trace began), later ones cold start;
- **tick** every ``tick_s``: the traffic of the interval (:meth:`ServiceModel.traffic`) goes to the engine's
  :class:`~stargate.engine.autoscale.Autoscaler` (``observe``), sizing with the profile of the GPU model its
  replicas run on as the server's does (:func:`~stargate.engine.replicas.running_profile`; before any is placed,
  :func:`~stargate.engine.replicas.first_profile`), which then decides the count (``decide``) with the
  live replicas (pending, starting or ready) as ``current``; a larger count first takes back draining replicas
  (:func:`~stargate.engine.replicas.to_take_back`: they serve again at once, warm) and submits new replicas for the
  rest (:func:`~stargate.engine.replicas.replica_terms`, numbered from 0 up), a smaller one removes
  :func:`~stargate.engine.replicas.to_remove`'s choice: a pending replica leaves the queue, a starting one stops, a
  ready one drains and stops when its last request finishes;
- **placed**: a replica the engine started is ready ``cold_start_s`` later; **lost**: a replica stopped by the
  engine (its cluster failed) hands its requests back and waits for GPUs again; **rejected**: a replica the engine
  can never place ends the service (its requests not served are reported unserved);
- **end** when its last request finished (or the run stops): every replica stops.

No decision rule lives here: counts come from the autoscaler, placements and preemptions from the driver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from stargate.domain.services import ServiceSpec
from stargate.engine import Driver, Start
from stargate.engine.autoscale import Autoscaler
from stargate.engine.replicas import (
    Replica,
    ReplicaState,
    first_profile,
    replica_id,
    replica_terms,
    running_profile,
    to_remove,
    to_take_back,
)
from stargate.sim.serving import ServiceModel

PENDING, STARTING, READY, DRAINING = (
    ReplicaState.PENDING,
    ReplicaState.STARTING,
    ReplicaState.READY,
    ReplicaState.DRAINING,
)


@dataclass(frozen=True, slots=True)
class ServiceRequests:
    """A service and the requests it serves: arrivals (s from the request trace's start, sorted) and tokens."""

    spec: ServiceSpec
    arrival_s: np.ndarray[Any, np.dtype[np.float64]]
    prompt_tokens: np.ndarray[Any, np.dtype[np.int64]]
    output_tokens: np.ndarray[Any, np.dtype[np.int64]]


@dataclass(slots=True)
class ReplicaRecord:
    """A replica as the run tracks it: its state, and where it runs since when."""

    number: int
    job_id: str
    state: ReplicaState
    since_s: float
    incarnation: int = 0
    """Bumped at each placement: a ready event of an earlier placement is stale."""
    placed_s: float = math.nan
    cluster: str = ""
    gpu_model: str = ""
    price: float = 0.0


@dataclass(frozen=True, slots=True)
class ReplicaRun:
    """One placement of a replica, from its start to its stop (its GPUs held, cold start included)."""

    number: int
    cluster: str
    gpu_model: str
    gpus: int
    price_usd_per_gpu_hour: float
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """A change of the replica count the autoscaler decided."""

    at_s: float
    replicas_from: int
    replicas_to: int
    wanted: int
    reason: str


class ServiceRun:
    """The replicas, autoscaler and queueing model of one service over one request trace."""

    def __init__(self, requests: ServiceRequests, start_s: float, tick_s: float) -> None:
        """``requests`` arrive at ``start_s`` plus their ``arrival_s``; the autoscaler ticks every ``tick_s`` from
        ``start_s``."""
        spec = requests.spec
        self.spec, self.start_s, self.tick_s = spec, start_s, tick_s
        profile = first_profile(spec)
        arrival = (requests.arrival_s + start_s).tolist()
        self.model = ServiceModel(arrival, requests.prompt_tokens.tolist(), requests.output_tokens.tolist(), profile)
        self.scaler = Autoscaler(spec, profile)
        self.replicas: dict[int, ReplicaRecord] = {}
        self.next_number = 0
        self.runs: list[ReplicaRun] = []
        self.events: list[ScaleEvent] = []
        self.rejected: str | None = None
        self.ended = False
        self.end_s = math.nan
        self.last_tick = start_s

    # -- the count ---------------------------------------------------------------------------------------------
    def live(self) -> int:
        """Replicas pending, starting or ready (asked for and not being removed)."""
        return sum(1 for r in self.replicas.values() if r.state is not DRAINING)

    def deploy(self, driver: Driver, now: float) -> None:
        """Submit ``min_replicas`` replicas at the service's start."""
        for _ in range(self.spec.min_replicas):
            self._submit(driver, now)

    def tick(self, driver: Driver, now: float) -> None:
        """Measure the interval, let the autoscaler decide, apply the count."""
        self.scaler.observe(self.model.traffic(now, now - self.last_tick))
        self.last_tick = now
        placed = [r.gpu_model if r.state is not PENDING else "" for _, r in sorted(self.replicas.items())]
        running = running_profile(self.spec, placed)
        if running is not None:
            self.scaler.profile = running
        current = self.live()
        decision = self.scaler.decide(now, current)
        if decision.replicas == current:
            return
        self.events.append(ScaleEvent(now, current, decision.replicas, decision.wanted, decision.reason))
        views = [Replica(r.job_id, r.number, r.state, r.since_s) for r in self.replicas.values()]
        back = to_take_back(views, decision.replicas - current)
        for view in back:
            rec = self.replicas[view.number]
            rec.state, rec.since_s = READY, now
            self.model.undrain(rec.number, now)
        for _ in range(decision.replicas - current - len(back)):
            self._submit(driver, now)
        for view in to_remove(views, current - decision.replicas):
            self._remove(driver, self.replicas[view.number], now)

    def _submit(self, driver: Driver, now: float) -> None:
        number = self.next_number
        self.next_number += 1
        self.replicas[number] = ReplicaRecord(number, replica_id(self.spec.name, number), PENDING, now)
        driver.submit(replica_terms(self.spec, number, now))

    def _remove(self, driver: Driver, rec: ReplicaRecord, now: float) -> None:
        if rec.state is PENDING:
            del self.replicas[rec.number]
            driver.finish(rec.job_id, now)
        elif rec.state is STARTING:
            self.model.remove(rec.number, now)
            self._stop(driver, rec, now)
        else:
            rec.state, rec.since_s = DRAINING, now
            if self.model.drain(rec.number):
                self._stop(driver, rec, now)

    def _stop(self, driver: Driver, rec: ReplicaRecord, now: float) -> None:
        """A placed replica stops at ``now``: its run is recorded and its GPUs freed."""
        self._record(rec, now)
        del self.replicas[rec.number]
        driver.finish(rec.job_id, now)

    def _record(self, rec: ReplicaRecord, now: float) -> None:
        gpus = self.spec.gpus_per_replica
        self.runs.append(ReplicaRun(rec.number, rec.cluster, rec.gpu_model, gpus, rec.price, rec.placed_s, now))

    # -- what the engine decided -------------------------------------------------------------------------------
    def placed(self, number: int, start: Start, gpu_model: str, now: float) -> float | None:
        """Replica ``number`` was started on ``start.cluster_id``; the instant it will be ready (None: now, warm)."""
        rec = self.replicas[number]
        rec.state, rec.since_s, rec.placed_s = STARTING, now, now
        rec.cluster, rec.gpu_model, rec.price = start.cluster_id, gpu_model, start.price_usd_per_gpu_hour
        rec.incarnation += 1
        self.model.add_replica(number, now, self.spec.profile(gpu_model))
        if now == self.start_s or self.spec.cold_start_s == 0:
            self.ready(number, rec.incarnation, now)
            return None
        return now + self.spec.cold_start_s

    def ready(self, number: int, incarnation: int, now: float) -> None:
        """The cold start of replica ``number`` (placement ``incarnation``) ended at ``now``."""
        rec = self.replicas.get(number)
        if rec is None or rec.state is not STARTING or rec.incarnation != incarnation:
            return
        rec.state, rec.since_s = READY, now
        self.model.set_ready(number, now)

    def lost(self, driver: Driver, number: int, now: float) -> None:
        """The engine stopped replica ``number`` (its cluster went down): its requests start over elsewhere; it waits
        for GPUs again, unless it was being removed."""
        rec = self.replicas[number]
        self._record(rec, now)
        self.model.remove(number, now)
        if rec.state is DRAINING:
            del self.replicas[number]
            driver.finish(rec.job_id, now)
        else:
            rec.state, rec.since_s = PENDING, now

    def drained(self, driver: Driver, number: int, now: float) -> None:
        """Draining replica ``number`` finished its last request at ``now``."""
        self._stop(driver, self.replicas[number], now)

    def refused(self, driver: Driver, number: int, reason: str, now: float) -> None:
        """The engine can never place replica ``number``: the service ends."""
        self.replicas.pop(number, None)
        self.rejected = reason
        self.end(driver, now)

    def end(self, driver: Driver | None, now: float) -> None:
        """The service stops at ``now``: every replica stops (``driver`` None: the run itself ends)."""
        if self.ended:
            return
        self.ended, self.end_s = True, now
        for rec in list(self.replicas.values()):
            if rec.state is not PENDING:
                self._record(rec, now)
            if driver is not None:
                driver.finish(rec.job_id, now)
        self.replicas.clear()
