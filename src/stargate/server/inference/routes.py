"""The replicas each proxy routes to: one :class:`ServiceRoute` per service, read from the database.

A proxy sends a request to the ready replica with the fewest requests outstanding from this process (ties: the
lowest number), never to one draining, starting or waiting for GPUs. A replica that refused a connection or died
before answering is *suspect* here for :data:`SUSPECT_S` seconds (the leader's health checks take it out for
everyone soon after). The table is replaced as a whole on each read (a dict swap: readers on the event loop never
see half of it).
"""

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stargate.domain.services import ServiceSpec
from stargate.engine.autoscale import tick_s
from stargate.engine.replicas import ReplicaState
from stargate.server.inference.meter import Meter

SUSPECT_S = 2.0
"""How long a replica that failed a request here is not chosen again by this process, s."""
DEFAULT_COLD_START_S = 60.0
"""The cold start of a service whose stored spec does not parse (its leader leaves it as it is), s."""


@dataclass(frozen=True, slots=True)
class ReplicaRoute:
    """A replica as a proxy sees it: its number, state and loopback port."""

    number: int
    state: str
    port: int


@dataclass(frozen=True, slots=True)
class ServiceRoute:
    """A service as a proxy sees it: its team (who may call it), state, what a first replica takes to come
    (``upscale_delay_s``, the autoscaler's tick, ``cold_start_s``) and its replicas."""

    name: str
    team: str
    state: str
    cold_start_s: float
    replicas: tuple[ReplicaRoute, ...]
    upscale_delay_s: float = 0.0
    tick_s: float = 10.0
    """The autoscaler's tick (the engine's :func:`~stargate.engine.autoscale.tick_s`), s."""

    @property
    def active(self) -> bool:
        """False once the service is being deleted (nothing new is sent to it)."""
        return self.state == "active"

    def ready(self) -> list[ReplicaRoute]:
        """Its ready replicas."""
        return [r for r in self.replicas if r.state == ReplicaState.READY]

    def coming(self) -> int:
        """Its replicas that will serve once started (waiting for GPUs or starting)."""
        return sum(1 for r in self.replicas if r.state in (ReplicaState.PENDING, ReplicaState.STARTING))


class RouteTable:
    """Every service's route, as last read; thread-safe (the flusher writes, the event loop reads)."""

    def __init__(self) -> None:
        self._routes: dict[str, ServiceRoute] = {}
        self._suspect: dict[tuple[str, int], float] = {}
        self._timings: dict[str, tuple[dict[str, Any], tuple[float, float, float]]] = {}
        self._lock = threading.Lock()
        self.loaded_at = -math.inf
        """When the table was last read (monotonic s)."""

    def load(
        self, services: Iterable[tuple[str, str, str, dict[str, Any]]], replicas: Iterable[tuple[str, int, str, int]]
    ) -> None:
        """Replace the table with these (name, team, state, spec) and (service, number, state, port) rows."""
        by_service: dict[str, list[ReplicaRoute]] = {}
        for service, number, state, port in replicas:
            by_service.setdefault(service, []).append(ReplicaRoute(number, state, port))
        routes = {}
        timings = {}
        for name, team, state, spec in services:
            timing = timings[name] = self._timing(name, spec or {})
            mine = tuple(sorted(by_service.get(name, []), key=lambda r: r.number))
            routes[name] = ServiceRoute(name, team, state, timing[0], mine, timing[1], timing[2])
        with self._lock:
            self._routes = routes
            self._timings = {name: (dict(spec or {}), timings[name]) for name, _, _, spec in services}
            self.loaded_at = time.monotonic()

    def _timing(self, name: str, spec: dict[str, Any]) -> tuple[float, float, float]:
        """(``cold_start_s``, ``upscale_delay_s``, tick) of a stored spec (parsed once while it is the same)."""
        known = self._timings.get(name)
        if known is not None and known[0] == spec:
            return known[1]
        try:
            parsed = ServiceSpec.model_validate(spec)
        except ValueError:  # the leader logs it and leaves the service as it is
            cold = spec.get("cold_start_s")
            return (float(cold) if isinstance(cold, int | float) else DEFAULT_COLD_START_S), 0.0, 10.0
        return parsed.cold_start_s, parsed.autoscaling.upscale_delay_s, tick_s(parsed)

    def get(self, name: str) -> ServiceRoute | None:
        """The route of service ``name``, or None."""
        return self._routes.get(name)

    def names(self) -> set[str]:
        """The services in the table."""
        return set(self._routes)

    def suspect(self, name: str, number: int) -> None:
        """Keep replica ``number`` of ``name`` out of this process's choices for :data:`SUSPECT_S` seconds."""
        with self._lock:
            self._suspect[(name, number)] = time.monotonic() + SUSPECT_S

    def choose(self, route: ServiceRoute, meter: Meter, exclude: set[int]) -> ReplicaRoute | None:
        """The ready replica of ``route`` with the fewest requests outstanding from this process (ties: the lowest
        number), leaving out ``exclude`` and suspect ones; None when there is none."""
        now = time.monotonic()
        best: ReplicaRoute | None = None
        best_load = math.inf
        for replica in route.replicas:
            if replica.state != ReplicaState.READY or replica.number in exclude:
                continue
            until = self._suspect.get((route.name, replica.number))
            if until is not None and until > now:
                continue
            load = meter.outstanding(replica.number)
            if load < best_load:
                best, best_load = replica, load
        return best
