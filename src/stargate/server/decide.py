"""Scheduler loop, step 2: snapshot the jobs and the fleet, let the engine decide, write every decision in ONE
transaction (pending → placed with a run row, preemptions → pending, rejections → failed). No executor call here."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from stargate.domain import Fleet
from stargate.engine import CycleResult, FleetIndex, JobRequest, Scheduler, get_policy
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError
from stargate.store import JobRow, JobStatus, RunRow, parse_job_id, transition
from stargate.store.repositories import jobs as job_repo
from stargate.store.repositories import runs as run_repo

ENGINE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
"""Engine time zero: engine times are float seconds since this instant."""
ACTOR = "scheduler"
PRICE_QUANTUM = Decimal("0.000001")


@dataclass
class Snapshot:
    """What one cycle decides over: the fleet in force and every non-final job (detached rows)."""

    fleet: Fleet
    version: str
    pending: list[JobRow]
    holding: list[JobRow]
    """Placed and running jobs."""
    executor_of_cluster: dict[str, str] = field(default_factory=dict)


def engine_seconds(at: datetime) -> float:
    """``at`` as engine time (seconds since :data:`ENGINE_EPOCH`)."""
    return (at - ENGINE_EPOCH).total_seconds()


def take_snapshot(ctx: ServerContext) -> Snapshot | None:
    """Read the fleet and the jobs in one read transaction; None before any fleet was applied."""
    with ctx.db.read() as session:
        try:
            version, fleet = ctx.fleet.get(session)
        except NotFoundError:
            return None
        pending = job_repo.with_status(session, [JobStatus.PENDING])
        holding = job_repo.with_status(session, [JobStatus.PLACED, JobStatus.RUNNING])
    return Snapshot(fleet, version, pending, holding, executor_of_cluster=_executors(fleet))


def _executors(fleet: Fleet) -> dict[str, str]:
    provider_of_site = {s.id: s.provider for s in fleet.sites}
    kind = {p.id: p.executor.value for p in fleet.providers}
    return {c.id: kind.get(provider_of_site.get(c.site, ""), "local") for c in fleet.clusters}


def decide(snap: Snapshot, now: datetime) -> tuple[CycleResult, list[tuple[JobRow, str]]]:
    """Run one engine cycle over the snapshot; also the held jobs that could not be restored (cluster gone)."""
    sched = Scheduler(FleetIndex.from_fleet(snap.fleet, epoch=ENGINE_EPOCH), get_policy("stargate"))
    lost: list[tuple[JobRow, str]] = []
    known = set(snap.executor_of_cluster)
    for job in snap.holding:
        if job.cluster not in known:
            lost.append((job, f"cluster '{job.cluster}' is no longer in the fleet"))
            continue
        started = job.started_at or now
        try:
            sched.restore_running(request_of(job), job.cluster, tuple(job.gpu_ids), engine_seconds(started))
        except Exception as exc:  # any refusal (bad GPU ids, a class the queue lost): requeue, never stall the loop
            lost.append((job, f"placement on '{job.cluster}' no longer valid: {exc}"))
    for job in snap.pending:
        sched.submit(request_of(job))
    return sched.cycle(engine_seconds(now)), lost


def request_of(job: JobRow) -> JobRequest:
    """The engine's view of a stored job."""
    spec = job.spec
    return JobRequest(
        id=job.public_id,
        queue=job.queue_id,
        gpus=job.gpus,
        gpu_models=tuple(job.gpu_models),
        priority=job.priority,
        preemptible=job.preemptible,
        submit_s=engine_seconds(job.submitted_at),
        duration_s=spec.get("estimated_duration_s"),
        checkpoint_interval_s=spec.get("checkpoint_interval_s"),
        allowed_providers=tuple(spec.get("allowed_providers") or ()),
        allowed_regions=tuple(spec.get("allowed_regions") or ()),
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
    ctx: ServerContext, snap: Snapshot, result: CycleResult, lost: list[tuple[JobRow, str]], now: datetime
) -> Applied:
    """Write the cycle's decisions in one transaction, each only if its job is still where the snapshot saw it."""
    seen = {j.id: (JobStatus(j.status), j.attempt) for j in (*snap.pending, *snap.holding)}
    ids = _row_ids([s.job_id for s in result.starts], [p.job_id for p in result.preemptions])
    ids += _row_ids([r.job_id for r in result.rejections], [j.public_id for j, _ in lost])
    out = Applied()
    with ctx.db.write() as session:
        rows = job_repo.get_many(session, ids, for_update=True)

        def unchanged(public_id: str) -> JobRow | None:
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
