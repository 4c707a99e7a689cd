"""The request-level queueing model of one service's replicas (continuous batching), for the simulator.

A replica has ``B`` sequence slots (the profile's ``max_concurrent_sequences``). A request routed to it waits in the
replica's FIFO queue until a slot is free; it then holds the slot for its prefill, ``P / prefill_tokens_per_s``
seconds (concurrent with the other sequences: no interference), and then decodes its ``D`` output tokens. All
decoding sequences of a replica advance one token per step, and a step takes ``step(b)`` seconds, the profile's
line through its two figures (:meth:`~stargate.domain.services.ReplicaProfile.step_s`), with ``b`` the sequences
holding slots (prefilling or decoding). For a request that arrives at ``a``, gets a slot at ``s``, starts decoding
at ``s + P / prefill`` and finishes at ``f``::

    TTFT = s + P / prefill + step(b) - a      (its wait, its prefill and one step, b as it starts decoding)
    e2e  = f - a
    TPOT = (e2e - TTFT) / (D - 1)             (D >= 2; a one-token answer has no TPOT)

**Virtual token clock.** Between two events of a replica ``b`` is constant, so its decoding sequences gain tokens at
``1 / step(b)`` per second. The replica keeps ``V(t)``, the tokens any sequence decoding since ``t0`` has gained,
``V(t) = V(t0) + (t - t0) / step(b)``, updated only when ``b`` changes. A sequence that starts decoding at ``V0``
finishes when ``V = V0 + D``: one heap per replica keyed by that value, and one event per replica for its next
finish at ``t + (V_top - V(t)) · step(b)``, rescheduled when ``b`` changes (a version number drops the stale one).
Every request costs a bounded number of heap operations: O(log n) each.

**Routing.** A request goes to the ready replica with the fewest outstanding requests (queued or holding a slot;
ties: the lowest replica number). While no replica is ready it waits in the service's queue, in arrival order, and
is routed when one becomes ready; that wait is part of its TTFT and e2e. A draining replica takes no new request
and finishes those it has, unless it is taken back before it emptied (:meth:`ServiceModel.undrain`). A replica that is
lost (its cluster failed) hands its requests back to the service's queue: they are routed again and start over
(their progress is lost), keeping their arrival time.

Pure: no clock, no I/O; the caller (:mod:`stargate.sim.service_run`) says when replicas are ready, drain or are lost.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count

from stargate.domain.services import ReplicaProfile
from stargate.engine.autoscale import Traffic

DECODE, PREFILL = 0, 1
"""Event kinds of the model's heap (a replica's next decode finish; a request's prefill end)."""

_NAN = math.nan
_INF = math.inf


def step_table(profile: ReplicaProfile) -> list[float]:
    """``step(b)`` for ``b`` = 0 .. ``max_concurrent_sequences`` (``b = 0`` reads as 1), s."""
    return [profile.step_s(b) for b in range(profile.max_concurrent_sequences + 1)]


@dataclass(slots=True, eq=False)
class Replica:
    """The queueing state of one replica (see the module docstring)."""

    number: int
    slots: int
    prefill_per_s: float
    steps: list[float]
    ready: bool = False
    draining: bool = False
    b: int = 0
    """Sequences holding slots (prefilling or decoding)."""
    v: float = 0.0
    """The virtual token clock at ``t``."""
    t: float = 0.0
    outstanding: int = 0
    """Requests routed here and not finished (queued or holding a slot)."""
    decoding: list[tuple[float, int]] = field(default_factory=list)
    """Heap of (V at which the sequence finishes, request)."""
    queue: deque[int] = field(default_factory=deque)
    version: int = 0
    """Bumped whenever the replica's pending decode event goes stale."""
    life: int = 0
    """Bumped when the replica is lost: its pending prefill events go stale."""


class ServiceModel:
    """One service's requests served by its replicas; times are the simulator's clock, s."""

    def __init__(
        self, arrival: Sequence[float], prompt: Sequence[int], output: Sequence[int], profile: ReplicaProfile
    ) -> None:
        """Requests ``i`` (sorted by ``arrival``) of ``prompt[i]`` and ``output[i]`` tokens; ``profile``: the
        default replica profile (a replica may be given another, see :meth:`add_replica`)."""
        self.arr = list(map(float, arrival))
        self.prompt = list(map(int, prompt))
        self.output = list(map(int, output))
        n = len(self.arr)
        self.ttft = [_NAN] * n
        self.finish = [_NAN] * n
        self.served_by = [-1] * n
        self.restarts = 0
        """Requests started over because their replica was lost."""
        self.profile = profile
        self._tables: dict[str, list[float]] = {}
        self.replicas: dict[int, Replica] = {}
        self.ready: list[Replica] = []
        """Ready replicas in number order (the router's candidates)."""
        self.waiting: deque[int] = deque()
        """Requests waiting for a ready replica."""
        self.heap: list[tuple[float, int, int, Replica, int, int]] = []
        self.seq = count()
        self.next_i = 0
        self.drained: list[Replica] = []
        """Draining replicas that finished their last request (the caller frees their GPUs and clears the list)."""
        # Traffic since the last tick; ``ongoing``: requests arrived and not finished.
        self.ongoing, self.area, self.t_area = 0, 0.0, 0.0
        self.arrived = self.prompt_tokens = self.completed = self.output_tokens = 0
        self.done = 0

    # -- replicas ---------------------------------------------------------------------------------------------
    def add_replica(self, number: int, now: float, profile: ReplicaProfile | None = None) -> Replica:
        """A replica placed at ``now`` (not ready yet: see :meth:`set_ready`) with ``profile`` (default: the
        model's)."""
        p = profile or self.profile
        steps = self._tables.get(p.gpu_model)
        if steps is None:
            steps = self._tables[p.gpu_model] = step_table(p)
        rep = Replica(number, p.max_concurrent_sequences, p.prefill_tokens_per_s, steps, t=now)
        self.replicas[number] = rep
        return rep

    def set_ready(self, number: int, now: float) -> None:
        """Replica ``number`` answers from ``now``: the service's waiting requests are routed."""
        rep = self.replicas[number]
        now = max(now, self.t_area)  # never before a request it will take (see the simulator's loop)
        rep.ready, rep.t = True, now
        self.ready.append(rep)
        self.ready.sort(key=_number)
        waiting = self.waiting
        while waiting:
            self._route(waiting.popleft(), now)

    def drain(self, number: int) -> bool:
        """Replica ``number`` takes no new request; True when it has none left (it can stop now)."""
        rep = self.replicas[number]
        rep.draining = True
        if rep in self.ready:
            self.ready.remove(rep)
        if rep.outstanding == 0:
            del self.replicas[number]
            return True
        return False

    def undrain(self, number: int, now: float) -> None:
        """Draining replica ``number`` (still serving what it has) takes new requests again from ``now``: the
        service's waiting requests are routed."""
        rep = self.replicas[number]
        rep.draining = False
        self.ready.append(rep)
        self.ready.sort(key=_number)
        now = max(now, self.t_area)
        waiting = self.waiting
        while waiting:
            self._route(waiting.popleft(), now)

    def remove(self, number: int, now: float) -> None:
        """Replica ``number`` is gone at ``now`` (lost with its cluster, or stopped before it served): its requests
        are routed again and start over."""
        rep = self.replicas.pop(number, None)
        if rep is None:
            return
        if rep in self.ready:
            self.ready.remove(rep)
        rep.life += 1
        rep.version += 1
        mine = list(rep.queue) + [i for _, i in rep.decoding]
        mine += [ev[4] for ev in self.heap if ev[2] == PREFILL and ev[3] is rep]
        self.heap = [ev for ev in self.heap if ev[3] is not rep]
        heapq.heapify(self.heap)
        self.restarts += len(mine)
        for i in sorted(mine):
            self.ttft[i] = _NAN
            self._route(i, now)

    # -- requests ---------------------------------------------------------------------------------------------
    def next_time(self) -> float:
        """The time of the next request event (an arrival, a prefill end, a decode finish); inf: none."""
        t_arr = self.arr[self.next_i] if self.next_i < len(self.arr) else _INF
        return min(t_arr, self.heap[0][0]) if self.heap else t_arr

    def advance(self, until: float) -> float:
        """Handle every request event before ``until`` (finishes before arrivals at one instant); stops early at
        the instant a draining replica finishes its last request (see :attr:`drained`) or the last request
        finishes, and returns it; else inf."""
        heap, arr, n = self.heap, self.arr, len(self.arr)
        pop = heapq.heappop
        i = self.next_i
        while True:
            t_ev = heap[0][0] if heap else _INF
            t_arr = arr[i] if i < n else _INF
            if t_ev <= t_arr:
                if t_ev >= until:
                    break
                t, _, kind, rep, req, stamp = pop(heap)
                if kind == DECODE:
                    if stamp == rep.version:
                        self._decoded(rep, t)
                        if self.drained or self.done == n:
                            self.next_i = i
                            return t
                elif stamp == rep.life:
                    self._prefilled(rep, req, t)
            else:
                if t_arr >= until:
                    break
                self._arrive(i, t_arr)
                i += 1
                self.next_i = i
        self.next_i = i
        return _INF

    def _arrive(self, i: int, t: float) -> None:
        self.area += self.ongoing * (t - self.t_area)
        self.t_area = t
        self.ongoing += 1
        self.arrived += 1
        self.prompt_tokens += self.prompt[i]
        self._route(i, t)

    def _route(self, i: int, t: float) -> None:
        """Send request ``i`` to the ready replica with the fewest outstanding requests, or to the waiting queue."""
        ready = self.ready
        if not ready:
            self.waiting.append(i)
            return
        best = ready[0]
        least = best.outstanding
        if least:
            for rep in ready:
                if rep.outstanding < least:
                    best, least = rep, rep.outstanding
                    if not least:
                        break
        best.outstanding += 1
        if best.b < best.slots:
            self._take_slot(best, i, t)
            if best.decoding:
                self._reschedule(best, t)
        else:
            best.queue.append(i)

    def _take_slot(self, rep: Replica, i: int, t: float) -> None:
        """Request ``i`` takes a slot of ``rep`` at ``t`` and starts its prefill (the caller reschedules)."""
        b = rep.b
        if t > rep.t:
            if b:
                rep.v += (t - rep.t) / rep.steps[b]
            rep.t = t
        rep.b = b + 1
        heapq.heappush(self.heap, (t + self.prompt[i] / rep.prefill_per_s, next(self.seq), PREFILL, rep, i, rep.life))

    def _reschedule(self, rep: Replica, t: float) -> None:
        """Push ``rep``'s next decode finish at the current rate (its earlier event goes stale)."""
        rep.version += 1
        at = t + (rep.decoding[0][0] - rep.v) * rep.steps[rep.b]
        heapq.heappush(self.heap, (at if at > t else t, next(self.seq), DECODE, rep, 0, rep.version))

    def _prefilled(self, rep: Replica, i: int, t: float) -> None:
        """Request ``i`` ends its prefill at ``t``: it starts decoding (its first token one step later)."""
        step = rep.steps[rep.b]
        rep.v += (t - rep.t) / step
        rep.t = t
        self.ttft[i] = t + step - self.arr[i]
        entry = (rep.v + self.output[i], i)
        heapq.heappush(rep.decoding, entry)
        if rep.decoding[0] is entry:
            self._reschedule(rep, t)

    def _decoded(self, rep: Replica, t: float) -> None:
        """``rep``'s virtual clock reaches its earliest finish at ``t``: those sequences finish, queued requests
        take the freed slots."""
        decoding, finish, served_by, output = rep.decoding, self.finish, self.served_by, self.output
        ttft, arr = self.ttft, self.arr
        top = decoding[0][0]
        rep.v, rep.t = top, t
        self.area += self.ongoing * (t - self.t_area)
        self.t_area = t
        k = tokens = 0
        while decoding and decoding[0][0] <= top:
            i = heapq.heappop(decoding)[1]
            finish[i] = t
            served_by[i] = rep.number
            tokens += output[i]
            k += 1
            if ttft[i] > t - arr[i]:  # the step changed since its first token was due: never after its last
                ttft[i] = t - arr[i]
        self.ongoing -= k
        self.completed += k
        self.done += k
        self.output_tokens += tokens
        rep.b -= k
        rep.outstanding -= k
        queue = rep.queue
        while queue and rep.b < rep.slots:
            self._take_slot(rep, queue.popleft(), t)
        if decoding:
            self._reschedule(rep, t)
        if rep.draining and not rep.outstanding:
            del self.replicas[rep.number]
            self.drained.append(rep)

    # -- measures ---------------------------------------------------------------------------------------------
    def traffic(self, now: float, interval_s: float) -> Traffic:
        """The traffic since the last call (an interval of ``interval_s`` ending at ``now``), for the autoscaler."""
        self.area += self.ongoing * (now - self.t_area)
        self.t_area = now
        out = Traffic(now, interval_s, self.arrived, self.prompt_tokens, self.completed, self.output_tokens, self.area)
        self.arrived = self.prompt_tokens = self.completed = self.output_tokens = 0
        self.area = 0.0
        return out

    def finished(self) -> bool:
        """Every request arrived and finished."""
        return self.done == len(self.arr)


def _number(rep: Replica) -> int:
    return rep.number
