"""Jobs: insert, fetch (optionally locked), list newest first with keyset pagination, count by queue."""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, Text, func, insert, select, type_coerce
from sqlalchemy.orm import Session

from stargate.domain.reasons import JobReason
from stargate.store.models import JobRow, format_job_id
from stargate.store.repositories import bulk, horizon
from stargate.store.status import JobStatus


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a listing shows; ``None`` fields do not filter."""

    status: JobStatus | None = None
    queue: str | None = None
    team: str | None = None


def add(session: Session, job: JobRow) -> JobRow:
    """Insert ``job`` and flush so it has its id."""
    session.add(job)
    session.flush()
    return job


def get(session: Session, row_id: int, *, for_update: bool = False) -> JobRow | None:
    """The job with row id ``row_id``; locked until the transaction ends when ``for_update`` (PostgreSQL)."""
    query = select(JobRow).where(JobRow.id == row_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def page(
    session: Session, where: JobFilter, limit: int, before_id: int | None, oldest_first: bool = False
) -> tuple[list[JobRow], int | None]:
    """Up to ``limit`` jobs newest first, older than ``before_id`` when given (``oldest_first``: oldest first, newer
    than ``before_id``, and never past a job still to commit: :mod:`horizon`); and the cursor of the next page."""
    order = JobRow.id.asc() if oldest_first else JobRow.id.desc()
    through = horizon.settled_through(session, "jobs") if oldest_first else None
    query = select(JobRow).order_by(order).limit(limit + 1)
    if where.status is not None:
        query = query.where(JobRow.status == where.status)
    if where.queue is not None:
        query = query.where(JobRow.queue_id == where.queue)
    if where.team is not None:
        query = query.where(JobRow.team_id == where.team)
    if before_id is not None:
        query = query.where(JobRow.id > before_id if oldest_first else JobRow.id < before_id)
    return horizon.cut(list(session.scalars(query)), limit, through)


def held_by_queue_and_cluster(session: Session) -> dict[tuple[str, str], int]:
    """GPUs held by placed or running jobs, per (queue, cluster)."""
    query = (
        select(JobRow.queue_id, JobRow.cluster, func.coalesce(func.sum(JobRow.gpus), 0))
        .where(JobRow.status.in_([JobStatus.PLACED, JobStatus.RUNNING]), JobRow.cluster.is_not(None))
        .group_by(JobRow.queue_id, JobRow.cluster)
    )
    return {(q, c): int(g) for q, c, g in session.execute(query) if c is not None}


def counts_by_queue(session: Session) -> dict[tuple[str, JobStatus], tuple[int, int]]:
    """For each (queue, status) of non-final jobs: the number of jobs and the GPUs they ask for."""
    query = (
        select(JobRow.queue_id, JobRow.status, func.count(), func.coalesce(func.sum(JobRow.gpus), 0))
        .where(JobRow.status.in_([JobStatus.PENDING, JobStatus.PLACED, JobStatus.RUNNING]))
        .group_by(JobRow.queue_id, JobRow.status)
    )
    return {(q, JobStatus(s)): (int(n), int(g)) for q, s, n, g in session.execute(query)}


def pending_reasons_by_queue(session: Session) -> dict[str, dict[str, int]]:
    """For each queue with pending jobs: how many wait for each wait reason (``jobs.wait_reason``, as the scheduler's
    last cycle judged it; ``submitted`` for jobs no cycle has judged yet)."""
    why = func.coalesce(JobRow.wait_reason, JobReason.SUBMITTED.value)
    query = (
        select(JobRow.queue_id, why, func.count())
        .where(JobRow.status == JobStatus.PENDING)
        .group_by(JobRow.queue_id, why)
    )
    found: dict[str, dict[str, int]] = {}
    for queue, reason, n in session.execute(query):
        found.setdefault(queue, {})[reason] = int(n)
    return found


def pending_by_team(session: Session) -> dict[str, int]:
    """Pending jobs per team."""
    query = select(JobRow.team_id, func.count()).where(JobRow.status == JobStatus.PENDING).group_by(JobRow.team_id)
    return {team: int(n) for team, n in session.execute(query)}


def live_by_queue_and_class(session: Session) -> dict[tuple[str, str], int]:
    """Jobs not final yet (pending, placed, running) per (queue, priority class)."""
    live = [JobStatus.PENDING, JobStatus.PLACED, JobStatus.RUNNING]
    query = (
        select(JobRow.queue_id, JobRow.priority_class, func.count())
        .where(JobRow.status.in_(live))
        .group_by(JobRow.queue_id, JobRow.priority_class)
    )
    return {(queue, cls): int(n) for queue, cls, n in session.execute(query)}


def held_gpus_by_cluster(session: Session) -> dict[str, int]:
    """GPUs held by placed and running jobs per cluster."""
    query = (
        select(JobRow.cluster, func.coalesce(func.sum(JobRow.gpus), 0))
        .where(JobRow.status.in_([JobStatus.PLACED, JobStatus.RUNNING]))
        .group_by(JobRow.cluster)
    )
    return {str(cluster): int(n) for cluster, n in session.execute(query)}


class JobState(NamedTuple):
    """A non-final job as the scheduler reads it every cycle: everything but the spec (see :func:`specs`).

    A named tuple: the loop builds thousands each cycle, and a tuple is several times cheaper to make than a frozen
    dataclass."""

    id: int
    queue_id: str
    gpus: int
    gpu_models: list[str]
    priority: int
    preemptible: bool
    submitted_at: datetime
    priority_class: str
    progress_s: float
    status: JobStatus
    attempt: int
    cluster: str | None
    gpu_ids: list[int]
    started_at: datetime | None
    outage_stops: int

    @property
    def public_id(self) -> str:
        """The job's URL-safe id, e.g. ``j-000123``."""
        return format_job_id(self.id)


_STATE_COLUMNS = (
    JobRow.id,
    JobRow.queue_id,
    JobRow.gpus,
    type_coerce(JobRow.gpu_models, Text),
    JobRow.priority,
    JobRow.preemptible,
    type_coerce(JobRow.submitted_at, Text),
    JobRow.priority_class,
    JobRow.progress_s,
    type_coerce(JobRow.status, Text),
    JobRow.attempt,
    JobRow.cluster,
    type_coerce(JobRow.gpu_ids, Text),
    type_coerce(JobRow.started_at, Text),
    JobRow.outage_stops,
)
"""The columns of :class:`JobState`, in its field order; lists, times and the status come raw (see
:func:`json_list`, :func:`raw_time`): the generic type processing per value costs more than the query here."""


def json_list(value: Any) -> list[Any]:
    """A JSON list column read raw: SQLite gives its text (``[]`` for most jobs, decoded without a parser call),
    PostgreSQL's driver gives the decoded list already."""
    if isinstance(value, str):
        return [] if value == "[]" else list(json.loads(value))
    return list(value or [])


def raw_time(value: Any) -> datetime | None:
    """A time column read raw, as an aware UTC time: SQLite gives ISO text, PostgreSQL's driver a naive datetime
    (both stored as naive UTC, see :class:`stargate.store.models.UTCDateTime`)."""
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC)


def states(session: Session, statuses: Sequence[JobStatus]) -> list[JobState]:
    """Every job in one of ``statuses``, oldest first, as plain values (no ORM objects: several times faster for
    thousands of jobs)."""
    query = select(*_STATE_COLUMNS).where(JobRow.status.in_(statuses)).order_by(JobRow.id)
    return [
        JobState(i, q, g, json_list(m), p, pre, _aware(sub), pc, pr, JobStatus(st), a, c, json_list(d), raw_time(t), n)
        for i, q, g, m, p, pre, sub, pc, pr, st, a, c, d, t, n in session.execute(query)
    ]


def _aware(value: Any) -> datetime:
    when = raw_time(value)
    assert when is not None, "submitted_at is never null"
    return when


IN_CHUNK = 5000
"""Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters per statement)."""


def specs(session: Session, row_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The stored specs of these jobs, by row id."""
    ids = sorted(set(row_ids))
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), IN_CHUNK):
        raw = type_coerce(JobRow.spec, Text)  # decoded here: the generic JSON processing costs more per value
        query = select(JobRow.id, raw).where(JobRow.id.in_(ids[start : start + IN_CHUNK]))
        found.update({i: json.loads(spec) if isinstance(spec, str) else spec for i, spec in session.execute(query)})
    return found


def by_idempotency_keys(session: Session, keys: Iterable[str]) -> dict[str, JobRow]:
    """The jobs stored with these scoped idempotency keys (``<token id>:<key>``), by key; missing keys left out."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    query = select(JobRow).where(JobRow.idempotency_key.in_(wanted))
    return {str(job.idempotency_key): job for job in session.scalars(query)}


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert new jobs with one statement and return their row ids, in the order of ``rows`` (PostgreSQL: one
    ``INSERT ... SELECT FROM unnest(...)``, see :mod:`~stargate.store.repositories.bulk`; else multi-row)."""
    if not rows:
        return []
    table = cast(Table, JobRow.__table__)
    if bulk.is_postgres(session) and all(r.keys() == rows[0].keys() for r in rows):
        return [int(row_id) for row_id in bulk.insert(session, table, rows, returning="id")]
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [int(row_id) for row_id in session.execute(statement, list(rows)).scalars()]
