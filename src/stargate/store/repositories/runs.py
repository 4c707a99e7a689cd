"""Runs: each attempt of a job handed to an executor, with the handle that finds it again after a restart."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    Text,
    Update,
    bindparam,
    func,
    insert,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import LateralFromClause

from stargate.store.models import JobEventRow, JobRow, RunRow, format_job_id
from stargate.store.repositories import bulk
from stargate.store.repositories.jobs import json_list
from stargate.store.status import JobStatus


def latest_for_job(session: Session, job_id: int) -> RunRow | None:
    """The job's most recent run (highest attempt), or None when it never ran."""
    query = select(RunRow).where(RunRow.job_id == job_id).order_by(RunRow.attempt.desc()).limit(1)
    return session.scalars(query).one_or_none()


_RUNS = cast(Table, RunRow.__table__)


def _current_run(session: Session) -> Any:
    """What a query of the jobs joins to reach each job's current run (``runs`` with ``job_id``/``attempt`` of the
    job): on PostgreSQL a ``LATERAL`` subquery with ``LIMIT 1``, which the planner cannot flatten, so each job's run
    is one look-up in the ``(job_id, attempt)`` index whatever its cost settings; a plain join would let it scan the
    whole history of runs (a hash join) under the default ``random_page_cost`` once the table is large. Elsewhere
    the table itself (SQLite looks each run up in that index)."""
    if not bulk.is_postgres(session):
        return RunRow
    match = (RunRow.job_id == JobRow.id) & (RunRow.attempt == JobRow.attempt)
    return select(RunRow).where(match).limit(1).lateral("runs")


def _join_current_run(session: Session, query: Select[Any]) -> tuple[Select[Any], Any]:
    """``query`` (of ``jobs``) joined to each job's current run, and the run's columns to select (see
    :func:`_current_run`)."""
    run = _current_run(session)
    if run is RunRow:
        return query.join(RunRow, (JobRow.id == RunRow.job_id) & (JobRow.attempt == RunRow.attempt)), RunRow
    return query.join(run, true()), run.c


def placed_since(session: Session) -> dict[int, datetime]:
    """When each placed or running job was placed on its cluster for its current attempt (its run row's creation),
    by job row id: the start the engine counts its progress from (``jobs.started_at`` is the first run's)."""
    query, run = _join_current_run(session, select(JobRow.id).select_from(JobRow))
    query = query.add_columns(run.created_at).where(JobRow.status.in_([JobStatus.PLACED, JobStatus.RUNNING]))
    return {job_id: created for job_id, created in session.execute(query)}


def interruption_facts(session: Session, job_ids: Sequence[int], reason: str) -> dict[int, tuple[float, datetime, int]]:
    """For each of these placed or running jobs: its progress kept from earlier runs (s), when its current run was
    placed, and how many of its status changes had code ``reason`` (its earlier interruptions)."""
    if not job_ids:
        return {}
    ids = sorted(set(job_ids))
    jobs = cast(Select[Any], select(JobRow.id, JobRow.progress_s).select_from(JobRow))
    query, run = _join_current_run(session, jobs)
    rows = session.execute(query.add_columns(run.created_at).where(JobRow.id.in_(ids))).all()
    counted = (
        select(JobEventRow.job_id, func.count())
        .where(JobEventRow.job_id.in_(ids), JobEventRow.reason == reason)
        .group_by(JobEventRow.job_id)
    )
    counts: dict[int, int] = {job_id: int(n) for job_id, n in session.execute(counted)}
    return {job_id: (float(progress or 0.0), placed, counts.get(job_id, 0)) for job_id, progress, placed in rows}


RUN_COST_KEYS = (
    "gpus",
    "price_usd_per_gpu_hour",
    "list_price_usd_per_gpu_hour",
    "contract",
    "provider",
    "gpu_model",
    "region",
    "started_at",
)
"""What a run records for the costs (each may be left out: null)."""


def add_many(session: Session, runs: Sequence[Mapping[str, Any]]) -> None:
    """Insert many run rows with one multi-row statement (keys: ``job_id``, ``attempt``, ``executor``,
    ``cluster``, ``created_at``, and any of :data:`RUN_COST_KEYS`)."""
    if not runs:
        return
    rows = [{"ended": False, "note": "", **dict.fromkeys(RUN_COST_KEYS), **r} for r in runs]
    if bulk.is_postgres(session):
        bulk.insert(session, _RUNS, rows)
    else:
        session.execute(insert(_RUNS), rows)


_RUN_KEYS = {"b_job": "job_id", "b_attempt": "attempt"}


def _each(
    session: Session,
    condition: ColumnElement[bool],
    rows: Sequence[dict[str, Any]],
    where: str,
    increment: str | None = None,
) -> None:
    """Set the other columns of each row on the run named by its ``b_job`` and ``b_attempt`` when ``condition``
    holds (``where``: the same in SQL on the table ``t``, for PostgreSQL's one ``UPDATE ... FROM unnest(...)``);
    ``increment``: a column that each run adds 1 to."""
    if bulk.is_postgres(session):
        more = {increment: f't."{increment}" + 1'} if increment else None
        bulk.update(session, _RUNS, _RUN_KEYS, rows, where=where, expressions=more)
        return
    statement = _each_run(condition)
    if increment:
        statement = statement.values({increment: _RUNS.c[increment] + 1})
    session.execute(statement, list(rows))


def _each_run(condition: ColumnElement[bool]) -> Update:
    """An UPDATE of the run named by the bound ``b_job`` and ``b_attempt`` when ``condition`` holds (executed with
    one parameter set per run)."""
    return update(_RUNS).where(
        _RUNS.c.job_id == bindparam("b_job"), _RUNS.c.attempt == bindparam("b_attempt"), condition
    )


def set_handles(session: Session, handles: Sequence[tuple[int, int, str]], at: datetime | None = None) -> None:
    """Store the handle key of each (job id, attempt) run that has none yet, in one statement run for all; ``at``:
    when the executor accepted them (their ``started_at``, from which they are charged)."""
    if not handles:
        return
    when = {} if at is None else {"started_at": at}
    rows = [{"b_job": j, "b_attempt": a, "handle_key": k, **when} for j, a, k in handles]
    _each(session, _RUNS.c.handle_key.is_(None), rows, "t.handle_key IS NULL")


def end_many(session: Session, ended: Sequence[tuple[int, int, int | None, str]], at: datetime) -> None:
    """Mark each (job id, attempt, exit code, note) run ended unless it already is, in one statement run for all."""
    if not ended:
        return
    params = [
        {"b_job": j, "b_attempt": a, "ended": True, "ended_at": at, "exit_code": code, "note": note}
        for j, a, code, note in ended
    ]
    _each(session, _RUNS.c.ended.is_(False), params, "NOT t.ended")


def count_start_failures(session: Session, runs: Sequence[tuple[int, int]]) -> None:
    """Add one failed start to each (job id, attempt) run not yet ended, in one statement run for all."""
    if not runs:
        return
    rows = [{"b_job": j, "b_attempt": a} for j, a in runs]
    _each(session, _RUNS.c.ended.is_(False), rows, "NOT t.ended", increment="start_failures")


def set_notes(session: Session, notes: Sequence[tuple[int, int, str]]) -> None:
    """Set the note of each (job id, attempt, note) run not yet ended, in one statement run for all."""
    if not notes:
        return
    rows = [{"b_job": j, "b_attempt": a, "note": n} for j, a, n in notes]
    _each(session, _RUNS.c.ended.is_(False), rows, "NOT t.ended")


def record_cancelled_exit_codes(session: Session, codes: Sequence[tuple[int, int, int]]) -> None:
    """Copy each (job id, attempt, exit code) of a run stopped after its job was cancelled to the job, when the
    job is still cancelled at that attempt and has no exit code yet (one statement run for all)."""
    if not codes:
        return
    table = cast(Table, JobRow.__table__)
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_job"), table.c.attempt == bindparam("b_attempt"))
        .where(table.c.status == JobStatus.CANCELLED, table.c.exit_code.is_(None))
    )
    session.execute(statement, [{"b_job": j, "b_attempt": a, "exit_code": c} for j, a, c in codes])


_RAW_GPU_IDS = type_coerce(JobRow.gpu_ids, Text)


@dataclass(frozen=True, slots=True)
class LiveRun:
    """A job's current run as the loop needs it: the job's row id, attempt, executor, cluster, handle key, GPU ids,
    the job's team and how many times its start failed."""

    job_id: int
    attempt: int
    executor: str
    cluster: str
    handle_key: str | None
    gpu_ids: list[int]
    team: str
    start_failures: int
    note: str = ""
    """The run's note (read for orphans only: ``stopping...`` once the scheduler asked the executor to stop it)."""

    @property
    def subject(self) -> str:
        """How log lines name the run: ``j-000123 attempt 1``."""
        return f"{format_job_id(self.job_id)} attempt {self.attempt}"


def live(session: Session, status: JobStatus, job_ids: Sequence[int] | None = None) -> list[LiveRun]:
    """For every job in ``status`` (of ``job_ids`` only, when given), the run of its current attempt (jobs without
    one are left out), oldest job first; plain values in one joined query, driven by the jobs in ``status`` (see
    :func:`_current_run`)."""
    query, run = _join_current_run(session, select(JobRow.id).select_from(JobRow))
    query = (
        query.add_columns(
            run.attempt, run.executor, run.cluster, run.handle_key, _RAW_GPU_IDS, JobRow.team_id, run.start_failures
        )
        .where(JobRow.status == status)
        .order_by(JobRow.id)
    )
    if job_ids is not None:
        query = query.where(JobRow.id.in_(sorted(set(job_ids))))
    return [LiveRun(j, a, e, c, h, json_list(g), t, f) for j, a, e, c, h, g, t, f in session.execute(query)]


def orphans(session: Session) -> list[LiveRun]:
    """Runs not marked ended whose job moved on (final, back to pending, or a later attempt), oldest first.

    Driven by the runs not ended (``ix_runs_ended``); on PostgreSQL each one's job is a ``LATERAL`` look-up by its
    primary key (see :func:`_current_run`: a plain join may scan every job once the history is large)."""
    job: Any = JobRow
    lateral: LateralFromClause | None = None
    if bulk.is_postgres(session):
        by_id = select(JobRow.status, JobRow.attempt, JobRow.gpu_ids, JobRow.team_id).where(JobRow.id == RunRow.job_id)
        lateral = by_id.limit(1).lateral("jobs")
        job = lateral.c
    live_attempt = job.status.in_([JobStatus.PLACED, JobStatus.RUNNING]) & (job.attempt == RunRow.attempt)
    columns = (RunRow.job_id, RunRow.attempt, RunRow.executor, RunRow.cluster, RunRow.handle_key)
    query = select(*columns, job.gpu_ids, job.team_id, RunRow.start_failures, RunRow.note)
    if lateral is None:
        query = query.join(JobRow, JobRow.id == RunRow.job_id)
    else:
        query = query.select_from(RunRow).join(lateral, true())
    query = query.where(RunRow.ended.is_(False), ~live_attempt).order_by(RunRow.id)
    return [LiveRun(*row) for row in session.execute(query)]


def ran_seconds(session: Session, job_ids: Sequence[int]) -> dict[int, float]:
    """Seconds each job ran in its runs that ended (ended_at − created_at, summed), by job row id; jobs with no
    ended run are left out. What the attained-service policies count as service already received (× GPUs)."""
    if not job_ids:
        return {}
    query = select(RunRow.job_id, RunRow.created_at, RunRow.ended_at).where(
        RunRow.job_id.in_(list(job_ids)), RunRow.ended.is_(True), RunRow.ended_at.is_not(None)
    )
    out: dict[int, float] = {}
    for job_id, created, ended in session.execute(query):
        if ended is not None:
            out[job_id] = out.get(job_id, 0.0) + max((ended - created).total_seconds(), 0.0)
    return out
