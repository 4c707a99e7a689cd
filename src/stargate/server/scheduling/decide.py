"""Scheduler loop, step 2b: bring the engine's driver up to date with the snapshot, and let it decide.

The server keeps one :class:`~stargate.engine.Driver` across cycles, as the simulator does, and tells it what
changed in the database since the last decision, in the simulator's order: jobs that ended (finished, failed,
cancelled), then the fleet (a version that only changes cluster statuses is told as outages and repairs: the jobs of
a cluster going down stop), then new jobs in submission order. A driver that no longer matches the database (a
decision that could not be written, a job requeued by the executor steps, another scheduler process deciding
meanwhile, a new policy or a fleet change beyond statuses) is rebuilt from the snapshot: running jobs are put back
where they run, pending jobs queued again.

The driver learns run times from the jobs that succeeded (see :mod:`stargate.engine.estimates`): a rebuilt driver
goes on with the run history of the one it replaces, and keeps the estimates its jobs were given; a server with no
driver yet seeds a new history from the last completed jobs in the database.
"""

from collections.abc import Callable

from stargate.domain import Fleet, JobReason
from stargate.engine import Decisions, Driver, FleetIndex, JobTerms, Policy
from stargate.engine.estimates import RunHistory
from stargate.server.scheduling.snapshot import Snapshot
from stargate.server.terms import ENGINE_EPOCH, engine_seconds
from stargate.store.repositories.jobs import JobState

Lost = list[tuple[JobState, JobReason, str, float]]
"""Held jobs that could not be put back on their cluster, with the code and detail of why (the loop requeues
them): ``cluster_removed`` when their cluster left the fleet, else ``requeued``."""


class Kept:
    """The driver kept between cycles, with the fleet version it was last told."""

    def __init__(self, driver: Driver, version: str) -> None:
        self.driver, self.version = driver, version


def decide(
    snap: Snapshot,
    policy: Policy,
    now_s: float,
    kept: Kept | None = None,
    index: Callable[[Fleet], FleetIndex] | None = None,
) -> tuple[Decisions, Lost, Kept]:
    """Decide at engine time ``now_s`` over the snapshot, with ``kept`` brought up to date or a new driver.

    ``index``: builds (or returns a kept) engine index of a fleet version. Returns the decisions, the held jobs that
    could not be put back, and the driver to keep (valid once the decisions are written).
    """
    driver = _updated(kept, snap, policy, now_s) if kept is not None else None
    lost: Lost = []
    if driver is None:
        driver, lost = _rebuilt(snap, policy, now_s, index, kept.driver if kept is not None else None)
    return driver.decide(now_s), lost, Kept(driver, snap.version)


def _updated(kept: Kept, snap: Snapshot, policy: Policy, now_s: float) -> Driver | None:
    """``kept``'s driver told what changed since it last decided; None when it cannot be (rebuild it)."""
    driver = kept.driver
    if driver.policy != policy:
        return None
    where = driver.where
    live = {j.public_id for j in snap.pending} | {j.public_id for j in snap.holding}
    succeeded = snap.succeeded
    for gone in [job_id for job_id in where if job_id not in live]:
        driver.finish(gone, now_s, completed=gone in succeeded)
    for job in snap.holding:
        if where.get(job.public_id) != (job.cluster, tuple(job.gpu_ids)):
            return None
    new: list[JobState] = []
    for job in snap.pending:
        if job.public_id not in where:
            new.append(job)
        elif where[job.public_id] is not None:
            return None
    if snap.version != kept.version and not driver.update_fleet(snap.fleet, now_s):
        return None
    for job in sorted(new, key=lambda j: (j.submitted_at, j.id)):
        driver.submit(snap.terms[job.id])
    return driver


def _rebuilt(
    snap: Snapshot,
    policy: Policy,
    now_s: float,
    index: Callable[[Fleet], FleetIndex] | None,
    previous: Driver | None = None,
) -> tuple[Driver, Lost]:
    """A new driver over the snapshot: held jobs put back in start order, pending ones queued in submission order;
    with ``previous``'s run history, estimates and spend of ended runs (told first of the jobs that ended since),
    else a history seeded, and the spend of ended runs under commitments read, from the database."""
    if previous is not None and previous.history is not None:
        live = {j.public_id for j in snap.pending} | {j.public_id for j in snap.holding}
        for ended in [job_id for job_id in previous.where if job_id not in live]:
            previous.finish(ended, now_s, completed=ended in snap.succeeded)
        history, estimates, spent = previous.history, previous.estimates(), previous.meter.closed_usd()
    else:
        history, estimates = RunHistory(), {}
        if snap.seed is not None:
            history.seed(snap.seed())
        spent = snap.spent() if snap.spent is not None else {}
    by_id = {j.public_id: j for j in snap.holding}
    running: list[tuple[JobTerms, tuple[str, tuple[int, ...]], float]] = []
    since = {j.id: _since(snap, j, now_s) for j in snap.holding}
    for job in sorted(snap.holding, key=lambda j: (since[j.id], j.id)):
        running.append((snap.terms[job.id], (job.cluster or "", tuple(job.gpu_ids)), since[job.id]))
    pending = [snap.terms[j.id] for j in sorted(snap.pending, key=lambda j: (j.submitted_at, j.id))]
    built = index(snap.fleet) if index is not None else None
    driver, lost = Driver.rebuilt(
        snap.fleet,
        policy,
        ENGINE_EPOCH,
        running,
        pending,
        now_s,
        built,
        history=history,
        estimates=estimates,
        spent_usd=spent,
    )
    clusters = {c.id for c in snap.fleet.clusters}
    requeued: Lost = []
    for gone in lost:
        job = by_id[gone.job.id]
        code = JobReason.REQUEUED if job.cluster in clusters else JobReason.CLUSTER_REMOVED
        requeued.append((job, code, gone.why, gone.progress_s))
    return driver, requeued


def _since(snap: Snapshot, job: JobState, now_s: float) -> float:
    """When a held job's current run began, engine time: its placement for this attempt (not ``started_at``, the
    first run's start, which would count the time it spent requeued as progress)."""
    at = snap.since.get(job.id) or job.started_at
    return engine_seconds(at) if at is not None else now_s


__all__ = ["ENGINE_EPOCH", "Kept", "Lost", "decide", "engine_seconds"]
