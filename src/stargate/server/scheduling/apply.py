"""Scheduler loop, step 2c: write a decision in ONE transaction (no executor call here).

Pending → placed with a run row, preemptions and requeues → pending, rejections → failed; a job stopped and started
again at the same instant (its cluster went down, it moves) is requeued and then placed in the same transaction.
Each decision is written only if its job is still where the snapshot saw it; :attr:`Applied.complete` says whether
every decision was written (if not, the scheduler rebuilds its driver from the database next cycle). The same
transaction writes why the jobs left pending wait, as the engine judged them
(:mod:`stargate.server.scheduling.waiting`); a job placed or rejected has its wait reason cleared by its move.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from stargate.domain import JobReason
from stargate.engine import Decisions, Start
from stargate.engine.waits import Wait
from stargate.server.context import ServerContext
from stargate.server.scheduling.decide import Lost
from stargate.server.scheduling.interrupted import kept_text
from stargate.server.scheduling.snapshot import Snapshot
from stargate.server.scheduling.waiting import write_waits
from stargate.store import Current, JobStatus, Move, lock_current, parse_job_id, transition_many
from stargate.store.repositories import runs as run_repo

ACTOR = "scheduler"
PRICE_QUANTUM = Decimal("0.000001")
HOLDING = (JobStatus.PLACED, JobStatus.RUNNING)
NOT_WAITING = {"wait_reason": None, "wait_detail": None}
"""What a job leaving pending writes of its wait reason."""


class LostLeadershipError(RuntimeError):
    """The scheduler lock was lost during the cycle: its decision transaction was rolled back, nothing written."""


@dataclass
class Applied:
    """What the decision transaction actually wrote (decisions on jobs that changed meanwhile are dropped)."""

    placed: int = 0
    preempted: int = 0
    rejected: int = 0
    requeued: int = 0
    complete: bool = True
    """False when some decision was dropped."""
    waiting_for_down: int = 0
    """Pending jobs that wait only for clusters that are down (their wait detail says which, and since when)."""


def apply_decisions(
    ctx: ServerContext,
    snap: Snapshot,
    result: Decisions,
    lost: Lost,
    now: datetime,
    waits: Mapping[str, Wait] | None = None,
) -> Applied:
    """Write the decisions in one transaction, each only if its job is still where the snapshot saw it, and the
    engine's ``waits`` of the jobs left pending (None: the wait reasons are left as they are).

    Bulk statements: the jobs are read and locked with one query, the status changes go through
    :func:`~stargate.store.transition_many` (legal edges checked, one event row each; a second batch places the
    jobs the first requeued), the run rows of the placed jobs are inserted with one multi-row statement. Before
    the commit the transaction checks that this process still holds the scheduler lock (``ctx.loop.fence``) and
    raises :class:`LostLeadershipError`, writing nothing, when it does not.
    """
    seen = {j.id: (JobStatus(j.status), j.attempt) for j in (*snap.pending, *snap.holding)}
    ids = _row_ids([s.job_id for s in result.starts], [p.job_id for p in result.preemptions])
    ids += _row_ids([r.job_id for r in result.rejections], [j.public_id for j, _, _, _ in lost])
    out = Applied()
    with ctx.db.write() as session:
        current = lock_current(session, ids)
        requeued: dict[int, Current] = {}
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

        def back(cur: Current, why: JobReason, detail: str = "", values: dict[str, Any] | None = None) -> Move:
            requeued[cur.id] = Current(cur.id, JobStatus.PENDING, cur.attempt + 1, cur.started_at)
            return Move(cur, JobStatus.PENDING, why, detail, values or {})

        first: list[Move] = []
        for job, code, why, kept in lost:  # back to its queue with its progress up to its last checkpoint
            if (cur := unchanged(job.public_id, *HOLDING)) is not None:
                first.append(back(cur, code, why, {"progress_s": kept}))
                out.requeued += 1
        where = {j.public_id: j.cluster for j in snap.holding} if result.preemptions else {}
        stops = {p.job_id: p for p in result.preemptions}
        for p in result.preemptions:  # the engine's codes are JobReason values (tests/unit/domain/test_reasons.py)
            if (cur := unchanged(p.job_id, *HOLDING)) is not None:
                code = JobReason(p.reason)
                detail = _preemption_detail(snap, code, where.get(p.job_id), p.progress_s)
                first.append(back(cur, code, detail, {"progress_s": p.progress_s, "outage_stops": p.outage_stops}))
                out.preempted += 1
        second: list[Move] = []
        for r in result.rejections:
            if r.job_id in stops:  # stopped by an outage, and fails (outage_limit): once back in pending
                if (cur := requeued.pop(parse_job_id(r.job_id) or -1, None)) is not None:
                    limit = ctx.policy_for(snap.fleet).max_outage_stops
                    detail = _outage_limit_detail(stops[r.job_id].outage_stops, where.get(r.job_id), limit)
                    second.append(Move(cur, JobStatus.FAILED, JobReason(r.reason), detail, dict(NOT_WAITING)))
                    out.rejected += 1
            elif (cur := unchanged(r.job_id, JobStatus.PENDING)) is not None:
                detail = _rejection_detail(snap, cur.id, r.reason)
                first.append(Move(cur, JobStatus.FAILED, JobReason(r.reason), detail, dict(NOT_WAITING)))
                out.rejected += 1
        runs: list[dict[str, Any]] = []
        costs = _cost_terms(snap) if result.starts else {}
        for s in result.starts:
            row_id = parse_job_id(s.job_id) or -1
            cur = requeued.pop(row_id, None) or unchanged(s.job_id, JobStatus.PENDING)
            if cur is not None:
                second.append(_placement(cur, s))
                executor = snap.executor_of_cluster.get(s.cluster_id, "local")
                runs.append(
                    {"job_id": cur.id, "attempt": cur.attempt, "executor": executor, "cluster": s.cluster_id}
                    | {"created_at": now, "gpus": len(s.gpu_ids), "contract": s.contract_id}
                    | {"price_usd_per_gpu_hour": _price(s.price_usd_per_gpu_hour)}
                    | costs.get(s.cluster_id, {})
                )
                out.placed += 1
        transition_many(session, first, ACTOR, now)
        transition_many(session, second, ACTOR, now)
        run_repo.add_many(session, runs)
        if waits is not None:
            out.waiting_for_down = write_waits(session, snap, waits, _pending_after(snap, result, lost))
        if ctx.loop.fence is not None and not ctx.loop.fence(session):  # lost the lock mid-cycle: another may lead
            raise LostLeadershipError(
                "the scheduler lock was lost during this cycle; its decisions were rolled back (another server may "
                "lead now)"
            )
    decided = len(result.starts) + len(result.preemptions) + len(result.rejections) + len(lost)
    out.complete = out.placed + out.preempted + out.rejected + out.requeued == decided
    return out


def _pending_after(snap: Snapshot, result: Decisions, lost: Lost) -> list[tuple[int, str]]:
    """The (row id, public id) of the jobs pending once the decisions are written: those pending before and those
    stopped or requeued, less those started or rejected."""
    gone = {s.job_id for s in result.starts} | {r.job_id for r in result.rejections}
    stopped = [p.job_id for p in result.preemptions] + [job.public_id for job, _, _, _ in lost]
    out = [(j.id, public) for j in snap.pending if (public := j.public_id) not in gone]
    out += [(row_id, i) for i in stopped if i not in gone and (row_id := parse_job_id(i)) is not None]
    return out


def _preemption_detail(snap: Snapshot, code: JobReason, cluster: str | None, progress_s: float) -> str:
    """The detail of a preemption: for ``cluster_down``, which cluster went down and why (what its executor's health
    checks saw, or its status in the fleet) and the progress kept (or the restart still owed, as ``stargate job``
    says it); empty otherwise."""
    if code != JobReason.CLUSTER_DOWN or cluster is None:
        return ""
    why = snap.down_reasons.get(cluster) or "marked down in the fleet"
    return f"cluster {cluster} down: {why}; resumes elsewhere from its last checkpoint ({kept_text(progress_s)})"


def _outage_limit_detail(stops: int, cluster: str | None, limit: int) -> str:
    """The detail of an ``outage_limit`` failure: how many runs in a row outages stopped, none getting it further."""
    on = f" (the last on {cluster})" if cluster else ""
    return (
        f"outages stopped its last {stops} runs in a row{on}, none getting it past its last checkpoint, and the "
        f"policy allows {limit} (max_outage_stops): it may be what takes its engine down; see its runs' logs"
    )


def _rejection_detail(snap: Snapshot, row_id: int, reason: str) -> str:
    """The detail of a rejection: for ``no_allowed_cluster``, what of the job's GPU models, providers and regions
    matched nothing in the fleet in force (e.g. after a fleet change removed a provider); empty otherwise."""
    terms = snap.terms.get(row_id)
    if reason != JobReason.NO_ALLOWED_CLUSTER or terms is None:
        return ""
    fleet = snap.fleet
    known = {
        "gpu_models": {c.gpu_model for c in fleet.clusters},
        "allowed_providers": {p.id for p in fleet.providers},
        "allowed_regions": {s.region for s in fleet.sites},
    }
    asked = {
        "gpu_models": terms.gpu_models,
        "allowed_providers": terms.allowed_providers,
        "allowed_regions": terms.allowed_regions,
    }
    unknown = [
        f"{name} {_few([v for v in asked[name] if v not in known[name]])} (not in the fleet)"
        for name in asked
        if any(v not in known[name] for v in asked[name])
    ]
    if unknown:
        return "; ".join(unknown)
    given = [f"{name} {_few(list(values))}" for name, values in asked.items() if values]
    if terms.needs:  # a command alone, or an image alone: only some executors run it
        given.append(f"an executor that runs {' and '.join(sorted(terms.needs))}")
    return "no cluster matches all of " + "; ".join(given) if given else ""


def _few(values: list[str], most: int = 5) -> str:
    """Up to ``most`` values for a message, e.g. ``a, b, … 3 more``."""
    more = f", … {len(values) - most} more" if len(values) > most else ""
    return ", ".join(values[:most]) + more


def _cost_terms(snap: Snapshot) -> dict[str, dict[str, Any]]:
    """What a run records of its cluster for the costs (list price, provider, GPU model, region), by cluster id."""
    fleet = snap.fleet
    sites = {s.id: s for s in fleet.sites}
    out: dict[str, dict[str, Any]] = {}
    for c in fleet.clusters:
        site = sites.get(c.site)
        out[c.id] = {
            "list_price_usd_per_gpu_hour": _price(c.price_per_gpu_hour_usd),
            "provider": site.provider if site is not None else None,
            "gpu_model": c.gpu_model,
            "region": site.region if site is not None else None,
        }
    return out


def _price(value: float | Decimal | None) -> Decimal | None:
    """A price as stored: a Decimal with 6 decimal places (None stays None)."""
    return None if value is None else Decimal(str(value)).quantize(PRICE_QUANTUM)


def _row_ids(*groups: Iterable[str]) -> list[int]:
    return [i for g in groups for pid in g if (i := parse_job_id(pid)) is not None]


def _placement(cur: Current, start: Start) -> Move:
    """The move of a pending job onto its cluster and GPUs, with the price and contract it runs under."""
    values = {
        "cluster": start.cluster_id,
        "gpu_ids": list(start.gpu_ids),
        "price_usd_per_gpu_hour": _price(start.price_usd_per_gpu_hour),
        "contract_id": start.contract_id,
        **NOT_WAITING,
    }
    detail = f"on {start.cluster_id} ({len(start.gpu_ids)} GPU{'' if len(start.gpu_ids) == 1 else 's'})"
    return Move(cur, JobStatus.PLACED, JobReason.PLACED, detail, values)
