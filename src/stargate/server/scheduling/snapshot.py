"""Scheduler loop, step 2a: read the fleet in force and every live job in one read transaction.

Times cross into the engine as float seconds since :data:`ENGINE_EPOCH`; a job's spec is parsed once (specs never
change) into the :class:`SpecTerms` the engine and the executors need. The snapshot also says which jobs of the last
one succeeded since (they teach the engine's run history), and can read the last completed jobs to seed a new
history (:func:`completions`, a bounded query run only when the server has no history yet). Each cluster's status
is the worse of the declared one and the one its executor's health checks observe
(:func:`stargate.server.scheduling.health.overlay`), and the snapshot's version says so: a cluster observed going
down changes it as a fleet change would, and the driver is told (status-only: the cluster's jobs stop).
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from stargate.domain import ContractKind, Fleet
from stargate.engine import JobTerms
from stargate.engine.estimates import Completion
from stargate.engine.ledger import charge
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError
from stargate.server.scheduling.health import overlay
from stargate.server.terms import ENGINE_EPOCH, SpecTerms, engine_seconds, job_terms
from stargate.store import JobRow, JobStatus, RunRow, format_job_id
from stargate.store.repositories import costs as cost_repo
from stargate.store.repositories import health as health_repo
from stargate.store.repositories import jobs as job_repo
from stargate.store.repositories import runs as run_repo
from stargate.store.repositories.jobs import JobState


@dataclass
class Snapshot:
    """What one cycle decides over: the fleet in force, every non-final job, and each one's terms for the engine."""

    fleet: Fleet
    version: str
    pending: list[JobState]
    holding: list[JobState]
    """Placed and running jobs."""
    terms: dict[int, JobTerms] = field(default_factory=dict)
    """The driver's terms of every job above, by row id."""
    since: dict[int, datetime] = field(default_factory=dict)
    """When each held job was placed for its current attempt, by row id (what a rebuilt driver counts from)."""
    executor_of_cluster: dict[str, str] = field(default_factory=dict)
    succeeded: set[str] = field(default_factory=set)
    """Public ids of jobs live in the last snapshot that have succeeded since (they completed)."""
    seed: Callable[[], list[Completion]] | None = None
    """Reads the last completed jobs (see :func:`completions`), to seed a new run history."""
    down_reasons: dict[str, str] = field(default_factory=dict)
    """Why each cluster the health checks observe degraded or down is so (the fleet above holds the worse of its
    declared and observed status), by cluster id."""
    down_since: dict[str, datetime] = field(default_factory=dict)
    """Since when each cluster of ``down_reasons`` is observed so, by cluster id."""
    spent: Callable[[], dict[str, Decimal]] | None = None
    """Reads what runs that ended spent under each commitment contract (see :func:`spent_by_contract`), for a
    driver built without a previous one."""


SEED_JOBS = 2_000
"""Completed jobs read to seed the run history of a server that has none (the newest first)."""


def take_snapshot(ctx: ServerContext) -> Snapshot | None:
    """Read the fleet and the jobs in one read transaction; None before any fleet was applied.

    Spec terms come from ``ctx.loop.spec_terms`` (filled for new jobs, pruned to the jobs seen now).
    """
    with ctx.db.read() as session:
        try:
            version, fleet = ctx.fleet.get(session)
        except NotFoundError:
            return None
        observed = health_repo.not_up(session)
        fleet, version, down_reasons = overlay(fleet, version, observed)
        down_since = {c: observed[c].since for c in down_reasons}
        pending = job_repo.states(session, [JobStatus.PENDING])
        holding = job_repo.states(session, [JobStatus.PLACED, JobStatus.RUNNING])
        since = run_repo.placed_since(session) if holding else {}
        cache = ctx.loop.spec_terms
        missing = [j.id for j in (*pending, *holding) if j.id not in cache]
        users = _submitters(session, missing)
        cache.update(
            {i: SpecTerms.of(spec).with_user(users.get(i)) for i, spec in job_repo.specs(session, missing).items()}
        )
        live = {j.id for j in (*pending, *holding)}
        succeeded = _succeeded(session, [i for i in ctx.loop.terms if i not in live])
        ran = run_repo.ran_seconds(session, [j.id for j in (*pending, *holding) if j.attempt > 0])
    for gone in [i for i in cache if i not in live]:
        del cache[gone]
    terms = _terms(ctx, (*pending, *holding), ran)
    return Snapshot(
        fleet,
        version,
        pending,
        holding,
        terms,
        since,
        executor_of_cluster=_executors(fleet),
        down_reasons=down_reasons,
        down_since=down_since,
        succeeded=succeeded,
        seed=lambda: _read_completions(ctx),
        spent=lambda: _read_spent(ctx, fleet),
    )


def _submitters(session: Session, row_ids: Sequence[int]) -> dict[int, str]:
    """Who submitted each of these jobs, by row id."""
    found: dict[int, str] = {}
    for start in range(0, len(row_ids), job_repo.IN_CHUNK):
        chunk = row_ids[start : start + job_repo.IN_CHUNK]
        found.update(session.execute(select(JobRow.id, JobRow.submitted_by).where(JobRow.id.in_(chunk))).all())
    return found


def _succeeded(session: Session, row_ids: Sequence[int]) -> set[str]:
    """The public ids of those of these jobs that succeeded."""
    found: set[str] = set()
    for start in range(0, len(row_ids), job_repo.IN_CHUNK):
        chunk = row_ids[start : start + job_repo.IN_CHUNK]
        query = select(JobRow.id).where(JobRow.id.in_(chunk), JobRow.status == JobStatus.SUCCEEDED)
        found.update(format_job_id(i) for i in session.scalars(query))
    return found


def _read_spent(ctx: ServerContext, fleet: Fleet) -> dict[str, Decimal]:
    with ctx.db.read() as session:
        return spent_by_contract(session, fleet)


def spent_by_contract(session: Session, fleet: Fleet) -> dict[str, Decimal]:
    """USD spent by runs that ended under each ``commitment`` contract of ``fleet`` (what its marginal price
    depends on), charged as the ledger charges them: from the executor's start to the run's end."""
    commitments = [c.id for c in fleet.contracts if c.kind is ContractKind.COMMITMENT]
    out: dict[str, Decimal] = {}
    for contract, price, gpus, seconds in cost_repo.ended_by_contract(session, commitments):
        out[contract] = out.get(contract, Decimal(0)) + charge(price, gpus, seconds)
    return out


def _read_completions(ctx: ServerContext) -> list[Completion]:
    with ctx.db.read() as session:
        return completions(session)


def completions(session: Session, limit: int = SEED_JOBS) -> list[Completion]:
    """The last ``limit`` jobs that succeeded, as the engine would have recorded them: run time = checkpointed
    progress + the last run (from its placement to the job's end), at the job's end."""
    query = (
        select(
            JobRow.id,
            JobRow.queue_id,
            JobRow.gpus,
            JobRow.progress_s,
            JobRow.finished_at,
            RunRow.created_at,
            JobRow.submitted_by,
            JobRow.name,
        )
        .join(RunRow, (RunRow.job_id == JobRow.id) & (RunRow.attempt == JobRow.attempt))
        .where(JobRow.status == JobStatus.SUCCEEDED)
        .order_by(JobRow.id.desc())
        .limit(limit)
    )
    out: list[Completion] = []
    for row_id, queue, gpus, progress, finished, placed, user, name in session.execute(query):
        if finished is None or placed is None:
            continue
        end = engine_seconds(_utc(finished))
        run_s = float(progress or 0.0) + end - engine_seconds(_utc(placed))
        out.append(Completion(end, format_job_id(row_id), queue, gpus, run_s, user, name))
    return out


def _utc(at: datetime) -> datetime:
    """``at`` as an aware time (SQLite gives naive UTC times back)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=ENGINE_EPOCH.tzinfo)


def _terms(ctx: ServerContext, jobs: Iterable[JobState], ran: dict[int, float]) -> dict[int, JobTerms]:
    """The driver's terms of every job, by row id: kept across cycles (pruned to these jobs) while the stored job's
    columns they come from are the same (only ``progress_s`` and ``outage_stops`` change, on preemption) and so are the
    seconds it ran in runs that ended (``ran``, its attained service once × GPUs)."""
    kept = ctx.loop.terms
    fresh: dict[int, tuple[tuple[object, ...], JobTerms]] = {}
    for job in jobs:
        ran_s = ran.get(job.id, 0.0)
        inputs: tuple[object, ...] = (job.queue_id, job.gpus, job.priority_class, job.preemptible, job.submitted_at)
        inputs += (job.progress_s, ran_s, job.outage_stops)
        old = kept.get(job.id)
        fresh[job.id] = (
            old
            if old is not None and old[0] == inputs
            else (inputs, job_terms(job, ctx.loop.spec_terms[job.id], ran_s))
        )
    ctx.loop.terms = fresh
    return {i: t for i, (_, t) in fresh.items()}


def _executors(fleet: Fleet) -> dict[str, str]:
    """Cluster id → the id of the executor that runs its jobs (its own, else its provider's)."""
    return fleet.cluster_executor_ids()
