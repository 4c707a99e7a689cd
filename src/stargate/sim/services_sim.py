"""The simulator with services: request traces served by replicas that share the fleet with a training trace.

:class:`ServiceSimulator` is the trace simulator (:class:`~stargate.sim.simulator.Simulator`) with services on top:
the training jobs are handled exactly as there (the same event handlers, the same driver), and every service
(:class:`~stargate.sim.service_run.ServiceRun`) submits its replicas to that very driver, so a replica whose class
outranks a preemptible training job preempts it through the driver's normal preemption path, and a training job
waits while replicas hold the GPUs it needs.

The loop takes, at each step, the earliest *engine instant* — a training event (finish, failure, wake-up), a training
arrival, or a service instant (a deploy, an autoscaler tick, the end of a cold start) — and first lets each
service's queueing model handle its request events up to it (:meth:`ServiceModel.advance`), which stops early at the
instant a draining replica empties or a service's last request finishes (GPUs are freed then, not later). At an
instant: replicas that emptied stop, training events are handled, training jobs arrive, service instants are handled,
then the driver decides once, and its decisions go to the training jobs and the services.

Procurement is off in these runs: the engine is never rebuilt under the replicas (see docs/reference/cli-simulate.md).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np

from stargate.domain import Fleet
from stargate.engine import Decisions, Reason
from stargate.engine.autoscale import tick_s as autoscale_tick
from stargate.engine.fragmentation import fragmented_gpus
from stargate.sim.service_run import ServiceRequests, ServiceRun
from stargate.sim.simulator import FAILURE, SimConfig, SimState, Simulator, TraceJobLike

DEPLOY, TICK, READY = 0, 1, 2
"""Kinds of service instants (ties at one instant in this order)."""


class ServiceSimulator(Simulator):
    """One run of a training trace (possibly empty) and of services over one fleet."""

    def __init__(
        self,
        fleet: Fleet,
        jobs: Sequence[TraceJobLike],
        config: SimConfig,
        epoch: datetime,
        services: list[ServiceRequests],
        *,
        requests_at_s: float = 0.0,
        tick_s: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """``services``: each spec with its requests, which arrive from trace time ``requests_at_s``; autoscalers
        tick every ``tick_s`` (None: each service's own, the engine's :func:`~stargate.engine.autoscale.tick_s`,
        as in the server); ``progress`` is called now and then with (requests and jobs settled, total)."""
        super().__init__(fleet, jobs, replace(config, procurement=False), epoch)
        self.services = [ServiceRun(r, requests_at_s, tick_s or autoscale_tick(r.spec)) for r in services]
        self.report = progress
        self.gpu_model = {c.id: c.gpu_model for c in fleet.clusters}
        self.replica_of: dict[str, tuple[ServiceRun, int]] = {}
        self.svc_heap: list[tuple[float, int, int, int, int, int]] = []
        self.svc_seq = 0
        for k, _ in enumerate(self.services):
            self._push_service(requests_at_s, DEPLOY, k, 0, 0)

    def _push_service(self, t: float, kind: int, k: int, number: int, incarnation: int) -> None:
        self.svc_seq += 1
        heapq.heappush(self.svc_heap, (t, kind, self.svc_seq, k, number, incarnation))

    # -- the loop ---------------------------------------------------------------------------------------------
    def run_all(self) -> SimState:
        """Run until every job settled and every service ended (or ``until_s``); the training outcomes."""
        for f in self.config.failures:
            self.push(f.at_s, FAILURE, self.index.cluster_ix[f.cluster], 0)
            self.push(f.at_s + f.for_s, FAILURE, self.index.cluster_ix[f.cluster], 1)
        if self.config.mtbf_s is not None:
            t0 = min([*self.arrival[:1], *(s.start_s for s in self.services)], default=0.0)
            for c in range(self.index.n):
                self.push(t0 + float(self.rng.exponential(self.config.mtbf_s)), FAILURE, c, 2)
        st, arrival, n = self.state, self.arrival, len(self.jobs)
        until = self.config.until_s if self.config.until_s is not None else math.inf
        heap, svc_heap, services = self.heap, self.svc_heap, self.services
        i, frag, frag_t, reported = 0, 0, 0.0, -1.0
        while True:
            t_eng = min(heap[0][0] if heap else math.inf, arrival[i] if i < n else math.inf)
            t_eng = min(t_eng, svc_heap[0][0] if svc_heap else math.inf)
            now = self._advance_services(min(t_eng, until))
            now = min(now, t_eng)
            training_done = i == n and self.settled == n
            if now == math.inf or (training_done and all(s.ended for s in services)):
                break
            if now > until:
                st.end_s = max(st.end_s, until)
                break
            if frag:
                st.fragmented_gpu_s += frag * (now - frag_t)
            frag_t = now
            changed = self._services_settled(now)
            while heap and heap[0][0] == now:
                changed = self._handle(heapq.heappop(heap), now) or changed
            while i < n and arrival[i] == now:
                if i not in self.bad:
                    self._submit(i)
                    changed = True
                i += 1
            while svc_heap and svc_heap[0][0] == now:
                changed = self._service_instant(heapq.heappop(svc_heap), now) or changed
            driver = self.driver
            if changed and driver.has_work(now):
                res = driver.decide(now)
                self._after(res, now)
                st.cycles += res.rounds
            if changed:
                frag = fragmented_gpus(driver.sched, now)
            st.end_s = now
            if self.report is not None and now - reported >= 60.0:
                reported = now
                self.report(*self.settled_total())
        end = st.end_s
        for s in services:
            s.end(None, max(end, s.start_s))
        self._close_runs(end)
        st.fragmented_gpu_s += frag * max(end - frag_t, 0.0)
        st.first_start = np.array(self._first, dtype=np.float64)
        st.finish = np.array(self._finish, dtype=np.float64)
        st.cost = np.array(self._cost, dtype=np.float64)
        st.cloud_gpu_s = np.array(self._cloud_s, dtype=np.float64)
        st.estimate = np.array(self._est, dtype=np.float64)
        st.estimate_source = np.array(self._est_from, dtype=np.int8)
        return st

    def settled_total(self) -> tuple[int, int]:
        """(requests finished + jobs settled, requests + jobs)."""
        done = self.settled + sum(s.model.done for s in self.services)
        return done, len(self.jobs) + sum(len(s.model.arr) for s in self.services)

    def _advance_services(self, until: float) -> float:
        """Each live service handles its request events before ``until``; the earliest instant one stopped at (a
        replica emptied, or its last request finished), else inf."""
        stop = math.inf
        for s in self.services:
            if not s.ended:
                at = s.model.advance(min(until, stop))
                stop = min(stop, at)
        return stop

    def _services_settled(self, now: float) -> bool:
        """Replicas that emptied at ``now`` stop; services whose last request finished end."""
        changed = False
        driver = self.driver
        for s in self.services:
            if s.ended:
                continue
            for rep in s.model.drained:
                s.drained(driver, rep.number, now)
                changed = True
            s.model.drained.clear()
            if s.model.finished() and now >= s.start_s:
                s.end(driver, now)
                changed = True
        return changed

    def _service_instant(self, ev: tuple[float, int, int, int, int, int], now: float) -> bool:
        _, kind, _, k, number, incarnation = ev
        s = self.services[k]
        if s.ended:
            return False
        driver = self.driver
        if kind == READY:
            s.ready(number, incarnation, now)
            return False
        if kind == DEPLOY:
            if s.model.finished():  # no request at all
                s.end(driver, now)
                return False
            s.deploy(driver, now)
        else:
            s.tick(driver, now)
        for rec in s.replicas.values():
            self.replica_of.setdefault(rec.job_id, (s, rec.number))
        self._push_service(now + s.tick_s, TICK, k, 0, 0)
        self.state.events += 1
        return True

    # -- decisions --------------------------------------------------------------------------------------------
    def _after(self, res: Decisions, now: float) -> None:
        """The training jobs' decisions as the trace simulator applies them; the replicas' to their services."""
        mine = self.replica_of
        ids = [s.job_id for s in res.starts] + [p.job_id for p in res.preemptions]
        if not any(job_id in mine for job_id in ids + [r.job_id for r in res.rejections]):
            super()._after(res, now)
            return
        jobs = Decisions(
            now,
            [s for s in res.starts if s.job_id not in mine],
            [p for p in res.preemptions if p.job_id not in mine],
            [r for r in res.rejections if r.job_id not in mine],
            res.next_wakeup_s,
            res.rounds,
        )
        super()._after(jobs, now)
        driver = self.driver
        for p in res.preemptions:
            if p.job_id in mine:
                s, number = mine[p.job_id]
                if not s.ended and number in s.replicas:
                    s.lost(driver, number, now)
        for r in res.rejections:
            if r.job_id in mine:
                s, number = mine[r.job_id]
                if r.reason == Reason.OUTAGE_LIMIT:  # the replica failed (as the server's would): the next tick
                    s.replicas.pop(number, None)  # starts another in its place
                else:
                    s.refused(driver, number, str(r.reason), now)
        for start in res.starts:
            if start.job_id in mine:
                s, number = mine[start.job_id]
                if s.ended or number not in s.replicas:
                    driver.finish(start.job_id, now)  # placed as its service ended: it stops at once
                    continue
                ready_at = s.placed(number, start, self.gpu_model[start.cluster_id], now)
                if ready_at is not None:
                    k = self.services.index(s)
                    self._push_service(ready_at, READY, k, number, s.replicas[number].incarnation)
