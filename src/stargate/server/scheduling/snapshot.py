"""Scheduler loop, step 2a: read the fleet in force and every live job in one read transaction.

Times cross into the engine as float seconds since :data:`ENGINE_EPOCH`; a job's spec is parsed once (specs never
change) into the :class:`SpecTerms` the engine and the executors need.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from stargate.domain import Fleet
from stargate.engine import JobTerms
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError
from stargate.server.terms import SpecTerms, job_terms
from stargate.store import JobStatus
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
        since = run_repo.placed_since(session) if holding else {}
        cache = ctx.loop.spec_terms
        missing = [j.id for j in (*pending, *holding) if j.id not in cache]
        cache.update({i: SpecTerms.of(spec) for i, spec in job_repo.specs(session, missing).items()})
    live = {j.id for j in (*pending, *holding)}
    for gone in [i for i in cache if i not in live]:
        del cache[gone]
    terms = _terms(ctx, (*pending, *holding))
    return Snapshot(fleet, version, pending, holding, terms, since, executor_of_cluster=_executors(fleet))


def _terms(ctx: ServerContext, jobs: Iterable[JobState]) -> dict[int, JobTerms]:
    """The driver's terms of every job, by row id: kept across cycles (pruned to these jobs) while the stored job's
    columns they come from are the same (only ``progress_s`` changes, on preemption)."""
    kept = ctx.loop.terms
    fresh: dict[int, tuple[tuple[object, ...], JobTerms]] = {}
    for job in jobs:
        inputs = (job.queue_id, job.gpus, job.priority_class, job.preemptible, job.submitted_at, job.progress_s)
        old = kept.get(job.id)
        fresh[job.id] = (
            old if old is not None and old[0] == inputs else (inputs, job_terms(job, ctx.loop.spec_terms[job.id]))
        )
    ctx.loop.terms = fresh
    return {i: t for i, (_, t) in fresh.items()}


def _executors(fleet: Fleet) -> dict[str, str]:
    provider_of_site = {s.id: s.provider for s in fleet.sites}
    kind = {p.id: p.executor.value for p in fleet.providers}
    return {c.id: kind.get(provider_of_site.get(c.site, ""), "local") for c in fleet.clusters}
