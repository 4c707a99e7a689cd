"""The discrete-event simulator: a virtual clock over a trace driving the very same engine as the server.

Events live in a heap of ``(time, priority, sequence, kind, job, run)`` tuples (deterministic, FIFO on ties);
arrivals are read from the trace in submission order instead of being pushed all at once. At one instant the
simulator handles, in order: job finishes, cluster failures and repairs, then arrivals, and then runs **one**
scheduling cycle for the whole batch. Other events:

- a job's finish is scheduled when it starts, at ``start + (duration - progress)`` (the trace's actual run
  time); a preemption bumps the job's run number so the stale finish is ignored;
- checkpoints are not separate events: the progress a stopped job keeps is computed by the engine as whole
  checkpoint intervals of its run (``floor(ran / interval) * interval``), which is exactly what an event per
  checkpoint would record;
- wake-ups at the instants the engine asks for (a burst deadline, a building energised, a contract starting
  or ending, a cluster's online window), so capacity is used from that very instant;
- procurement (:mod:`stargate.sim.procure`, when the fleet has a ``procurement.pressure`` section): after the
  decisions of an instant, at offer deadlines, at the simulated holder's answers and every hour, queue pressure may
  raise a capacity request and the book moves; an award adds a contract and a cluster to the fleet and the engine is
  rebuilt over it (:mod:`stargate.sim.refleet`), the cluster coming online on the award's start day.

Every run is recorded (job, cluster, price, contract, start and end) and priced by the ledger at the end
(:mod:`stargate.sim.money`).

Same inputs and seed give the same decisions: nothing here reads the wall clock except to report ``wall_s``.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from stargate.domain import ClusterStatus, Fleet, ProviderKind
from stargate.engine import Decisions, Driver, JobTerms, Override, Policy, Preemption, Reason, policy_for
from stargate.engine.estimates import DEFAULT_QUANTILE, RunHistory
from stargate.engine.fragmentation import fragmented_gpus
from stargate.engine.scheduler import OWN
from stargate.engine.waits import PUBLIC
from stargate.sim.money import Run
from stargate.sim.procure import CHECK_EVERY_S, SimProcurement
from stargate.sim.refleet import procure_step

FINISH, FAILURE, ARRIVAL, WAKE, PROCURE = 0, 1, 2, 3, 4

ESTIMATE_MODES = ("learned", "trace", "actual")
"""What the engine is told of run times (see ``SimConfig.estimates``)."""

MAX_DURATION_S = 100 * 365.25 * 86_400.0
"""Longest run time a trace job may state (100 years), s; a longer or non-finite one is bad input: the job is
rejected with reason ``duration_out_of_range`` (so every sum the run reports stays finite). A (scaled) submission
time further than this from 0 is rejected as ``submit_out_of_range`` (its date could not be priced)."""


class TraceJobLike(Protocol):
    """What the simulator reads from a trace job (``stargate.traces.TraceJob`` has it all)."""

    @property
    def id(self) -> str: ...
    @property
    def submit_s(self) -> float: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def gpus(self) -> int: ...
    @property
    def queue(self) -> str: ...
    @property
    def gpu_models(self) -> tuple[str, ...]: ...
    @property
    def priority_class(self) -> str | None: ...
    @property
    def preemptible(self) -> bool: ...
    @property
    def checkpoint_interval_s(self) -> float | None: ...
    @property
    def allowed_providers(self) -> tuple[str, ...]: ...
    @property
    def allowed_regions(self) -> tuple[str, ...]: ...
    @property
    def estimated_duration_s(self) -> float | None: ...
    @property
    def user(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """Cluster ``cluster`` goes down at ``at_s`` for ``for_s`` seconds (trace time)."""

    cluster: str
    at_s: float
    for_s: float


@dataclass(slots=True)
class SimConfig:
    """How to run: policy and its settings, horizon, arrival scaling, failures, estimates."""

    policy: str | None = None
    """Policy name; None: the fleet's ``scheduling.policy``."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Settings over the fleet's ``scheduling.settings`` (dropped when ``policy`` names another policy)."""
    seed: int = 0
    until_s: float | None = None
    scale_arrivals: float = 1.0
    """Arrival-rate multiplier: submission times are divided by it."""
    failures: list[Failure] = field(default_factory=list)
    estimates: str = "learned"
    """Run-time estimates the engine is told (see ``ESTIMATE_MODES``): 'learned' (default, what a real server
    knows): the trace's estimate where it states one, else one learned from completed jobs
    (:mod:`stargate.engine.estimates`); 'trace': the trace's estimate, else the policy's default; 'actual': the
    job's actual run time (an oracle, as in most trace studies and Starburst)."""
    estimate_quantile: float = DEFAULT_QUANTILE
    """Learned mode: the quantile of similar jobs' recent run times taken as a job's estimate (0 < q <= 1)."""
    mtbf_s: float | None = None
    """Random failures: each cluster fails after exponential times with this mean, s (drawn from ``seed``)."""
    mttr_s: float = 3600.0
    """Mean of the exponential repair time of random failures, s."""
    record_log: bool = False
    procurement: bool = True
    """Run the fleet's procurement (pressure, first refusal, market); False: the fleet stays as it is."""
    rofr: bool = True
    """Honour rights of first refusal; False: every request goes straight to the market (a what-if)."""
    holder_match_probability: float | None = None
    """Chance the simulated holder matches an offer, 0 to 1; None: the fleet's ``holder_response``."""
    holder_response_days: float | None = None
    """Days after an offer the simulated holder answers, 0 to 365; None: the fleet's ``holder_response``."""
    progress: Callable[[int, int], None] | None = None
    """Called now and then with (jobs settled, jobs total)."""


@dataclass(slots=True)
class SimState:
    """Per-job outcomes as arrays indexed like the trace, plus totals; read by :mod:`stargate.sim.metrics`."""

    submit: np.ndarray[Any, np.dtype[np.float64]]
    duration: np.ndarray[Any, np.dtype[np.float64]]
    gpus: np.ndarray[Any, np.dtype[np.int64]]
    first_start: np.ndarray[Any, np.dtype[np.float64]]
    finish: np.ndarray[Any, np.dtype[np.float64]]
    cost: np.ndarray[Any, np.dtype[np.float64]]
    cloud_gpu_s: np.ndarray[Any, np.dtype[np.float64]]
    estimate: np.ndarray[Any, np.dtype[np.float64]] = field(default_factory=lambda: np.zeros(0))
    """The engine's run-time estimate of each job at submission, s (NaN: never submitted)."""
    estimate_source: np.ndarray[Any, np.dtype[np.int8]] = field(default_factory=lambda: np.zeros(0, np.int8))
    """Where it came from: 0 the job's own (trace or actual), 1 learned, 2 the policy's default, -1 not submitted."""
    estimates: str = "learned"
    """The estimates mode of the run."""
    rejected: dict[int, str] = field(default_factory=dict)
    preemptions: Counter[str] = field(default_factory=Counter)
    lost_gpu_s: float = 0.0
    """GPU-seconds lost to restarts: each stopped run's work since its last checkpoint plus the restart cost."""
    busy_gpu_s: dict[int, float] = field(default_factory=dict)
    cost_by_cluster: dict[int, float] = field(default_factory=dict)
    events: int = 0
    cycles: int = 0
    end_s: float = 0.0
    fragmented_gpu_s: float = 0.0
    """GPU-seconds idle but unusable for the first pending job (see :mod:`stargate.sim.metrics`)."""
    wait_s: list[float] = field(default_factory=lambda: [0.0] * len(PUBLIC))
    """Job-seconds pending per wait code of :mod:`stargate.engine.waits` (see :mod:`stargate.sim.metrics`)."""
    log: list[tuple[Any, ...]] = field(default_factory=list)


def _check_config(config: SimConfig) -> None:
    """Refuse a configuration no run can use; raises ValueError naming the field, what was found and expected."""
    p, d = config.holder_match_probability, config.holder_response_days
    checks = [
        ("seed", config.seed, config.seed >= 0, "a whole number >= 0"),
        ("scale_arrivals", config.scale_arrivals, 0 < config.scale_arrivals < math.inf, "a finite number > 0"),
        ("until_s", config.until_s, config.until_s is None or config.until_s >= 0, "a number of seconds >= 0"),
        ("mttr_s", config.mttr_s, 0 < config.mttr_s < math.inf, "a finite number of seconds > 0"),
        ("mtbf_s", config.mtbf_s, config.mtbf_s is None or 0 < config.mtbf_s < math.inf, "a finite number > 0"),
        ("estimates", config.estimates, config.estimates in ESTIMATE_MODES, " or ".join(ESTIMATE_MODES)),
        ("estimate_quantile", config.estimate_quantile, 0 < config.estimate_quantile <= 1, "a number > 0 and <= 1"),
        ("holder_match_probability", p, p is None or 0 <= p <= 1, "a probability from 0 to 1"),
        ("holder_response_days", d, d is None or 0 <= d <= 365, "a number of days from 0 to 365"),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise ValueError(f"simulation setting {name}: found {value!r}; expected {expected}")


class Simulator:
    """One run of a trace over a fleet under one policy."""

    def __init__(self, fleet: Fleet, jobs: Sequence[TraceJobLike], config: SimConfig, epoch: datetime) -> None:
        """Prepare the run; ``epoch`` is trace time 0 (the fleet's as_of date unless told otherwise)."""
        _check_config(config)
        self.fleet, self.config = fleet, config
        self.policy: Policy = policy_for(fleet.scheduling, Override(config.policy, config.settings))
        history = RunHistory(config.estimate_quantile) if config.estimates == "learned" else None
        self.driver = Driver(fleet, self.policy, epoch.replace(tzinfo=epoch.tzinfo or UTC), history=history)
        self.index = self.driver.index
        self.rng = np.random.default_rng(config.seed)
        order = sorted(range(len(jobs)), key=lambda i: (jobs[i].submit_s, i))
        self.jobs = [jobs[i] for i in order]
        n = len(self.jobs)
        scale = config.scale_arrivals
        self.arrival = [j.submit_s / scale for j in self.jobs]
        self.state = SimState(
            submit=np.array(self.arrival, dtype=np.float64),
            duration=np.array([j.duration_s for j in self.jobs], dtype=np.float64),
            gpus=np.array([j.gpus for j in self.jobs], dtype=np.int64),
            first_start=np.full(n, math.nan),
            finish=np.full(n, math.nan),
            cost=np.zeros(n),
            cloud_gpu_s=np.zeros(n),
            estimates=config.estimates,
        )
        self.ix = {j.id: i for i, j in enumerate(self.jobs)}
        kinds = {p.id: p.kind for p in fleet.providers}
        self.cloud = [kinds.get(p) is ProviderKind.CLOUD for p in self.index.provider_of]
        self.heap: list[tuple[float, int, int, int, int, int]] = []
        self.seq = 0
        self.progress = [0.0] * n
        self.run = [0] * n
        self.outage_stops: dict[int, int] = {}  # job → the engine's count of outage stops in a row (0: left out)
        self.started_at = [0.0] * n
        self.on = [(-1, 0.0)] * n
        self.wake_at = math.inf
        self.outages = [0] * self.index.n
        """Outages open per cluster (index like ``FleetIndex``); the cluster is down while > 0."""
        # Per-job outcomes as Python lists during the run (fast scalar access); copied into ``state`` at the end.
        self._gpus = [j.gpus for j in self.jobs]
        self._dur = [j.duration_s for j in self.jobs]
        self._first = [math.nan] * n
        self._finish = [math.nan] * n
        self._cost = [0.0] * n
        self._cloud_s = [0.0] * n
        self._est = [math.nan] * n
        self._est_from = [-1] * n
        self.settled = 0  # jobs finished or rejected so far
        self.bad = self._reject_bad_inputs()
        """Jobs refused before the run (never submitted to the engine)."""
        self.gpu_ids: list[tuple[int, ...]] = [()] * n
        self.attained = [0.0] * n
        """GPU-seconds of each job's ended runs (for a rebuilt driver under the attained-service policies)."""
        self.runs: list[Run] = []
        """Every ended run, for the ledger (:mod:`stargate.sim.money`)."""
        self._contract: list[str | None] = [None] * n
        proc = SimProcurement(
            fleet,
            self.driver.index.epoch,
            config.seed,
            rofr=config.rofr,
            match_probability=config.holder_match_probability,
            response_days=config.holder_response_days,
        )
        self.proc = proc
        """The fleet's procurement, active or not (its book holds the budget's draws)."""
        self.procurement = proc if config.procurement and proc.active else None
        """The run's procurement; None when it is off or the fleet has no pressure trigger."""
        self.woken: set[float] = set()
        """Procurement instants already pushed."""
        self._procure_due = False

    def _reject_bad_inputs(self) -> set[int]:
        """Reject jobs whose run time or (scaled) submission time no run could use; see ``MAX_DURATION_S``."""
        bad: set[int] = set()
        for i, j in enumerate(self.jobs):
            if not 0.0 <= j.duration_s <= MAX_DURATION_S:
                self.state.rejected[i] = Reason.DURATION_OUT_OF_RANGE
            elif not abs(self.arrival[i]) <= MAX_DURATION_S:  # NaN too; a date that far cannot be priced
                self.state.rejected[i] = Reason.SUBMIT_OUT_OF_RANGE
            else:
                continue
            bad.add(i)
        self.settled += len(bad)
        return bad

    # -- the loop ---------------------------------------------------------------------------------------------
    def run_all(self) -> SimState:
        """Run to the end of the trace (or ``until_s``) and return the outcomes."""
        for f in self.config.failures:
            self.push(f.at_s, FAILURE, self.index.cluster_ix[f.cluster], 0)
            self.push(f.at_s + f.for_s, FAILURE, self.index.cluster_ix[f.cluster], 1)
        if self.config.mtbf_s is not None:
            t0 = self.arrival[0] if self.arrival else 0.0
            for c in range(self.index.n):
                self.push(t0 + float(self.rng.exponential(self.config.mtbf_s)), FAILURE, c, 2)
        if self.procurement is not None and self.arrival:
            self.push(math.ceil(self.arrival[0] / CHECK_EVERY_S) * CHECK_EVERY_S, PROCURE, 0, 0)
        st, arrival, n = self.state, self.arrival, len(self.jobs)
        until = self.config.until_s if self.config.until_s is not None else math.inf
        heap, i, settled_report, driver = self.heap, 0, 0, self.driver
        frag, frag_t, sched = 0, 0.0, driver.sched  # fragmented GPUs since frag_t (see stargate.sim.metrics)
        bad = self.bad
        while True:
            while i < n and i in bad:  # a rejected job's time is no instant of the run (it may be out of range)
                i += 1
            t_heap = heap[0][0] if heap else math.inf
            now = min(t_heap, arrival[i] if i < n else math.inf)
            if now == math.inf or (i == n and self.settled == n):
                break  # every job settled: what is left in the heap (wake-ups, outages) changes nothing
            if now > until:
                st.end_s = max(st.end_s, until)  # stopped by the horizon: the run lasts up to it
                break
            if frag:
                st.fragmented_gpu_s += frag * (now - frag_t)
            _add_waits(st.wait_s, sched.waits.counts, now - frag_t)
            frag_t = now
            changed = False  # whether anything happened now that the server would see too
            self._procure_due = False
            while heap and heap[0][0] == now:
                changed = self._handle(heapq.heappop(heap), now) or changed
            while i < n and arrival[i] == now:
                if i not in self.bad:
                    self._submit(i)
                    changed = True
                i += 1
            if changed and driver.has_work(now):
                res = driver.decide(now)
                self._after(res, now)
                st.cycles += res.rounds
            if self.procurement is not None and (changed or self._procure_due) and procure_step(self, now):
                driver, changed = self.driver, True
                sched = driver.sched
                res = driver.decide(now)  # the rebuilt engine: its wake-ups (and anything it starts)
                self._after(res, now)
                st.cycles += res.rounds
            if changed:
                frag = fragmented_gpus(sched, now)
            st.end_s = now
            if self.config.progress is not None and st.events - settled_report >= 20_000:
                settled_report = st.events
                self.config.progress(self.settled, n)
        self._close_runs(st.end_s)
        st.fragmented_gpu_s += frag * max(st.end_s - frag_t, 0.0)
        _add_waits(st.wait_s, sched.waits.counts, max(st.end_s - frag_t, 0.0))
        st.first_start = np.array(self._first, dtype=np.float64)
        st.finish = np.array(self._finish, dtype=np.float64)
        st.cost = np.array(self._cost, dtype=np.float64)
        st.cloud_gpu_s = np.array(self._cloud_s, dtype=np.float64)
        st.estimate = np.array(self._est, dtype=np.float64)
        st.estimate_source = np.array(self._est_from, dtype=np.int8)
        return st

    def push(self, t: float, kind: int, a: int, b: int) -> None:
        """Schedule an event of ``kind`` at ``t`` (FIFO among events of one instant and kind)."""
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, kind, a, b))

    def _handle(self, ev: tuple[float, int, int, int, int, int], now: float) -> bool:
        """Handle one event; False when it changed nothing (the finish of a run since stopped, a wake-up the engine
        no longer asks for, an outage overlapping another): the clock then does not decide for it, as the server
        sees no such event."""
        _, _, _, kind, a, b = ev
        self.state.events += 1
        if kind == FINISH:
            if self.run[a] == b:
                self._finished(a, now)
                return True
        elif kind == FAILURE:
            cid = self.index.cluster_ids[a]
            up = b in (1, 3)
            if b == 2:  # a random failure: draw its repair; a random repair draws the next failure
                self.push(now + float(self.rng.exponential(self.config.mttr_s)), FAILURE, a, 3)
            elif b == 3 and self.config.mtbf_s is not None:
                self.push(now + float(self.rng.exponential(self.config.mtbf_s)), FAILURE, a, 2)
            # Outages may overlap (two --failure windows, or a random one within a window): the cluster is up
            # again only when the last open outage ends.
            self.outages[a] += -1 if up else 1
            if self.outages[a] == (0 if up else 1):
                self.driver.set_cluster_status(cid, ClusterStatus.UP if up else ClusterStatus.DOWN, now)
                if self.config.record_log:
                    self.state.log.append((now, "repair" if up else "failure", cid))
                return True
        elif kind == WAKE:
            return now == self.wake_at
        elif kind == PROCURE:
            self._procure_due = True
            if a == 0:  # the hourly check: the next one
                self.push(now + CHECK_EVERY_S, PROCURE, 0, 0)
            return a == 2  # capacity bought comes online: decide
        return False

    def _submit(self, i: int) -> None:
        j = self.jobs[i]
        self.state.events += 1
        est = j.duration_s if self.config.estimates == "actual" else j.estimated_duration_s
        driver = self.driver
        driver.submit(
            JobTerms(
                id=j.id,
                queue=j.queue,
                gpus=j.gpus,
                submit_s=self.arrival[i],
                gpu_models=tuple(j.gpu_models),
                priority_class=j.priority_class,
                preemptible=j.preemptible,
                estimate_s=est,
                checkpoint_interval_s=j.checkpoint_interval_s,
                allowed_providers=tuple(j.allowed_providers),
                allowed_regions=tuple(j.allowed_regions),
                user=j.user,
                name=j.name,
            )
        )
        sched = driver.sched
        row = sched.jobs.ix.get(j.id)
        if row is not None:
            self._est[i] = sched.jobs.est[row]
            self._est_from[i] = sched.estimate_source if est is None else OWN

    def _after(self, res: Decisions, now: float) -> None:
        st, ix = self.state, self.ix
        if res.rejections:
            for r in res.rejections:
                st.rejected[ix[r.job_id]] = r.reason
                if self.config.record_log:
                    st.log.append((now, "reject", r.job_id, r.reason))
            self.settled += len(res.rejections)
        if res.preemptions:
            self.stopped(res.preemptions, now)
        cluster_ix, log = self.index.cluster_ix, self.config.record_log
        first, started_at, on, dur, progress, run = (
            self._first,
            self.started_at,
            self.on,
            self._dur,
            self.progress,
            self.run,
        )
        heap = self.heap
        for s in res.starts:
            i = ix[s.job_id]
            if first[i] != first[i]:  # NaN: first start
                first[i] = now
            started_at[i] = now
            on[i] = (cluster_ix[s.cluster_id], s.price_usd_per_gpu_hour)
            self.gpu_ids[i] = s.gpu_ids
            self._contract[i] = s.contract_id
            self.seq += 1
            heapq.heappush(heap, (now + max(dur[i] - progress[i], 0.0), FINISH, self.seq, FINISH, i, run[i]))
            if log:
                st.log.append((now, "start", s.job_id, s.cluster_id, s.gpu_ids))
        wake = res.next_wakeup_s
        if wake is None:
            self.wake_at = math.inf
        elif wake != self.wake_at:  # the engine asks for another instant: the wake-up pushed before goes stale
            self.wake_at = wake
            self.push(wake, WAKE, 0, 0)

    def _account(self, i: int, now: float) -> None:
        """Charge the run of job ``i`` that ends at ``now``: busy GPU-seconds, cost, cloud GPU-seconds."""
        c, price = self.on[i]
        gpu_s = (now - self.started_at[i]) * self._gpus[i]
        st = self.state
        st.busy_gpu_s[c] = st.busy_gpu_s.get(c, 0.0) + gpu_s
        self._cost[i] += gpu_s / 3600.0 * price
        st.cost_by_cluster[c] = st.cost_by_cluster.get(c, 0.0) + gpu_s / 3600.0 * price
        if self.cloud[c]:
            self._cloud_s[i] += gpu_s
        self.attained[i] += gpu_s
        self.runs.append(Run(i, self.run[i], c, price, self._contract[i], self._gpus[i], self.started_at[i], now))
        self.on[i] = (-1, 0.0)

    def _finished(self, i: int, now: float) -> None:
        self._account(i, now)
        self._finish[i] = now
        self.settled += 1
        self.driver.finish(self.jobs[i].id, now, completed=True)
        if self.config.record_log:
            self.state.log.append((now, "finish", self.jobs[i].id))

    def stopped(self, stops: list[Preemption], now: float) -> None:
        """Runs stopped at ``now``: charged, their progress kept to the last checkpoint."""
        st = self.state
        for p in stops:
            i = self.ix[p.job_id]
            self._account(i, now)
            st.lost_gpu_s += (self.progress[i] + (now - self.started_at[i]) - p.progress_s) * self._gpus[i]
            self.progress[i] = p.progress_s
            self.run[i] += 1
            st.preemptions[p.reason] += 1
            if p.outage_stops or i in self.outage_stops:
                self.outage_stops[i] = p.outage_stops
            if self.config.record_log:
                st.log.append((now, "preempt", p.job_id, p.reason, p.progress_s))

    def _close_runs(self, end: float) -> None:
        """At the end of the run (``until_s`` when it stopped the run), charge the runs still going up to ``end``."""
        for i, (c, _) in enumerate(self.on):
            if c >= 0:
                self._account(i, max(end, self.started_at[i]))


def _add_waits(wait_s: list[float], counts: list[int], dt: float) -> None:
    """Add ``dt`` seconds of the pending jobs counted per wait code to ``wait_s``."""
    if dt > 0.0:
        for k, n in enumerate(counts):
            if n:
                wait_s[k] += n * dt
