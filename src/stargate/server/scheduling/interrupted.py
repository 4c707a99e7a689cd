"""Scheduler loop, step 1b: the running jobs whose runs the infrastructure ended (interrupted: a node failed, the
engine preempted or requeued the run) wait again from their last checkpoint, or fail as lost once interrupted too
often — the engine's rule (:mod:`stargate.engine.interruptions`), applied inside the transaction that ends the runs.
A node failure is an outage of part of a cluster that its health checks may never see (shorter than
``down_after_s``, or one node of many): the job is moved as if its cluster had gone down."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from stargate.domain import JobReason
from stargate.engine.interruptions import after_interruption, gained
from stargate.engine.policies import Policy
from stargate.executors import RunStatus
from stargate.server.terms import SpecTerms
from stargate.store import Current, JobStatus, Move
from stargate.store.repositories import runs as run_repo
from stargate.store.repositories.runs import LiveRun


def interrupted_moves(
    session: Session,
    policy: Policy,
    runs: Sequence[tuple[Current, LiveRun, RunStatus]],
    terms: dict[int, SpecTerms],
    now: datetime,
) -> list[Move]:
    """The move of each locked running job (``Current``) whose run was interrupted: back to pending with the
    progress it keeps (``progress_s``), or failed as lost past ``policy.max_interruptions``."""
    facts = run_repo.interruption_facts(session, [cur.id for cur, _, _ in runs], JobReason.INTERRUPTED.value)
    moves: list[Move] = []
    for cur, run, status in runs:
        progress_s, placed_at, before = facts.get(cur.id, (0.0, now, 0))
        spec = terms.get(cur.id)
        interval = spec.checkpoint_interval_s if spec is not None else None
        fate = after_interruption(policy, progress_s, (now - placed_at).total_seconds(), interval, before)
        why = status.reason or "the engine ended the run"
        if fate.requeue:
            detail = f"on {run.cluster}: {why}; resumes from its last checkpoint ({kept_text(fate.progress_s)})"
            values: dict[str, object] = {"progress_s": fate.progress_s}
            if gained(progress_s, fate.progress_s):  # the run left it further on: earlier outage stops count no more
                values["outage_stops"] = 0
            moves.append(Move(cur, JobStatus.PENDING, JobReason.INTERRUPTED, detail, values))
        else:
            detail = (
                f"interrupted {fate.interruptions} times (the policy allows {policy.max_interruptions}); "
                f"last on {run.cluster}: {why}"
            )
            moves.append(Move(cur, JobStatus.FAILED, JobReason.LOST, detail))
    return moves


def kept_text(progress_s: float) -> str:
    """The progress a stopped job keeps, as a detail says it: ``120 s kept``, or for a restart still owed
    ``no progress kept; 60 s to run again first``."""
    if round(progress_s) < 0:
        return f"no progress kept; {-progress_s:,.0f} s to run again first"
    return f"{max(progress_s, 0.0):,.0f} s kept"
