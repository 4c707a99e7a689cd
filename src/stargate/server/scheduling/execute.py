"""Scheduler loop, steps 1 and 4: poll running jobs, hand placed jobs to executors (orphans: :mod:`.reap`).

Executors are called only outside transactions. Each step reads in one short transaction (plain column values),
calls the executors (many calls at once on a small thread pool: a local submit waits for its runner to start),
then writes what it learned in one short transaction with bulk statements that re-check every job (it may have
changed meanwhile). Submitting is idempotent per (job id, attempt), so a placed job left by a crash is submitted
again safely.

Bounded starts: a submit that raises (or answers with no usable handle) counts in ``runs.start_failures``; after
``settings.start_tries`` failures the job fails (``start_failed``, the last error as detail) and its GPUs are free. An
executor whose settings cannot build it (:class:`ExecutorBuildError`: a token variable not set...) counts as such a
failed start; the health step then reports its engine unreachable, so its placed jobs wait without spending tries and
its clusters go down after ``down_after_s`` (their jobs requeued elsewhere). A kind this installation does not have,
or a run the executor reports as unstartable (``cannot start the command``), fails its job at once (``unstartable``). A
run whose job moved on before its handle was known is looked up with :meth:`Executor.find`, which never starts one.
Every log line names the job and attempt.
"""

import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from stargate.domain import JobReason
from stargate.executors import (
    EngineUnreachableError,
    Executor,
    ExecutorBuildError,
    ReportsChanges,
    RunHandle,
    RunRequest,
    RunState,
    RunStatus,
    UnknownExecutorError,
)
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError
from stargate.server.scheduling.interrupted import interrupted_moves
from stargate.server.terms import SpecTerms
from stargate.store import Current, JobStatus, Move, format_job_id, lock_current, parse_job_id, transition_many
from stargate.store.repositories import jobs as job_repo
from stargate.store.repositories import runs as run_repo
from stargate.store.repositories.runs import LiveRun

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
    unreachable: dict[str, str] = field(default_factory=dict)
    """Executors whose engine did not answer a call of this cycle, with the error (see :func:`_count_error`)."""


@dataclass(frozen=True, slots=True)
class Call:
    """One executor call to make: which executor kind, which operation (for metrics and logs), the call, and the
    run it is about (``j-000123 attempt 1``, for log lines)."""

    kind: str
    operation: str
    fn: Callable[[], Any]
    subject: str = ""


def call_all(ctx: ServerContext, calls: Sequence[Call], out: Executed) -> list[tuple[bool, Any]]:
    """Make every call, several at once on ``settings.executor_threads`` threads; for each, (True, result) or
    (False, the exception) when it raised (logged, counted). Order is kept."""
    threads = min(ctx.settings.executor_threads, len(calls))
    results = [_attempt(c) for c in calls] if threads <= 1 else _on_threads(calls, threads)
    answers: list[tuple[bool, Any]] = []
    for call, (ok, value) in zip(calls, results, strict=True):
        if not ok:
            _count_error(ctx, call, value, out)
        answers.append((ok, value))
    return answers


def _count_error(ctx: ServerContext, call: Call, exc: Exception, out: Executed) -> None:
    """Log and count one executor call that raised."""
    out.errors += 1
    if isinstance(exc, EngineUnreachableError):  # evidence for the health step: the engine did not answer
        out.unreachable.setdefault(call.kind, describe(exc))
    ctx.metrics.executor_errors.labels(executor=call.kind, operation=call.operation).inc()
    log.warning("%s: executor %s %s failed: %s", call.subject or "-", call.kind, call.operation, describe(exc))


def describe(exc: BaseException) -> str:
    """An exception on one short line: ``ValueError: embedded null byte``."""
    text = " ".join(str(exc).split())[:500]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _on_threads(calls: Sequence[Call], threads: int) -> list[tuple[bool, Any]]:
    """Make the calls on ``threads`` threads that each take the next call not yet taken (no future per call: for
    thousands of quick calls the bookkeeping would cost more than the calls)."""
    results: list[tuple[bool, Any]] = [(False, None)] * len(calls)
    todo = iter(enumerate(calls))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                step = next(todo, None)
            if step is None:
                return
            results[step[0]] = _attempt(step[1])

    workers = [threading.Thread(target=work, name="stargate-executor", daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def _attempt(call: Call) -> tuple[bool, Any]:
    try:
        return True, call.fn()
    except Exception as exc:
        return False, exc


def _executor(ctx: ServerContext, kind: str, out: Executed) -> tuple[Executor | None, UnknownExecutorError | None]:
    """The executor of ``kind``, or None and why when none is available (counted as an executor error); never
    raises for an executor that cannot be built, so the other executors' jobs go on."""
    try:
        return ctx.executor(kind), None
    except UnknownExecutorError as exc:
        out.errors += 1
        ctx.metrics.executor_errors.labels(executor=kind, operation="build").inc()
        return None, exc


def request_for(run: LiveRun, terms: SpecTerms, gpu_ids: Sequence[int], gpus_per_node: int = 0) -> RunRequest:
    """What the executor needs to start the attempt of ``run`` (its job's spec ``terms``) on ``gpu_ids`` of a
    cluster with ``gpus_per_node`` GPUs per node (0: unknown, one node): the nodes its GPUs are on, and the most
    GPUs it holds on one of them (``gpus // nodes`` when they are spread evenly, as a gang's are)."""
    ids = tuple(gpu_ids)
    per_node = Counter(g // gpus_per_node for g in ids) if gpus_per_node > 0 else Counter({0: len(ids)})
    nodes = max(1, len(per_node))
    return RunRequest(
        job_id=format_job_id(run.job_id),
        attempt=run.attempt,
        command=terms.command,
        cluster=run.cluster,
        gpu_ids=ids,
        environment=dict(terms.environment),
        team=run.team,
        gpus=len(ids),
        nodes=nodes,
        gpus_per_node=max(per_node.values(), default=0),
        image=terms.image,
        name=terms.name or "",
    )


def _terms(ctx: ServerContext, session: Session, row_ids: list[int]) -> dict[int, SpecTerms]:
    """The spec terms of these jobs: from the loop's cache (filled by the snapshot), else read and parsed now."""
    cache = ctx.loop.spec_terms
    found = {i: cache[i] for i in row_ids if i in cache}
    missing = [i for i in row_ids if i not in found]
    found.update({i: SpecTerms.of(spec) for i, spec in job_repo.specs(session, missing).items()})
    return found


def submit_placed(ctx: ServerContext, now: datetime, out: Executed, skip: frozenset[str] = frozenset()) -> None:
    """Hand every placed job to its executor, then record the handles and move the jobs to running; a job whose
    executor is in ``skip`` (its engine did not answer its last health check) waits, no start failure counted."""
    with ctx.db.read() as session:
        placed = [r for r in run_repo.live(session, JobStatus.PLACED) if r.executor not in skip]
        terms = _terms(ctx, session, [r.job_id for r in placed])
        shape = _node_sizes(ctx, session) if placed else {}
    calls: list[Call] = []
    asked: list[LiveRun] = []
    unavailable: list[tuple[LiveRun, str]] = []
    failed: list[tuple[LiveRun, str]] = []
    for run in placed:
        executor, why = _executor(ctx, run.executor, out)
        if isinstance(why, ExecutorBuildError):  # settings that may be mended: a failed start (bounded tries)
            failed.append((run, str(why)))
            continue
        if executor is None:  # no such executor in this installation: it never starts
            unavailable.append((run, str(why)))
            continue
        spec_terms = terms.get(run.job_id) or SpecTerms.of({})
        if not spec_terms.command and not executor.capabilities.images:  # it would run nothing: fail the job
            unavailable.append((run, f"the {run.executor} executor runs commands; this job has only an image"))
            continue
        request = request_for(run, spec_terms, run.gpu_ids, shape.get(run.cluster, 0))
        calls.append(Call(run.executor, "submit", _bind(executor.submit, request), run.subject))
        asked.append(run)
    handles: list[tuple[int, int, str]] = []
    for run, (ok, answer) in zip(asked, call_all(ctx, calls, out), strict=True):
        if not ok:
            failed.append((run, describe(answer)))
        elif isinstance(answer, RunHandle) and answer.key:
            handles.append((run.job_id, run.attempt, answer.key))
        else:
            failed.append((run, f"the executor answered with no usable run handle ({str(answer)[:200]})"))
    clusters = {run.job_id: run.cluster for run in asked}
    if handles:
        _record_started(ctx, handles, clusters, now, out)
    if failed:
        _count_start_failures(ctx, failed, now)
    if unavailable:
        _fail_unavailable(ctx, unavailable, now)


def _node_sizes(ctx: ServerContext, session: Session) -> dict[str, int]:
    """GPUs per node of each cluster of the fleet in force (none before a fleet was applied)."""
    try:
        version, fleet = ctx.fleet.get(session)
    except NotFoundError:
        return {}
    if _NODE_SIZES.get(version) is None:
        _NODE_SIZES.clear()
        _NODE_SIZES[version] = {c.id: c.gpus_per_node for c in fleet.clusters}
    return _NODE_SIZES[version]


_NODE_SIZES: dict[str, dict[str, int]] = {}
"""GPUs per node of each cluster, for the last fleet version seen (built once per version)."""


def _count_start_failures(ctx: ServerContext, failed: list[tuple[LiveRun, str]], now: datetime) -> None:
    """Count a failed start of each run; a job whose run failed to start ``settings.start_tries`` times fails with
    the last error (its GPUs are free; the orphaned run is withdrawn by :func:`reap_orphans`)."""
    tries = max(1, ctx.settings.start_tries)
    for run, _ in failed:  # the error itself was logged with the call
        ctx.metrics.start_failures.labels(executor=run.executor).inc()
        log.warning("%s: start %d of %d on %s failed", run.subject, run.start_failures + 1, tries, run.cluster)
    hopeless = [(run, why) for run, why in failed if run.start_failures + 1 >= tries]
    with ctx.db.write() as session:
        run_repo.count_start_failures(session, [(run.job_id, run.attempt) for run, _ in failed])
        if not hopeless:
            return
        current = lock_current(session, [run.job_id for run, _ in hopeless])
        moves: list[Move] = []
        for run, why in hopeless:
            detail = f"on {run.executor} executor after {run.start_failures + 1} tries: {why}"
            if (cur := _still(current, run.job_id, JobStatus.PLACED, run.attempt)) is not None:
                moves.append(Move(cur, JobStatus.FAILED, JobReason.START_FAILED, detail))
        run_repo.set_notes(session, [(m.job.id, m.job.attempt, m.text) for m in moves])
        transition_many(session, moves, ACTOR, now)
    for move in moves:
        ctx.metrics.finished.labels(status=move.to.value).inc()
        log.warning("%s attempt %d: failed: %s", move.job.public_id, move.job.attempt, move.text)


def _bind(fn: Callable[[Any], T], arg: Any) -> Callable[[], T]:
    return lambda: fn(arg)


def _still(current: dict[int, Current], job_id: int, status: JobStatus, attempt: int) -> Current | None:
    """The locked job if it is still in ``status`` at ``attempt``."""
    cur = current.get(job_id)
    return cur if cur is not None and cur.status is status and cur.attempt == attempt else None


def _fail_unavailable(ctx: ServerContext, unavailable: list[tuple[LiveRun, str]], now: datetime) -> None:
    """Placed jobs whose executor does not exist here cannot ever start: they fail as ``unstartable``, with why."""
    with ctx.db.write() as session:
        current = lock_current(session, [run.job_id for run, _ in unavailable])
        run_repo.end_many(session, [(run.job_id, run.attempt, None, why) for run, why in unavailable], now)
        moves = [
            Move(cur, JobStatus.FAILED, JobReason.UNSTARTABLE, why)
            for run, why in unavailable
            if (cur := _still(current, run.job_id, JobStatus.PLACED, run.attempt)) is not None
        ]
        transition_many(session, moves, ACTOR, now)
    for run, why in unavailable:
        log.warning("%s: failed: %s", run.subject, why)


def _record_started(
    ctx: ServerContext, handles: list[tuple[int, int, str]], clusters: dict[int, str], now: datetime, out: Executed
) -> None:
    """Store the run handles and move the jobs that are still placed to running, in one transaction."""
    with ctx.db.write() as session:
        current = lock_current(session, [h[0] for h in handles])
        run_repo.set_handles(session, handles, now)
        moves = [
            Move(cur, JobStatus.RUNNING, JobReason.STARTED, f"on {clusters[job_id]}")
            for job_id, attempt, _ in handles
            if (cur := _still(current, job_id, JobStatus.PLACED, attempt)) is not None
        ]
        out.started += transition_many(session, moves, ACTOR, now)


RESYNC_S = 30.0
"""Seconds between full reads of the running jobs for executors that report changes (the runs another process
started are handed to them then); a cycle that rebuilds the engine's driver reads them in full too."""
_SYNCED: "weakref.WeakKeyDictionary[object, float]" = weakref.WeakKeyDictionary()
"""When each executor that reports changes was last handed every running run (monotonic s)."""


def poll_running(ctx: ServerContext, now: datetime, out: Executed, skip: frozenset[str] = frozenset()) -> None:
    """Learn which running jobs ended and record them (succeeded, failed, cancelled, lost).

    Executors that report changes (:class:`ReportsChanges`, the local one) are asked once each for the runs that
    ended: a cycle in which nothing ended reads no running job from the database and makes one call per executor.
    Every :data:`RESYNC_S` seconds, on the first cycle and whenever the loop rebuilds its driver, the running jobs
    are read in full and handed to them (runs started by another server process). Other executors are polled run
    by run, every cycle, but those in ``skip`` (their engine did not answer its last health check)."""
    reporters, every_kind = _reporters(ctx)
    clock = time.monotonic()
    full = (
        ctx.loop.driver is None
        or not every_kind
        or any(clock - _SYNCED.get(ex, -RESYNC_S) >= RESYNC_S for ex in reporters.values())
    )
    polled: list[LiveRun] = []
    if full:
        with ctx.db.read() as session:
            running = [r for r in run_repo.live(session, JobStatus.RUNNING) if r.handle_key]
        for kind, executor in reporters.items():
            executor.watch([RunHandle(kind, r.handle_key or "") for r in running if r.executor == kind])
            _SYNCED[executor] = clock
        polled = [r for r in running if r.executor not in reporters and r.executor not in skip]
    ended = _reported(ctx, reporters, out) + _polled(ctx, polled, out)
    if ended:
        _record_ended(ctx, ended, now, out)


def _reporters(ctx: ServerContext) -> "tuple[dict[str, ReportsChanges], bool]":
    """The executors of the fleet in force that report changes, by kind; and whether every executor of the fleet
    does (False before a fleet is known)."""
    known = ctx.fleet.peek()
    if known is None:
        return {}, False
    found: dict[str, ReportsChanges] = {}
    every = True
    for kind in sorted(known[1].executors):  # the ids of the executors the fleet's providers and clusters use
        try:
            executor = ctx.executor(kind)
        except UnknownExecutorError:  # cannot be built here (logged once by the registry): the others go on
            continue
        if isinstance(executor, ReportsChanges):
            found[kind] = executor
        else:
            every = False
    return found, every


def _reported(
    ctx: ServerContext, reporters: "dict[str, ReportsChanges]", out: Executed
) -> list[tuple[LiveRun, RunStatus]]:
    """The running jobs whose runs the executors report ended (one call each; the runs read by job id)."""
    changes: dict[tuple[int, int], tuple[str, RunStatus]] = {}
    for kind, executor in reporters.items():
        ok, answer = _attempt(Call(kind, "changes", executor.changes))
        if not ok:
            _count_error(ctx, Call(kind, "changes", executor.changes), answer, out)
            continue
        for change in answer:
            row_id = parse_job_id(change.job_id)
            if row_id is not None:
                changes[(row_id, change.attempt)] = (kind, change.status)
    if not changes:
        return []
    with ctx.db.read() as session:
        runs = run_repo.live(session, JobStatus.RUNNING, [job_id for job_id, _ in changes])
    ended = []
    for run in runs:
        found = changes.get((run.job_id, run.attempt))
        if found is not None and found[0] == run.executor:
            ended.append((run, found[1]))
    return ended


def _polled(ctx: ServerContext, running: list[LiveRun], out: Executed) -> list[tuple[LiveRun, RunStatus]]:
    """Poll each of these running jobs' runs, several at once (the executors polled run by run are the remote
    ones: a poll is a call to Slurm, Ray or Kubernetes, and may wait seconds for an engine that does not answer);
    the ones that ended."""
    built = {kind: _executor(ctx, kind, out) for kind in {r.executor for r in running}}
    kinds = {kind: executor for kind, (executor, _) in built.items()}
    gone = [run for run in running if _not_in_fleet(built[run.executor][1])]
    if gone:  # make sure of it with the fleet in force read now (this process may not have read it yet)
        with ctx.db.read() as session:
            ctx.fleet.get(session)
        gone = [run for run in gone if _not_in_fleet(_executor(ctx, run.executor, Executed())[1])]
    asked = [run for run in running if kinds[run.executor] is not None]
    calls = [
        Call(run.executor, "poll", _bind(ex.poll, RunHandle(run.executor, run.handle_key or "")), run.subject)
        for run in asked
        if (ex := kinds[run.executor]) is not None
    ]
    answers = call_all(ctx, calls, out)
    ended = [(run, status) for run, (ok, status) in zip(asked, answers, strict=True) if ok and status.state.is_final()]
    for run in gone:
        why = (
            f"its executor '{run.executor}' is no longer in the fleet in force, so the run cannot be followed (it may "
            f"still be running on that engine: stop it there); keep an executor in the fleet until its jobs end"
        )
        log.warning("%s: %s", run.subject, why)
        ended.append((run, RunStatus(RunState.LOST, reason=why)))
    return ended


def _not_in_fleet(error: UnknownExecutorError | None) -> bool:
    """True when an executor could not be had because the fleet in force does not declare it (not because it
    failed to build: that is retried)."""
    return error is not None and not isinstance(error, ExecutorBuildError)


def _record_ended(ctx: ServerContext, ended: list[tuple[LiveRun, RunStatus]], now: datetime, out: Executed) -> None:
    """End the runs and move their jobs (still running at that attempt) to their final status, in one transaction."""
    with ctx.db.write() as session:
        current = lock_current(session, [run.job_id for run, _ in ended])
        notes = [(run.job_id, run.attempt, s.exit_code, f"{s.state.value}: {s.reason}".strip(": ")) for run, s in ended]
        run_repo.end_many(session, notes, now)
        moves: list[Move] = []
        interrupted: list[tuple[Current, LiveRun, RunStatus]] = []
        for run, status in ended:
            if (cur := _still(current, run.job_id, JobStatus.RUNNING, run.attempt)) is None:
                continue
            if status.state is RunState.INTERRUPTED:
                interrupted.append((cur, run, status))
                continue
            to, code, detail = final_status(status, run.executor)
            moves.append(Move(cur, to, code, detail, {"exit_code": status.exit_code}))
        if interrupted:
            _, fleet = ctx.fleet.get(session)  # a job runs: a fleet is in force
            terms = _terms(ctx, session, [cur.id for cur, _, _ in interrupted])
            moves += interrupted_moves(session, ctx.policy_for(fleet), interrupted, terms, now)
        transition_many(session, moves, ACTOR, now)
    for move in moves:
        if move.to.is_final():
            ctx.metrics.finished.labels(status=move.to.value).inc()
        log.info("%s attempt %d: %s: %s", move.job.public_id, move.job.attempt, move.to.value, move.text)
    out.finished += sum(1 for move in moves if move.to.is_final())


UNSTARTABLE = "cannot start"
"""How an executor's reason for a failed run begins when the command could not be started at all."""


def final_status(status: RunStatus, executor: str = "local") -> tuple[JobStatus, JobReason, str]:
    """The job status, reason code and detail for a run that ended: a lost run fails as ``lost`` (the executor's
    reason as detail); a run whose command could not be started fails as ``unstartable`` (detail ``on <executor>
    executor: <reason>``); a nonzero exit fails as ``failed`` (detail ``exited with code N``)."""
    more = f": {status.reason}" if status.reason else ""
    if status.state is RunState.FAILED and status.reason.startswith(UNSTARTABLE):
        return JobStatus.FAILED, JobReason.UNSTARTABLE, f"on {executor} executor: {status.reason}"
    if status.state is RunState.SUCCEEDED:
        return JobStatus.SUCCEEDED, JobReason.SUCCEEDED, f"exited with code {status.exit_code}"
    if status.state is RunState.CANCELLED:
        return JobStatus.CANCELLED, JobReason.CANCELLED, f"run cancelled outside Stargate{more}"
    if status.state in (RunState.LOST, RunState.INTERRUPTED):
        return JobStatus.FAILED, JobReason.LOST, status.reason
    if status.exit_code is not None:
        return JobStatus.FAILED, JobReason.FAILED, f"exited with code {status.exit_code}"
    return JobStatus.FAILED, JobReason.FAILED, status.reason
