"""Scheduler loop, step 3: stop the runs whose job moved on (orphans), and reconcile the runs found over.

A run whose job was cancelled, failed, preempted or requeued (its cluster went down) is an orphan: its executor is
asked to stop it, and it is marked ended once the executor reports it over. While the engine does not answer (its
cluster is down), each call that fails is counted and tried again next cycle; nothing else waits on it. When an
orphan is found to have **succeeded** while its job is not final (requeued, perhaps placed or running elsewhere),
the job succeeds from that run and its newer attempt becomes an orphan in turn: a job never runs to completion
twice. So for a while after its engine answers again, an orphan whose job is not final is only watched, not stopped
(it may yet be found succeeded); one whose job is final (a user cancelled it meanwhile) is stopped at once.
Executors are called outside transactions; what was learned is written in one transaction.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from stargate.domain import JobReason
from stargate.executors import Executor, RunHandle, RunState, RunStatus
from stargate.server.context import ServerContext
from stargate.server.scheduling.execute import ACTOR, Call, Executed, _bind, _executor, _not_in_fleet, call_all
from stargate.store import FINAL_STATUSES, JobRow, JobStatus, Move, format_job_id, lock_current, transition_many
from stargate.store.repositories import jobs as job_repo
from stargate.store.repositories import runs as run_repo
from stargate.store.repositories.runs import LiveRun

log = logging.getLogger("stargate.scheduler")

_GONE = "its executor '{}' is no longer in the fleet: not stopped by Stargate (stop it on that engine)"

STOPPING = "stopping: "
"""How a run's note begins once the scheduler asked its executor to stop it (it is not asked again)."""


def reap_orphans(
    ctx: ServerContext,
    now: datetime,
    out: Executed,
    skip: frozenset[str] = frozenset(),
    watch_only: frozenset[str] = frozenset(),
) -> None:
    """Stop runs whose job moved on (cancelled, failed, preempted, requeued); mark each ended once its executor
    reports it over, and copy a cancelled job's exit code from its run. The runs of executors in ``skip`` are left
    alone (their engine does not answer). Those of executors in ``watch_only`` (just back from an outage, see
    :func:`~stargate.server.scheduling.health.settling`) are polled but not yet stopped while their job is live (it
    may still complete from that run); one whose job is final (cancelled, failed, succeeded) is stopped at once.

    A run without a handle (a crash came between the decision and the executor's answer, or every start failed)
    is looked up with :meth:`Executor.find`, which never starts one: a run found is stopped like any other; with
    none found the attempt is withdrawn (the executor makes sure it cannot start later) and the run ends at once.
    """
    with ctx.db.read() as session:
        orphans = [r for r in run_repo.orphans(session) if r.executor not in skip]
        watching = _live_jobs(session, sorted({r.job_id for r in orphans if r.executor in watch_only}))
    if not orphans:
        return
    built = {kind: _executor(ctx, kind, out) for kind in {run.executor for run in orphans}}
    usable = [(run, ex) for run in orphans if (ex := built[run.executor][0]) is not None]
    # Runs of an executor the fleet no longer declares cannot be stopped: they end here, saying so (once).
    withdrawn_gone = [run for run in orphans if _not_in_fleet(built[run.executor][1])]
    if withdrawn_gone:  # make sure of it with the fleet in force read now (this process may not have read it yet)
        with ctx.db.read() as session:
            ctx.fleet.get(session)
        withdrawn_gone = [r for r in withdrawn_gone if _not_in_fleet(_executor(ctx, r.executor, Executed())[1])]
    unkeyed = [(run, ex) for run, ex in usable if run.handle_key is None]
    finds = [Call(r.executor, "find", _find(ex, r), r.subject) for r, ex in unkeyed]
    found: list[tuple[int, int, str]] = []
    withdrawn: list[LiveRun] = []
    keyed = [(run, ex, run.handle_key) for run, ex in usable if run.handle_key is not None]
    for (run, ex), (ok, handle) in zip(unkeyed, call_all(ctx, finds, out), strict=True):
        if ok and handle is None:
            withdrawn.append(run)
        elif ok and isinstance(handle, RunHandle):
            found.append((run.job_id, run.attempt, handle.key))
            keyed.append((run, ex, handle.key))
    polls = [Call(r.executor, "poll", _bind(ex.poll, RunHandle(r.executor, k)), r.subject) for r, ex, k in keyed]
    over: list[tuple[LiveRun, RunStatus]] = []
    going: list[tuple[LiveRun, Executor, str]] = []
    for (run, ex, key), (ok, status) in zip(keyed, call_all(ctx, polls, out), strict=True):
        if ok and status.state.is_final():
            over.append((run, status))
        elif ok and not run.note.startswith(STOPPING) and run.job_id not in watching:
            going.append((run, ex, key))
    cancels = [Call(r.executor, "cancel", _bind(ex.cancel, RunHandle(r.executor, k)), r.subject) for r, ex, k in going]
    asked = [run for (run, _, _), (ok, _) in zip(going, call_all(ctx, cancels, out), strict=True) if ok]
    over += [(run, RunStatus(RunState.LOST, reason=_GONE.format(run.executor))) for run in withdrawn_gone]
    if not (found or withdrawn or over or asked):
        return
    _record_reaped(ctx, found, withdrawn, over, asked, now)
    out.reaped += len(withdrawn) + len(asked)


def _live_jobs(session: Session, job_ids: Sequence[int]) -> set[int]:
    """Those of these jobs that are not final (pending, placed, running): an orphaned run of theirs may still
    complete them (see :func:`_reconciled`), so it is worth watching; a final job's run is not."""
    live: set[int] = set()
    for start in range(0, len(job_ids), job_repo.IN_CHUNK):
        chunk = job_ids[start : start + job_repo.IN_CHUNK]
        query = select(JobRow.id).where(JobRow.id.in_(chunk), JobRow.status.not_in(sorted(FINAL_STATUSES)))
        live.update(session.scalars(query))
    return live


def _reconciled(session: Session, over: list[tuple[LiveRun, RunStatus]]) -> list[Move]:
    """The jobs that succeed from an orphaned run found succeeded (exit code 0) while the job is not final, at a
    later attempt (it was requeued when its cluster was taken out of service, and may run again elsewhere): the job
    succeeds from that run, and its newer attempt's run, now an orphan, is stopped by the next :func:`reap_orphans`.
    So a job never runs to completion twice. (Read inside the writing transaction, the jobs locked.)"""
    won = {r.job_id: (r, s) for r, s in over if s.state is RunState.SUCCEEDED and s.exit_code in (0, None)}
    if not won:
        return []
    current = lock_current(session, list(won))
    moves: list[Move] = []
    for job_id, (run, status) in sorted(won.items()):
        cur = current.get(job_id)
        if cur is None or cur.status.is_final() or cur.attempt <= run.attempt:
            continue
        detail = (
            f"attempt {run.attempt} on {run.cluster} exited with code {status.exit_code or 0} after the job had moved "
            f"on (attempt {cur.attempt}, {cur.status.value}, is stopped)"
        )
        moves.append(Move(cur, JobStatus.SUCCEEDED, JobReason.SUCCEEDED, detail, {"exit_code": status.exit_code or 0}))
    return moves


def _find(executor: Executor, run: LiveRun) -> Callable[[], RunHandle | None]:
    return lambda: executor.find(format_job_id(run.job_id), run.attempt)


def _record_reaped(
    ctx: ServerContext,
    found: list[tuple[int, int, str]],
    withdrawn: list[LiveRun],
    over: list[tuple[LiveRun, RunStatus]],
    asked: list[LiveRun],
    now: datetime,
) -> None:
    """Write what :func:`reap_orphans` learned in one transaction; a job whose earlier run is found succeeded while
    the job is not final succeeds from that run (see :func:`_reconciled`)."""
    with ctx.db.write() as session:
        run_repo.set_handles(session, found, now)
        gone = [(r.job_id, r.attempt, None, f"withdrawn before it started: {r.subject} moved on") for r in withdrawn]
        ended = [
            (r.job_id, r.attempt, s.exit_code, f"stopped: {s.state.value}: {s.reason}".strip(": ")) for r, s in over
        ]
        run_repo.end_many(session, gone + ended, now)
        run_repo.set_notes(session, [(r.job_id, r.attempt, f"{STOPPING}{r.subject} moved on") for r in asked])
        codes = [(r.job_id, r.attempt, s.exit_code) for r, s in over if s.exit_code is not None]
        run_repo.record_cancelled_exit_codes(session, codes)
        moves = _reconciled(session, over)
        transition_many(session, moves, ACTOR, now)
    for move in moves:
        ctx.metrics.finished.labels(status=move.to.value).inc()
        log.warning("%s attempt %d: succeeded from an earlier run: %s", move.job.public_id, move.job.attempt, move.text)
    for run in withdrawn:
        log.info("%s: withdrawn before it started (its job moved on)", run.subject)
    for run in asked:
        log.info("%s: asked the %s executor to stop it (its job moved on)", run.subject, run.executor)
    for run, status in over:
        log.info("%s: stopped (%s, exit code %s)", run.subject, status.state.value, status.exit_code)
