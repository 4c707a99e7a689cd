"""The one way a job's status changes: :func:`transition` (one ORM row) or :func:`transition_many` (a batch, with
bulk statements), both of which check every edge and write the event rows in the caller's transaction."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Table, any_, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from stargate.domain.reasons import JobReason
from stargate.store.models import JobEventRow, JobRow, fit_actor, format_job_id
from stargate.store.repositories import bulk
from stargate.store.repositories import jobs as job_repo
from stargate.store.status import JobStatus, is_legal


class IllegalTransitionError(ValueError):
    """A status change the job state machine does not allow (e.g. ``succeeded`` → ``running``)."""

    def __init__(self, job: JobRow, target: JobStatus) -> None:
        self.job_id = job.public_id
        self.source = JobStatus(job.status)
        self.target = target
        allowed = ", ".join(sorted(s.value for s in _next(self.source))) or "nothing (it is final)"
        super().__init__(
            f"job {self.job_id}: cannot move from '{self.source.value}' to '{target.value}'; "
            f"from '{self.source.value}' it may move to {allowed}"
        )


def _next(source: JobStatus) -> list[JobStatus]:
    return [s for s in JobStatus if is_legal(source, s)]


def transition(
    session: Session,
    job: JobRow,
    to: JobStatus,
    reason: JobReason,
    actor: str,
    at: datetime | None = None,
    detail: str = "",
) -> JobEventRow:
    """Move ``job`` to status ``to`` inside the caller's transaction and record who, when, from, to and why (the
    ``reason`` code and its free-text ``detail``, e.g. ``placed`` and ``on lab-a (8 GPUs)``).

    Side effects kept with the status: entering ``running`` sets ``started_at`` (first time only); entering a final
    status sets ``finished_at``; going back to ``pending`` (preemption, cluster failure) increases ``attempt`` and
    clears the placement. Raises :class:`IllegalTransitionError` for a move the state machine forbids, ValueError
    for a reason that is not a :class:`JobReason`; nothing is written then. The caller commits (or rolls back) the
    transaction.
    """
    source = JobStatus(job.status)
    if not is_legal(source, to):
        raise IllegalTransitionError(job, to)
    code = JobReason(reason)
    when = at or datetime.now(UTC)
    job.status = to
    job.reason = code
    job.detail = detail
    if to is JobStatus.RUNNING and job.started_at is None:
        job.started_at = when
    if to.is_final():
        job.finished_at = when
    if to is JobStatus.PENDING:
        job.attempt += 1
        job.cluster = None
        job.gpu_ids = []
        job.price_usd_per_gpu_hour = None
        job.contract_id = None
    event = JobEventRow(
        job_id=job.id,
        at=when,
        actor=fit_actor(actor),
        from_status=source.value,
        to_status=to.value,
        reason=code,
        detail=detail,
    )
    session.add(event)
    return event


def record_submission(session: Session, job: JobRow, actor: str, at: datetime) -> JobEventRow:
    """Write the first event of a new (already flushed) job: from nothing to ``pending``."""
    event = JobEventRow(
        job_id=job.id,
        at=at,
        actor=fit_actor(actor),
        from_status=None,
        to_status=job.status,
        reason=JobReason.SUBMITTED,
        detail="",
    )
    session.add(event)
    return event


@dataclass(frozen=True, slots=True)
class Current:
    """Where a job stands inside the writing transaction (read with :func:`lock_current`): what a batch
    transition needs to check its edge and to apply the side effects of :func:`transition`."""

    id: int
    status: JobStatus
    attempt: int
    started_at: datetime | None

    @property
    def public_id(self) -> str:
        """The job's URL-safe id, e.g. ``j-000123``."""
        return format_job_id(self.id)


@dataclass(frozen=True, slots=True)
class Move:
    """One status change of a batch: job ``job`` (as read in this transaction) to ``to`` because of ``reason``, with
    the free-text ``detail``; ``values`` are further columns written with it (e.g. ``cluster``, ``gpu_ids``,
    ``progress_s``, ``exit_code``)."""

    job: Current
    to: JobStatus
    reason: JobReason
    detail: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The reason and detail on one line, e.g. ``start_failed: on local executor after 3 tries: ...``."""
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)


class BatchTransitionError(IllegalTransitionError):
    """A batch holds an illegal move; nothing of the batch was written."""

    def __init__(self, current: Current, target: JobStatus) -> None:
        self.job_id = current.public_id
        self.source = current.status
        self.target = target
        allowed = ", ".join(sorted(s.value for s in _next(self.source))) or "nothing (it is final)"
        ValueError.__init__(
            self,
            f"job {self.job_id}: cannot move from '{self.source.value}' to '{target.value}'; "
            f"from '{self.source.value}' it may move to {allowed}",
        )


_LOCK_COLUMNS = (JobRow.id, JobRow.status, JobRow.attempt, JobRow.started_at)
_SIDE_COLUMNS = frozenset({"status", "reason", "detail", "attempt", "started_at", "finished_at", "id"})
_CLEARED_ON_REQUEUE: dict[str, Any] = {"cluster": None, "gpu_ids": [], "price_usd_per_gpu_hour": None}


def lock_current(session: Session, row_ids: Iterable[int]) -> dict[int, Current]:
    """The status, attempt and start time of these jobs, by row id, locked until the transaction ends
    (``SELECT ... FOR UPDATE`` on PostgreSQL, in id order, with the ids as one array; on SQLite the write
    transaction already excludes other writers). Plain column values: no ORM objects, so thousands of rows read
    fast."""
    ids = sorted(set(row_ids))
    found: dict[int, Current] = {}
    if not ids:
        return found
    if bulk.is_postgres(session):
        wanted = any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))
        chunks = [select(*_LOCK_COLUMNS).where(JobRow.id == wanted).order_by(JobRow.id).with_for_update()]
    else:
        chunks = [
            select(*_LOCK_COLUMNS).where(JobRow.id.in_(ids[start : start + _CHUNK]))
            for start in range(0, len(ids), _CHUNK)
        ]
    for query in chunks:
        for row_id, status, attempt, started in session.execute(query):
            found[row_id] = Current(row_id, JobStatus(status), attempt, started)
    return found


_CHUNK = 5000
"""Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters per statement)."""


def transition_many(session: Session, moves: Sequence[Move], actor: str, at: datetime) -> int:
    """Apply many status changes inside the caller's transaction with bulk statements: one ``UPDATE`` executed
    for many rows (per set of written columns) and one multi-row ``INSERT`` of their event rows.

    The same rules as :func:`transition`, move by move: every edge and reason is checked first, and one illegal move
    raises :class:`BatchTransitionError` (a reason that is not a :class:`JobReason`, ValueError) before anything is
    written; entering ``running`` sets ``started_at`` (first time
    only), a final status sets ``finished_at``, going back to ``pending`` increases ``attempt`` and clears the
    placement. Each job may appear once. Returns the number of moves applied. The caller commits.
    """
    seen: set[int] = set()
    for move in moves:
        if not is_legal(move.job.status, move.to):
            raise BatchTransitionError(move.job, move.to)
        JobReason(move.reason)  # ValueError for anything but a code
        if move.job.id in seen:
            raise ValueError(f"job {move.job.public_id} appears twice in one batch transition")
        if _SIDE_COLUMNS & set(move.values):
            raise ValueError(f"job {move.job.public_id}: status columns are set by the transition itself")
        seen.add(move.job.id)
    if not moves:
        return 0
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for move in moves:
        params = _row_update(move, at)
        groups.setdefault(tuple(sorted(params)), []).append(params)
    table = cast(Table, JobRow.__table__)
    postgres = bulk.is_postgres(session)
    for rows in groups.values():  # the SET clause comes from the parameter names, the same within a group
        if postgres:  # one UPDATE ... FROM unnest(...) per group
            bulk.update(session, table, {"b_id": "id"}, rows)
        else:
            session.execute(update(table).where(table.c.id == bindparam("b_id")), rows)
    events = [
        {
            "job_id": m.job.id,
            "at": at,
            "actor": actor,
            "from_status": m.job.status.value,
            "to_status": m.to.value,
            "reason": str(m.reason),
            "detail": m.detail,
        }
        for m in moves
    ]
    _insert_events(session, events)
    return len(moves)


def _insert_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Insert event rows: one ``INSERT ... SELECT FROM unnest(...)`` on PostgreSQL, a multi-row insert elsewhere."""
    table = cast(Table, JobEventRow.__table__)
    if bulk.is_postgres(session):
        bulk.insert(session, table, events)
    else:
        session.execute(insert(table), events)


def _row_update(move: Move, at: datetime) -> dict[str, Any]:
    """The column values one move writes (``b_id`` names the row)."""
    params: dict[str, Any] = {"b_id": move.job.id, "status": move.to, "reason": str(move.reason), "detail": move.detail}
    if move.to is JobStatus.PENDING:
        params.update(_CLEARED_ON_REQUEUE, contract_id=None, attempt=move.job.attempt + 1)
    params.update(move.values)
    if move.to is JobStatus.RUNNING and move.job.started_at is None:
        params["started_at"] = at
    if move.to.is_final():
        params["finished_at"] = at
    return params


def insert_submitted(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert new pending jobs (the column values of each, ``submitted_by`` and ``submitted_at`` included) and
    their first events (from nothing to ``pending``, by ``submitted_by`` at ``submitted_at``); their row ids, in the
    order of ``rows``. On PostgreSQL one statement writes both (a ``WITH`` whose insert of the jobs feeds the insert
    of their events); elsewhere a multi-row insert of each."""
    if not rows:
        return []
    if not (bulk.is_postgres(session) and all(r.keys() == rows[0].keys() for r in rows)):
        ids = job_repo.insert_many(session, rows)
        record_submissions(session, ids, [r["submitted_by"] for r in rows], [r["submitted_at"] for r in rows])
        return ids
    jobs, params = bulk.insert_select(cast(Table, JobRow.__table__), rows)
    sql = (
        f"WITH new AS ({jobs} RETURNING id, submitted_by, submitted_at), events AS (INSERT INTO job_events "
        "(job_id, at, actor, from_status, to_status, reason, detail) SELECT id, submitted_at, submitted_by, NULL, "
        ":pending, :submitted, '' FROM new) SELECT id FROM new"
    )
    codes = {"pending": JobStatus.PENDING.value, "submitted": JobReason.SUBMITTED.value}
    found = session.execute(text(sql), params | codes)
    return sorted(int(row_id) for row_id in found.scalars())


def record_submissions(
    session: Session, job_ids: Sequence[int], actor_of: Sequence[str], at_of: Sequence[datetime]
) -> None:
    """Write the first event of many new jobs at once (one multi-row statement): from nothing to ``pending``."""
    if job_ids:
        rows = [
            {
                "job_id": j,
                "at": at,
                "actor": fit_actor(actor),
                "from_status": None,
                "to_status": JobStatus.PENDING.value,
            }
            | {"reason": JobReason.SUBMITTED.value, "detail": ""}
            for j, actor, at in zip(job_ids, actor_of, at_of, strict=True)
        ]
        _insert_events(session, rows)
