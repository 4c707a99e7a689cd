"""Scheduler loop, step 2: snapshot the jobs and the fleet, let the engine decide, write every decision in ONE
transaction (pending → placed with a run row, preemptions → pending, rejections → failed). No executor call here."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from stargate.domain import Fleet
from stargate.engine import CycleResult, FleetIndex, JobRequest, Scheduler, get_policy
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError
from stargate.store import JobRow, JobStatus, RunRow, parse_job_id, transition
from stargate.store.repositories import jobs as job_repo
from stargate.store.repositories import runs as run_repo
from stargate.store.repositories.jobs import JobState

ENGINE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
"""Engine time zero: engine times are float seconds since this instant."""
ACTOR = "scheduler"
PRICE_QUANTUM = Decimal("0.000001")


@dataclass
class Snapshot:
    """What one cycle decides over: the fleet in force, every non-final job, the engine's view of each."""

    fleet: Fleet
    version: str
    pending: list[JobState]
    holding: list[JobState]
    """Placed and running jobs."""
    requests: dict[int, JobRequest] = field(default_factory=dict)
    """The engine's request for every job above, by row id."""
    executor_of_cluster: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpecTerms:
    """The parts of a job's spec the engine needs; specs never change, so the loop parses each once."""

    duration_s: float | None
    checkpoint_interval_s: float | None
    allowed_providers: tuple[str, ...]
    allowed_regions: tuple[str, ...]

    @classmethod
    def of(cls, spec: dict[str, Any]) -> "SpecTerms":
        """The terms of a stored spec."""
        return cls(
            spec.get("estimated_duration_s"),
            spec.get("checkpoint_interval_s"),
            tuple(spec.get("allowed_providers") or ()),
            tuple(spec.get("allowed_regions") or ()),
        )


def engine_seconds(at: datetime) -> float:
    """``at`` as engine time (seconds since :data:`ENGINE_EPOCH`)."""
    return (at - ENGINE_EPOCH).total_seconds()


def take_snapshot(ctx: ServerContext) -> Snapshot | None:
    """Read the fleet and the jobs in one read transaction; None before any fleet was applied.

    Spec terms come from ``ctx.loop.spec_terms`` (filled for new jobs, pruned to the jobs seen now).
    """
    with ctx.db.read() as session:
        try:
            version, fleet = ctx.fleet.get(session)
        except NotFoundError:
            return None
        pending = job_repo.states(session, [JobStatus.PENDING])
        holding = job_repo.states(session, [JobStatus.PLACED, JobStatus.RUNNING])
        cache = ctx.loop.spec_terms
        missing = [j.id for j in (*pending, *holding) if j.id not in cache]
        cache.update({i: SpecTerms.of(spec) for i, spec in job_repo.specs(session, missing).items()})
    live = {j.id for j in (*pending, *holding)}
    for gone in [i for i in cache if i not in live]:
        del cache[gone]
    requests = {j.id: request_of(j, cache[j.id]) for j in (*pending, *holding)}
    return Snapshot(fleet, version, pending, holding, requests, executor_of_cluster=_executors(fleet))


def _executors(fleet: Fleet) -> dict[str, str]:
    provider_of_site = {s.id: s.provider for s in fleet.sites}
    kind = {p.id: p.executor.value for p in fleet.providers}
    return {c.id: kind.get(provider_of_site.get(c.site, ""), "local") for c in fleet.clusters}


def decide(snap: Snapshot, now: datetime) -> tuple[CycleResult, list[tuple[JobState, str]]]:
    """Run one engine cycle over the snapshot; also the held jobs that could not be restored (cluster gone)."""
    sched = Scheduler(FleetIndex.from_fleet(snap.fleet, epoch=ENGINE_EPOCH), get_policy("stargate"))
    lost: list[tuple[JobState, str]] = []
    known = set(snap.executor_of_cluster)
    for job in snap.holding:
        if job.cluster is None or job.cluster not in known:
            lost.append((job, f"cluster '{job.cluster}' is no longer in the fleet"))
            continue
        started = job.started_at or now
        try:
            sched.restore_running(snap.requests[job.id], job.cluster, tuple(job.gpu_ids), engine_seconds(started))
        except Exception as exc:  # any refusal (bad GPU ids, a class the queue lost): requeue, never stall the loop
            lost.append((job, f"placement on '{job.cluster}' no longer valid: {exc}"))
    for job in snap.pending:
        sched.submit(snap.requests[job.id])
    return sched.cycle(engine_seconds(now)), lost


def request_of(job: JobState, terms: SpecTerms) -> JobRequest:
    """The engine's view of a stored job."""
    return JobRequest(
        id=job.public_id,
        queue=job.queue_id,
        gpus=job.gpus,
        gpu_models=tuple(job.gpu_models),
        priority=job.priority,
        preemptible=job.preemptible,
        submit_s=engine_seconds(job.submitted_at),
        duration_s=terms.duration_s,
        checkpoint_interval_s=terms.checkpoint_interval_s,
        allowed_providers=terms.allowed_providers,
        allowed_regions=terms.allowed_regions,
        progress_s=job.progress_s,
    )


@dataclass
class Applied:
    """What the decision transaction actually wrote (decisions on jobs that changed meanwhile are dropped)."""

    placed: int = 0
    preempted: int = 0
    rejected: int = 0
    requeued: int = 0


def apply_decisions(
    ctx: ServerContext, snap: Snapshot, result: CycleResult, lost: list[tuple[JobState, str]], now: datetime
) -> Applied:
    """Write the cycle's decisions in one transaction, each only if its job is still where the snapshot saw it."""
    seen = {j.id: (JobStatus(j.status), j.attempt) for j in (*snap.pending, *snap.holding)}
    ids = _row_ids([s.job_id for s in result.starts], [p.job_id for p in result.preemptions])
    ids += _row_ids([r.job_id for r in result.rejections], [j.public_id for j, _ in lost])
    out = Applied()
    with ctx.db.write() as session:
        rows = job_repo.get_many(session, ids, for_update=True)

        def unchanged(public_id: str) -> JobRow | None:
            """The locked row of this job if its status and attempt are still those of the snapshot."""
            row = rows.get(parse_job_id(public_id) or -1)
            return row if row is not None and (JobStatus(row.status), row.attempt) == seen.get(row.id) else None

        for job, why in lost:
            if (row := unchanged(job.public_id)) is not None:
                transition(session, row, JobStatus.PENDING, f"requeued: {why}", ACTOR, now)
                out.requeued += 1
        for p in result.preemptions:
            if (row := unchanged(p.job_id)) is not None and JobStatus(row.status).holds_gpus():
                transition(session, row, JobStatus.PENDING, f"preempted: {p.reason}", ACTOR, now)
                row.progress_s = p.progress_s
                out.preempted += 1
        for r in result.rejections:
            if (row := unchanged(r.job_id)) is not None and row.status == JobStatus.PENDING:
                transition(session, row, JobStatus.FAILED, f"rejected: {r.reason}", ACTOR, now)
                out.rejected += 1
        for s in result.starts:
            if (row := unchanged(s.job_id)) is not None and row.status == JobStatus.PENDING:
                _place(session, row, s.cluster_id, s.gpu_ids, s.price_usd_per_gpu_hour, s.contract_id, snap, now)
                out.placed += 1
    return out


def _row_ids(*groups: Iterable[str]) -> list[int]:
    return [i for g in groups for pid in g if (i := parse_job_id(pid)) is not None]


def _place(
    session: Session,
    row: JobRow,
    cluster: str,
    gpu_ids: tuple[int, ...],
    price: float,
    contract: str | None,
    snap: Snapshot,
    now: datetime,
) -> None:
    transition(session, row, JobStatus.PLACED, f"placed on {cluster} ({len(gpu_ids)} GPUs)", ACTOR, now)
    row.cluster = cluster
    row.gpu_ids = list(gpu_ids)
    row.price_usd_per_gpu_hour = Decimal(str(price)).quantize(PRICE_QUANTUM)
    row.contract_id = contract
    executor = snap.executor_of_cluster.get(cluster, "local")
    run_repo.add(
        session, RunRow(job_id=row.id, attempt=row.attempt, executor=executor, cluster=cluster, created_at=now)
    )
