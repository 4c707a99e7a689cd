"""Scheduler loop, housekeeping step: remove what the executors keep of runs whose job ended long ago (leader only).

Executors write records for every run (the local executor's run and working directories, the Slurm executor's
``jobs/``, ``withdrawn/`` and ``refused/`` files and logs, the Ray executor's withdrawn markers and the jobs Ray keeps,
the Kubernetes executor's markers and its Jobs and JobSets). Every :data:`INTERVAL_S` (the first pass
:data:`FIRST_PASS_S` after this process began leading) a pass asks each executor of the fleet in force (and the
local executor) what it keeps (:meth:`~stargate.executors.base.KeepsRecords.records`), reads what the database says
of those jobs, lets :func:`stargate.executors.retention.expired` pick what may go (job final, run ended, both at least
``STARGATE_RUN_RETENTION`` ago, nothing the engine says is still going) and has the executor remove it
(:meth:`~stargate.executors.base.KeepsRecords.prune`). The pass runs on a thread of its own, outside transactions:
a cycle never waits for it. Executors whose engine does not answer, or answered again less than 30 s ago (their
orphaned runs are being watched: see :func:`stargate.server.scheduling.health.settling`), are left for the next
pass. Nothing of a job that is not final is ever removed, nor anything of a run the database has not marked ended
(an orphan the reap step still has to stop or reconcile).
"""

import logging
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import Counter as PromCounter

from stargate.executors import UnknownExecutorError
from stargate.executors.base import KeepsRecords, Pruned, RunRecord
from stargate.executors.retention import JobFacts, describe, expired
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError
from stargate.server.scheduling.execute import describe as describe_error
from stargate.store import parse_job_id
from stargate.store.repositories import retention as retention_repo

log = logging.getLogger("stargate.scheduler")

INTERVAL_S = 600.0
"""Seconds between two passes (10 minutes): retention is counted in hours and days, a pass lists every record."""
FIRST_PASS_S = 60.0
"""Seconds from the first cycle this process leads to its first pass (a restart is not slowed by one)."""
SHOWN_PROBLEMS = 3
"""Records an executor could not remove that one pass names in the log (the rest are counted)."""


@dataclass
class ExecutorPass:
    """What one pass did with one executor."""

    executor: str
    records: int = 0
    """Records it listed."""
    removed: int = 0
    kept: Counter[str] = field(default_factory=Counter)
    """Records kept, by why (see :mod:`stargate.executors.retention`)."""
    problems: tuple[str, ...] = ()
    """Records it could not remove, one line each."""
    error: str = ""
    """Why it could not list its records (nothing was removed), or empty."""
    took_s: float = 0.0


@dataclass
class Pass:
    """One housekeeping pass: when it started, each executor's part, how long it took in all."""

    at: datetime
    executors: list[ExecutorPass] = field(default_factory=list)
    took_s: float = 0.0

    @property
    def records(self) -> int:
        return sum(e.records for e in self.executors)

    @property
    def removed(self) -> int:
        return sum(e.removed for e in self.executors)


@dataclass
class HousekeepingState:
    """What the housekeeping step keeps between cycles (per server process)."""

    due: datetime | None = None
    """When the next pass starts (None: this process has not led a cycle yet)."""
    running: threading.Thread | None = None
    finished: Pass | None = None
    """The pass that ended and was not yet reported by :func:`step`."""
    last: Pass | None = None
    counter: PromCounter | None = None


_STATES: dict[int, HousekeepingState] = {}


def state_of(ctx: ServerContext) -> HousekeepingState:
    """The housekeeping step's state of this server process (kept with its loop state, dropped with it)."""
    key = id(ctx.loop)
    found = _STATES.get(key)
    if found is None:
        found = _STATES[key] = HousekeepingState()
        weakref.finalize(ctx.loop, _STATES.pop, key, None)
    return found


def step(ctx: ServerContext, now: datetime, skip: frozenset[str] = frozenset(), wait: bool = False) -> Pass | None:
    """Return the pass that ended since the last call (once), and start the next one when it is due, on a thread of
    its own (``wait``: wait for it, as tests with a fixed clock do). ``skip``: executors to leave alone this time
    (their engine does not answer, or is settling after an outage). Nothing when ``run_retention_s`` is None
    (``STARGATE_RUN_RETENTION=never``). Leader only: the scheduler loop calls it every cycle."""
    state = state_of(ctx)
    ended = _collect(state)
    retention_s = ctx.settings.run_retention_s
    if retention_s is None or state.running is not None:
        return ended
    if state.due is None:
        state.due = now + timedelta(seconds=FIRST_PASS_S)
    if now < state.due:
        return ended
    state.due = now + timedelta(seconds=INTERVAL_S)

    def run() -> None:
        try:
            state.finished = prune_pass(ctx, now, retention_s, skip)
        except Exception:  # e.g. the database went away: logged, the next pass tries again
            log.exception("housekeeping: the pass failed (it runs again in %.0f s)", INTERVAL_S)
            state.finished = Pass(now, [ExecutorPass("*", error="the pass failed")])

    state.running = threading.Thread(target=run, name="stargate-housekeeping", daemon=True)
    state.running.start()
    if wait:
        state.running.join()
        return _collect(state) or ended
    return ended


def _collect(state: HousekeepingState) -> Pass | None:
    """The pass that ended, once; None while one runs or none ended since."""
    if state.running is not None and state.running.is_alive():
        return None
    state.running = None
    ended, state.finished = state.finished, None
    if ended is not None:
        state.last = ended
    return ended


def prune_pass(ctx: ServerContext, now: datetime, retention_s: float, skip: frozenset[str] = frozenset()) -> Pass:
    """One pass over the executors of the fleet in force (and the local executor) but ``skip``: each one's records
    listed, judged against the database with ``retention_s`` at ``now``, the expired ones removed; logged."""
    began = time.monotonic()
    done = Pass(now)
    for executor_id in sorted(executor_ids(ctx) - skip):
        part = _one(ctx, executor_id, now, retention_s)
        if part is not None:
            done.executors.append(part)
            _report(ctx, part, retention_s)
    done.took_s = time.monotonic() - began
    return done


def executor_ids(ctx: ServerContext) -> set[str]:
    """The executors whose records a pass looks at: those the fleet in force declares or its clusters use, and the
    local executor (runs of an earlier fleet's clusters included)."""
    with ctx.db.read() as session:
        try:
            _, fleet = ctx.fleet.get(session)
        except NotFoundError:
            return {"local"}
    return {"local", *(e.id for e in fleet.executors), *fleet.cluster_executor_ids().values()}


def _one(ctx: ServerContext, executor_id: str, now: datetime, retention_s: float) -> ExecutorPass | None:
    """The pass over one executor; None when it keeps no records (an executor of tests)."""
    began = time.monotonic()
    part = ExecutorPass(executor_id)
    try:
        executor = ctx.executor(executor_id)
    except UnknownExecutorError as exc:
        part.error = f"cannot build it: {exc}"
        return part
    if not isinstance(executor, KeepsRecords):
        return None
    try:
        records = executor.records()
    except Exception as exc:  # unreachable engine, unreadable directory: nothing pruned, tried again next pass
        part.error = f"cannot list its records: {describe_error(exc)}"
        part.took_s = time.monotonic() - began
        return part
    verdict = expired(records, facts(ctx, records), now, retention_s)
    part.records, part.kept = len(records), verdict.kept
    if verdict.expired:
        try:
            pruned = executor.prune(verdict.expired)
        except Exception as exc:  # an executor's own failure: counted, never the cycle's
            pruned = Pruned(0, (f"prune failed: {describe_error(exc)}",))
        part.removed, part.problems = pruned.removed, pruned.problems
    part.took_s = time.monotonic() - began
    return part


def facts(ctx: ServerContext, records: list[RunRecord]) -> dict[str, JobFacts]:
    """What the database says of the jobs of ``records``, by public job id (jobs it does not have are absent)."""
    ids = {public: row for public in {r.job_id for r in records} if (row := parse_job_id(public)) is not None}
    if not ids:
        return {}
    with ctx.db.read() as session:
        ends = retention_repo.job_ends(session, set(ids.values()))
    return {
        public: JobFacts(end.final, end.finished_at, end.runs)
        for public, row in ids.items()
        if (end := ends.get(row)) is not None
    }


def _report(ctx: ServerContext, part: ExecutorPass, retention_s: float) -> None:
    """Log what the pass did with one executor, and count what it removed."""
    if part.error:
        log.warning(
            "housekeeping: executor %s: %s (nothing pruned; next pass in %.0f s)", part.executor, part.error, INTERVAL_S
        )
        return
    if part.removed:
        _count(ctx, part.executor, part.removed)
        kept = ", ".join(f"{why} {n}" for why, n in sorted(part.kept.items())) or "none"
        log.info(
            "housekeeping: executor %s: removed %d of %d records of runs whose job ended more than %s ago "
            "(kept: %s) in %.2f s",
            part.executor,
            part.removed,
            part.records,
            describe(retention_s),
            kept,
            part.took_s,
        )
    if part.problems:
        shown = "; ".join(part.problems[:SHOWN_PROBLEMS])
        more = f" (and {len(part.problems) - SHOWN_PROBLEMS} more)" if len(part.problems) > SHOWN_PROBLEMS else ""
        log.warning(
            "housekeeping: executor %s: could not remove %d records: %s%s",
            part.executor,
            len(part.problems),
            shown,
            more,
        )


def _count(ctx: ServerContext, executor: str, removed: int) -> None:
    """Add ``removed`` to ``stargate_run_records_pruned_total{executor}`` (registered once per metrics registry;
    not counted by a second loop state over the same registry)."""
    state = state_of(ctx)
    if state.counter is None:
        try:
            state.counter = PromCounter(
                "stargate_run_records_pruned_total",
                "Records of finished runs (files, markers, logs, engine jobs) executors removed after the retention.",
                ["executor"],
                registry=ctx.metrics.registry,
            )
        except ValueError:  # already registered in this registry (another loop state over the same metrics)
            return
    state.counter.labels(executor=executor).inc(removed)
