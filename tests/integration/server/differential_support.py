"""The two clocks of the differential test: a trace through the simulator, and through the real server.

The server side is the real FastAPI app over a real database (SQLite or PostgreSQL) with the scheduler loop's
:func:`run_cycle` driven by a clock the test advances from event to event (arrivals, run ends, outages and the
engine's own wake-ups), and a :class:`TraceExecutor` in place of the local executor whose runs end after the trace's
run time minus the progress the job kept. Both sides give a decision log of ``(instant s, what, job, ...)`` rows:
``start`` (cluster, GPU ids), ``preempt`` (reason, progress kept s), ``reject`` (reason) and ``finish``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from integration.server.stargate_harness import Harness, build_harness
from stargate.domain import Fleet, JobReason
from stargate.domain.reasons import ENGINE_REASONS
from stargate.engine import Override
from stargate.executors import Capabilities, RunHandle, RunRequest, RunState, RunStatus
from stargate.server.context import ExecutorRegistry
from stargate.server.deps import utc_now
from stargate.server.scheduling.loop import run_cycle
from stargate.server.terms import ENGINE_EPOCH, engine_seconds
from stargate.sim.simulator import Failure, SimConfig, Simulator
from stargate.store import JobEventRow, JobRow, format_job_id, parse_job_id
from stargate.traces import TraceJob

Row = tuple[Any, ...]
ENGINE_CODES = frozenset(r.value for r in ENGINE_REASONS)
"""The engine's rejection and preemption codes, as job events store them."""


def simulate(
    fleet: Fleet,
    jobs: Sequence[TraceJob],
    outages: Sequence[Failure],
    override: Override,
    estimates: str = "learned",
) -> list[Row]:
    """The simulator's decision log of ``jobs`` on ``fleet`` (engine time: trace time 0 is the server's epoch).

    ``learned`` estimates (the default) are what the server knows: a job's own estimate, else one learned from the
    jobs completed so far."""
    config = SimConfig(
        policy=override.policy,
        settings=dict(override.settings),
        estimates=estimates,
        failures=list(outages),
        record_log=True,
    )
    sim = Simulator(fleet, jobs, config, epoch=ENGINE_EPOCH)
    sim.run_all()
    return canonical([r for r in sim.state.log if r[1] in ("start", "preempt", "reject", "finish")])


def canonical(rows: Sequence[Row]) -> list[Row]:
    """Rows in (instant, what, job) order: the order of decisions within one instant is not part of the contract."""
    kinds = {"finish": 0, "preempt": 1, "reject": 2, "start": 3}
    return sorted(
        (
            (float(r[0]), r[1], str(r[2]), *(str(x) if i == 0 and r[1] != "start" else x for i, x in enumerate(r[3:])))
            for r in rows
        ),
        key=lambda r: (r[0], kinds[r[1]], r[2]),
    )


@dataclass
class Clock:
    """The server's clock in this test: engine seconds, as an aware datetime for the app and the loop."""

    now_s: float = 0.0

    def now(self) -> datetime:
        return ENGINE_EPOCH + timedelta(seconds=self.now_s)


@dataclass
class Run:
    job: str
    ends_s: float
    cancelled: bool = False
    reported: bool = False


@dataclass
class TraceExecutor:
    """An executor whose runs end at the trace's run time minus the job's kept progress; records every start."""

    clock: Clock
    durations: dict[str, float]
    """Trace run time by public job id, s."""
    harness: Harness | None = None
    kind: str = "local"
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(logs=False))
    runs: dict[str, Run] = field(default_factory=dict)
    starts: list[tuple[float, str, str, tuple[int, ...]]] = field(default_factory=list)

    def submit(self, request: RunRequest) -> RunHandle:
        key = f"{request.job_id}/{request.attempt}"
        if key not in self.runs:
            assert self.harness is not None
            with self.harness.ctx.db.read() as session:
                progress = session.scalar(select(JobRow.progress_s).where(JobRow.id == parse_job_id(request.job_id)))
            self.runs[key] = Run(
                request.job_id, self.clock.now_s + self.durations[request.job_id] - float(progress or 0)
            )
            self.starts.append((self.clock.now_s, request.job_id, request.cluster, tuple(request.gpu_ids)))
        return RunHandle(self.kind, key)

    def find(self, job_id: str, attempt: int) -> RunHandle | None:
        key = f"{job_id}/{attempt}"
        return RunHandle(self.kind, key) if key in self.runs else None

    def poll(self, handle: RunHandle) -> RunStatus:
        run = self.runs[handle.key]
        if run.cancelled:
            return RunStatus(RunState.CANCELLED)
        if self.clock.now_s >= run.ends_s:
            run.reported = True
            return RunStatus(RunState.SUCCEEDED, exit_code=0)
        return RunStatus(RunState.RUNNING)

    def cancel(self, handle: RunHandle) -> None:
        run = self.runs[handle.key]
        if self.clock.now_s < run.ends_s:
            run.cancelled = True

    def logs(self, handle: RunHandle, offset: int = 0) -> tuple[str, int]:
        return "", offset

    def next_end(self) -> float:
        """The earliest end of a run still going, s (inf: none)."""
        return min((r.ends_s for r in self.runs.values() if not r.cancelled and not r.reported), default=math.inf)


def serve(
    fleet_path: Path,
    db_url: str,
    home: Path,
    jobs: Sequence[TraceJob],
    outages: Sequence[Failure],
    override: Override,
) -> list[Row]:
    """The server's decision log of ``jobs``: submitted through the API at their instants, decided by
    :func:`run_cycle` at every instant something happens, outages applied as fleet versions (cluster status)."""
    clock = Clock()
    h = build_harness(db_url, home, fleet_path, scheduling=override)
    try:
        return _serve(h, clock, jobs, outages)
    finally:
        h.client.close()
        h.ctx.db.close()


def _serve(h: Harness, clock: Clock, jobs: Sequence[TraceJob], outages: Sequence[Failure]) -> list[Row]:
    h.app.dependency_overrides[utc_now] = clock.now
    executor = TraceExecutor(clock, {}, h)
    h.ctx.executors = ExecutorRegistry(h.ctx.settings, {"local": executor})
    document = h.client.get("/api/v1/fleet", headers=h.headers()).json()["fleet"]
    changes: dict[float, list[tuple[str, str]]] = {}
    for o in outages:
        changes.setdefault(o.at_s, []).append((o.cluster, "down"))
        changes.setdefault(o.at_s + o.for_s, []).append((o.cluster, "up"))
    arrivals = sorted(range(len(jobs)), key=lambda i: (jobs[i].submit_s, i))
    name_of: dict[str, str] = {}
    log: list[Row] = []
    a, last_event = 0, 0
    while True:
        wake = h.ctx.loop.wakeup
        candidates = [
            jobs[arrivals[a]].submit_s if a < len(arrivals) else math.inf,
            min((t for t in changes if t > clock.now_s), default=math.inf),
            executor.next_end(),
            engine_seconds(wake) if wake is not None else math.inf,
        ]
        t = min(candidates)
        if t == math.inf:
            break
        assert t >= clock.now_s, f"time went back from {clock.now_s} to {t}"
        clock.now_s = t
        for cluster, status in changes.get(t, []):
            _set_status(h, document, cluster, status)
        while a < len(arrivals) and jobs[arrivals[a]].submit_s == t:
            job = jobs[arrivals[a]]
            public = _submit(h, job, log, t)
            if public is not None:
                name_of[public] = job.id
                executor.durations[public] = job.duration_s
            a += 1
        run_cycle(h.ctx, clock.now())
        last_event = _read_events(h, last_event, name_of, log)
    for start_s, public, cluster, gpu_ids in executor.starts:
        log.append((start_s, "start", name_of[public], cluster, gpu_ids))
    return canonical(log)


def _submit(h: Harness, job: TraceJob, log: list[Row], t: float) -> str | None:
    body: dict[str, Any] = {
        "name": job.id,
        "queue": job.queue,
        "gpus": job.gpus,
        "command": "true",
        "preemptible": job.preemptible,
        "estimated_duration_s": job.estimated_duration_s,
        "checkpoint_interval_s": job.checkpoint_interval_s,
    }
    if job.priority_class is not None:
        body["priority_class"] = job.priority_class
    if job.gpu_models:
        body["gpu_models"] = list(job.gpu_models)
    response = h.client.post("/api/v1/jobs", json=body, headers=h.headers())
    if response.status_code == 422 and "body.priority_class" in response.text:
        log.append((t, "reject", job.id, "priority_class_not_allowed"))  # the server refuses it at submission
        return None
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _set_status(h: Harness, document: dict[str, Any], cluster: str, status: str) -> None:
    """A new fleet version with ``cluster``'s status changed, through plan and apply as an operator would."""
    changed = copy.deepcopy(document)
    for c in changed["clusters"]:
        if c["id"] == cluster:
            c["status"] = status
    plan = h.client.post("/api/v1/fleet/plan", json={"fleet": changed}, headers=h.headers())
    assert plan.status_code == 200, plan.text
    applied = h.client.post("/api/v1/fleet/apply", json={"plan_id": plan.json()["plan_id"]}, headers=h.headers())
    assert applied.status_code == 200, applied.text
    document.clear()
    document.update(changed)


def _read_events(h: Harness, after: int, name_of: dict[str, str], log: list[Row]) -> int:
    """Append the decisions recorded as job events since event ``after``; the newest event id. A preemption is a
    move back to pending with an engine code, a rejection a move to failed with one."""
    with h.ctx.db.read() as session:
        rows = session.execute(
            select(JobEventRow.id, JobEventRow.job_id, JobEventRow.at, JobEventRow.to_status, JobEventRow.reason)
            .where(JobEventRow.id > after)
            .order_by(JobEventRow.id)
        ).all()
        stopped = {r[1] for r in rows if r[3] == "pending" and r[4] in ENGINE_CODES}
        progress = dict(session.execute(select(JobRow.id, JobRow.progress_s).where(JobRow.id.in_(stopped))).all())
    for event_id, row_id, at, to, reason in rows:
        after = event_id
        name = name_of[format_job_id(row_id)]
        when = engine_seconds(at if at.tzinfo else at.replace(tzinfo=ENGINE_EPOCH.tzinfo))
        if to == "succeeded":
            log.append((when, "finish", name))
        elif to == "pending" and reason in ENGINE_CODES:
            log.append((when, "preempt", name, reason, float(progress[row_id])))
        elif to == "failed" and reason in ENGINE_CODES:
            log.append((when, "reject", name, reason))
        elif to in ("failed", "cancelled") or (to == "pending" and reason != JobReason.SUBMITTED):
            raise AssertionError(f"unexpected event for {name}: {to} ({reason})")
    return after
