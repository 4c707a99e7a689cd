"""Scheduler loop, steps 1, 3 and 4: poll running jobs, hand placed jobs to executors, stop orphaned runs.

Executors are called only outside transactions. Each step reads in one short transaction, calls the executors,
then writes what it learned in one short transaction that re-checks every job (it may have changed meanwhile).
Submitting is idempotent per (job id, attempt), so a placed job left by a crash is submitted again safely.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

from stargate.executors import Executor, RunHandle, RunRequest, RunState, RunStatus, UnknownExecutorError
from stargate.server.context import ServerContext
from stargate.store import JobRow, JobStatus, RunRow, format_job_id, transition
from stargate.store.repositories import jobs as job_repo
from stargate.store.repositories import runs as run_repo

log = logging.getLogger("stargate.scheduler")
ACTOR = "scheduler"
T = TypeVar("T")


@dataclass
class Executed:
    """What the executor steps of one cycle did."""

    started: int = 0
    finished: int = 0
    reaped: int = 0
    errors: int = 0


def _call(ctx: ServerContext, kind: str, operation: str, fn: Callable[[], T], out: Executed) -> tuple[bool, T | None]:
    """Run one executor call: (True, result), or (False, None) when it raised (logged, counted, retried later)."""
    try:
        return True, fn()
    except Exception as exc:
        out.errors += 1
        ctx.metrics.executor_errors.labels(executor=kind, operation=operation).inc()
        log.warning("executor %s %s failed: %s: %s", kind, operation, type(exc).__name__, exc)
        return False, None


def _executor(ctx: ServerContext, kind: str, out: Executed) -> tuple[Executor | None, str]:
    """The executor of ``kind``, or None and why when none is available (counted as an executor error)."""
    try:
        return ctx.executor(kind), ""
    except UnknownExecutorError as exc:
        out.errors += 1
        ctx.metrics.executor_errors.labels(executor=kind, operation="build").inc()
        return None, str(exc)


def request_for(job: JobRow, attempt: int, gpu_ids: list[int], cluster: str) -> RunRequest:
    """What the executor needs to start one attempt of ``job``."""
    spec = job.spec
    return RunRequest(
        job_id=job.public_id,
        attempt=attempt,
        command=spec.get("command") or "",
        cluster=cluster,
        gpu_ids=tuple(gpu_ids),
        environment=dict(spec.get("environment") or {}),
    )


def submit_placed(ctx: ServerContext, now: datetime, out: Executed) -> None:
    """Hand every placed job to its executor, then record the handles and move the jobs to running."""
    with ctx.db.read() as session:
        placed = job_repo.with_status(session, [JobStatus.PLACED])
        current = run_repo.current_for(session, placed)
    work = [(job, current[job.id]) for job in placed if job.id in current]
    handles: list[tuple[int, int, str]] = []
    unavailable: list[tuple[int, int, str]] = []
    for job, run in work:
        executor, why = _executor(ctx, run.executor, out)
        if executor is None:
            unavailable.append((job.id, run.attempt, why))
            continue
        request = request_for(job, run.attempt, list(job.gpu_ids), run.cluster)
        _, handle = _call(ctx, run.executor, "submit", partial(executor.submit, request), out)
        if handle is not None:
            handles.append((job.id, run.attempt, handle.key))
    if handles:
        _record_started(ctx, handles, now, out)
    if unavailable:
        _fail_unavailable(ctx, unavailable, now)


def _fail_unavailable(ctx: ServerContext, unavailable: list[tuple[int, int, str]], now: datetime) -> None:
    """Placed jobs whose executor does not exist here cannot ever start: they fail with the reason."""
    with ctx.db.write() as session:
        rows = job_repo.get_many(session, [u[0] for u in unavailable], for_update=True)
        for job_id, attempt, why in unavailable:
            row, stored = rows.get(job_id), run_repo.get(session, job_id, attempt)
            if stored is not None and not stored.ended:
                run_repo.mark_ended(stored, now, None, why)
            if row is not None and row.status == JobStatus.PLACED and row.attempt == attempt:
                transition(session, row, JobStatus.FAILED, why, ACTOR, now)


def _record_started(ctx: ServerContext, handles: list[tuple[int, int, str]], now: datetime, out: Executed) -> None:
    """Store the run handles and move the jobs that are still placed to running, in one transaction."""
    with ctx.db.write() as session:
        rows = job_repo.get_many(session, [h[0] for h in handles], for_update=True)
        for job_id, attempt, key in handles:
            stored = run_repo.get(session, job_id, attempt)
            if stored is not None and stored.handle_key is None:
                stored.handle_key = key
            row = rows.get(job_id)
            if row is not None and row.status == JobStatus.PLACED and row.attempt == attempt:
                transition(session, row, JobStatus.RUNNING, f"running on {row.cluster}", ACTOR, now)
                out.started += 1


def poll_running(ctx: ServerContext, now: datetime, out: Executed) -> None:
    """Ask executors about running jobs; record the ones that ended (succeeded, failed, cancelled, lost)."""
    with ctx.db.read() as session:
        running = job_repo.with_status(session, [JobStatus.RUNNING])
        current = run_repo.current_for(session, running)
    work = [(j.id, j.attempt, current[j.id]) for j in running if j.id in current and current[j.id].handle_key]
    ended: list[tuple[int, int, RunStatus]] = []
    for job_id, attempt, run in work:
        executor, _ = _executor(ctx, run.executor, out)
        if executor is None:
            continue
        handle = RunHandle(executor=run.executor, key=run.handle_key or "")
        _, status = _call(ctx, run.executor, "poll", partial(executor.poll, handle), out)
        if status is not None and status.state.is_final():
            ended.append((job_id, attempt, status))
    if not ended:
        return
    with ctx.db.write() as session:
        rows = job_repo.get_many(session, [e[0] for e in ended], for_update=True)
        for job_id, attempt, status in ended:
            job, stored = rows.get(job_id), run_repo.get(session, job_id, attempt)
            if stored is not None and not stored.ended:
                run_repo.mark_ended(stored, now, status.exit_code, f"{status.state.value}: {status.reason}".strip(": "))
            if job is not None and job.status == JobStatus.RUNNING and job.attempt == attempt:
                to, why = final_status(status)
                job.exit_code = status.exit_code
                transition(session, job, to, why, ACTOR, now)
                ctx.metrics.finished.labels(status=job.status).inc()
                out.finished += 1


def final_status(status: RunStatus) -> tuple[JobStatus, str]:
    """The job status and reason for a run that ended: a lost run fails (with the executor's reason)."""
    detail = f": {status.reason}" if status.reason else ""
    if status.state is RunState.SUCCEEDED:
        return JobStatus.SUCCEEDED, f"exited with code {status.exit_code}"
    if status.state is RunState.CANCELLED:
        return JobStatus.CANCELLED, f"run cancelled outside Stargate{detail}"
    if status.state is RunState.LOST:
        return JobStatus.FAILED, f"run lost{detail}"
    if status.exit_code is not None:
        return JobStatus.FAILED, f"exited with code {status.exit_code}"
    return JobStatus.FAILED, f"failed{detail}"


def reap_orphans(ctx: ServerContext, now: datetime, out: Executed) -> None:
    """Stop runs whose job moved on (cancelled, preempted, requeued) and mark them ended.

    A run without a handle (a crash came between the decision and the executor's answer) is first submitted again
    (idempotent: it returns the run if one exists) so it can be cancelled; otherwise it could run unnoticed.
    """
    with ctx.db.read() as session:
        runs = run_repo.active(session)
        jobs = job_repo.get_many(session, [r.job_id for r in runs])
    orphans = [(r, jobs[r.job_id]) for r in runs if r.job_id in jobs and _is_orphan(r, jobs[r.job_id])]
    done: dict[int, str] = {}
    for run, job in orphans:
        executor, _ = _executor(ctx, run.executor, out)
        if executor is None:
            continue
        key = run.handle_key
        if key is None:
            request = request_for(job, run.attempt, [], run.cluster)
            _, handle = _call(ctx, run.executor, "submit", partial(executor.submit, request), out)
            key = handle.key if handle is not None else None
        if key is None:
            continue
        target = RunHandle(executor=run.executor, key=key)
        ok, _ = _call(ctx, run.executor, "cancel", partial(executor.cancel, target), out)
        if ok:
            done[run.id] = key
    if not done:
        return
    with ctx.db.write() as session:
        for run in run_repo.active(session):
            if run.id in done:
                run.handle_key = run.handle_key or done[run.id]
                run_repo.mark_ended(run, now, None, f"stopped: job {format_job_id(run.job_id)} moved on")
                out.reaped += 1


def _is_orphan(run: RunRow, job: JobRow) -> bool:
    """True when the run is no longer the job's live attempt."""
    live = JobStatus(job.status).holds_gpus() and job.attempt == run.attempt
    return not live
