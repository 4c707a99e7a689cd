"""The one way a job's status changes: :func:`transition`, which also writes the event row."""

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from stargate.store.models import JobEventRow, JobRow
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
    reason: str,
    actor: str,
    at: datetime | None = None,
) -> JobEventRow:
    """Move ``job`` to status ``to`` inside the caller's transaction and record who, when, from, to and why.

    Side effects kept with the status: entering ``running`` sets ``started_at`` (first time only); entering a final
    status sets ``finished_at``; going back to ``pending`` (preemption, cluster failure) increases ``attempt`` and
    clears the placement. Raises :class:`IllegalTransitionError` for a move the state machine forbids; nothing is
    written then. The caller commits (or rolls back) the transaction.
    """
    source = JobStatus(job.status)
    if not is_legal(source, to):
        raise IllegalTransitionError(job, to)
    when = at or datetime.now(UTC)
    job.status = to
    job.reason = reason
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
        job_id=job.id, at=when, actor=actor, from_status=source.value, to_status=to.value, reason=reason
    )
    session.add(event)
    return event


def record_submission(session: Session, job: JobRow, actor: str, at: datetime) -> JobEventRow:
    """Write the first event of a new (already flushed) job: from nothing to ``pending``."""
    event = JobEventRow(job_id=job.id, at=at, actor=actor, from_status=None, to_status=job.status, reason="submitted")
    session.add(event)
    return event
