"""Scheduler loop, step 2: snapshot the jobs and the fleet, let the engine decide, write every decision in ONE
transaction (pending → placed with a run row, preemptions → pending, rejections → failed). No executor call here."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stargate.domain import Fleet
from stargate.engine import CycleResult, FleetIndex, JobRequest, Scheduler, Start, get_policy
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError
from stargate.store import Current, JobStatus, Move, lock_current, parse_job_id, transition_many
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
    command: str = ""
    """What the executor runs (kept too, so handing placed jobs to executors reads no spec again)."""
    environment: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, spec: dict[str, Any]) -> "SpecTerms":
        """The terms of a stored spec."""
        return cls(
            spec.get("estimated_duration_s"),
            spec.get("checkpoint_interval_s"),
            tuple(spec.get("allowed_providers") or ()),
            tuple(spec.get("allowed_regions") or ()),
            spec.get("command") or "",
            tuple((spec.get("environment") or {}).items()),
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
    requests = _requests(ctx, (*pending, *holding))
    return Snapshot(fleet, version, pending, holding, requests, executor_of_cluster=_executors(fleet))


def _requests(ctx: ServerContext, jobs: Iterable[JobState]) -> dict[int, JobRequest]:
    """The engine's request of every job, by row id: kept across cycles (pruned to these jobs) while its inputs,
    i.e. the stored job's columns, are the same (only ``progress_s`` changes, on preemption)."""
    kept = ctx.loop.requests
    fresh: dict[int, tuple[JobState, JobRequest]] = {}
    for job in jobs:
        old = kept.get(job.id)
        same = old is not None and _request_inputs(old[0]) == _request_inputs(job)
        fresh[job.id] = old if same and old is not None else (job, request_of(job, ctx.loop.spec_terms[job.id]))
    ctx.loop.requests = fresh
    return {i: r for i, (_, r) in fresh.items()}


def _request_inputs(job: JobState) -> tuple[object, ...]:
    return (job.queue_id, job.gpus, job.gpu_models, job.priority, job.preemptible, job.submitted_at, job.progress_s)


def _executors(fleet: Fleet) -> dict[str, str]:
    provider_of_site = {s.id: s.provider for s in fleet.sites}
    kind = {p.id: p.executor.value for p in fleet.providers}
    return {c.id: kind.get(provider_of_site.get(c.site, ""), "local") for c in fleet.clusters}


def decide(
    snap: Snapshot, now: datetime, index: FleetIndex | None = None
) -> tuple[CycleResult, list[tuple[JobState, str]]]:
    """Run one engine cycle over the snapshot; also the held jobs that could not be restored (cluster gone).

    ``index``: the snapshot fleet's engine index when the caller keeps one across cycles (it is read-only).
    """
    index = index or FleetIndex.from_fleet(snap.fleet, epoch=ENGINE_EPOCH)
    sched = Scheduler(index, get_policy("stargate"))
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
    return settle(sched, engine_seconds(now)), lost


def settle(sched: Scheduler, now_s: float) -> CycleResult:
    """Cycle at ``now_s`` until no queue has more startable jobs than the scan depth, merged into one result.

    One server cycle then places everything that can start now (one snapshot, one transaction). A job started by
    an earlier round and preempted by a later one at the same instant is neither started nor preempted: it stays
    pending, as it is in the engine.
    """
    res = sched.cycle(now_s)
    while res.more:
        nxt = sched.cycle(now_s)
        stopped = {p.job_id for p in nxt.preemptions}
        started = {s.job_id for s in res.starts}
        res.starts = [s for s in res.starts if s.job_id not in stopped] + nxt.starts
        res.preemptions += [p for p in nxt.preemptions if p.job_id not in started]
        res.rejections += nxt.rejections
        res.more, res.next_wakeup_s = nxt.more, nxt.next_wakeup_s
    return res


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
    """Write the cycle's decisions in one transaction, each only if its job is still where the snapshot saw it.

    Bulk statements: the jobs are read and locked with one query, every status change goes through one
    :func:`~stargate.store.transition_many` (legal edges checked, one event row each), the run rows of the placed
    jobs are inserted with one multi-row statement.
    """
    seen = {j.id: (JobStatus(j.status), j.attempt) for j in (*snap.pending, *snap.holding)}
    ids = _row_ids([s.job_id for s in result.starts], [p.job_id for p in result.preemptions])
    ids += _row_ids([r.job_id for r in result.rejections], [j.public_id for j, _ in lost])
    out = Applied()
    with ctx.db.write() as session:
        current = lock_current(session, ids)
        taken: set[int] = set()

        def unchanged(public_id: str, *statuses: JobStatus) -> Current | None:
            """This job as locked now if it is still as the snapshot saw it, in one of ``statuses``, and not yet
            moved by this batch."""
            cur = current.get(parse_job_id(public_id) or -1)
            if cur is None or cur.id in taken or (cur.status, cur.attempt) != seen.get(cur.id):
                return None
            if cur.status not in statuses:
                return None
            taken.add(cur.id)
            return cur

        moves: list[Move] = []
        runs: list[dict[str, Any]] = []
        holding = (JobStatus.PLACED, JobStatus.RUNNING)
        for job, why in lost:
            if (cur := unchanged(job.public_id, *holding)) is not None:
                moves.append(Move(cur, JobStatus.PENDING, f"requeued: {why}"))
                out.requeued += 1
        for p in result.preemptions:
            if (cur := unchanged(p.job_id, *holding)) is not None:
                values = {"progress_s": p.progress_s}
                moves.append(Move(cur, JobStatus.PENDING, f"preempted: {p.reason}", values))
                out.preempted += 1
        for r in result.rejections:
            if (cur := unchanged(r.job_id, JobStatus.PENDING)) is not None:
                moves.append(Move(cur, JobStatus.FAILED, f"rejected: {r.reason}"))
                out.rejected += 1
        for s in result.starts:
            if (cur := unchanged(s.job_id, JobStatus.PENDING)) is not None:
                moves.append(_placement(cur, s))
                executor = snap.executor_of_cluster.get(s.cluster_id, "local")
                runs.append(
                    {"job_id": cur.id, "attempt": cur.attempt, "executor": executor, "cluster": s.cluster_id}
                    | {"created_at": now}
                )
                out.placed += 1
        transition_many(session, moves, ACTOR, now)
        run_repo.add_many(session, runs)
    return out


def _row_ids(*groups: Iterable[str]) -> list[int]:
    return [i for g in groups for pid in g if (i := parse_job_id(pid)) is not None]


def _placement(cur: Current, start: Start) -> Move:
    """The move of a pending job onto its cluster and GPUs, with the price and contract it runs under."""
    values = {
        "cluster": start.cluster_id,
        "gpu_ids": list(start.gpu_ids),
        "price_usd_per_gpu_hour": Decimal(str(start.price_usd_per_gpu_hour)).quantize(PRICE_QUANTUM),
        "contract_id": start.contract_id,
    }
    reason = f"placed on {start.cluster_id} ({len(start.gpu_ids)} GPUs)"
    return Move(cur, JobStatus.PLACED, reason, values)
