"""Jobs: submit (validated against the fleet in force), look up, list, cancel; team isolation applied here."""

from datetime import datetime

from sqlalchemy.orm import Session

from stargate.domain import Fleet, JobKind, JobSpec
from stargate.server.auth import Principal
from stargate.server.errors import BadRequestError, ConflictError, ForbiddenError, InvalidError, NotFoundError
from stargate.server.schemas import Job, JobPage
from stargate.store import JobRow, JobStatus, parse_job_id, record_submission, transition
from stargate.store.repositories import jobs as job_repo

MAX_PAGE = 500


def submit(session: Session, who: Principal, spec: JobSpec, fleet: Fleet, now: datetime) -> JobRow:
    """Check ``spec`` against the fleet and the caller's rights, then store it as a pending job."""
    queue = next((q for q in fleet.queues if q.id == spec.queue), None)
    if queue is None:
        known = ", ".join(sorted(q.id for q in fleet.queues)[:10]) or "none defined"
        raise InvalidError(f"body.queue: found '{spec.queue}', expected the id of a queue ({known})")
    who.require_write(queue.team)
    priority_class, priority = _priority(spec, queue.priority_classes, queue.default_priority_class, fleet)
    _check_models(spec, fleet)
    if not spec.command and not spec.image:
        raise InvalidError("body.command: found nothing, expected a shell command (or body.image for containers)")
    job = JobRow(
        name=spec.name,
        queue_id=queue.id,
        team_id=queue.team,
        kind=spec.kind.value,
        gpus=spec.gpus,
        gpu_models=list(spec.gpu_models),
        priority_class=priority_class,
        priority=priority,
        preemptible=spec.preemptible,
        spec=spec.model_dump(mode="json"),
        status=JobStatus.PENDING,
        reason="submitted",
        attempt=0,
        progress_s=0.0,
        submitted_by=who.actor,
        submitted_at=now,
        gpu_ids=[],
    )
    job_repo.add(session, job)
    record_submission(session, job, who.actor, now)
    return job


def _priority(spec: JobSpec, allowed: list[str], default: str | None, fleet: Fleet) -> tuple[str, int]:
    values = {p.name: p.value for p in fleet.priority_classes}
    usable = [n for n in values if not allowed or n in allowed]
    name = spec.priority_class or default or min(usable, key=lambda n: values[n], default=None)
    if name is None or name not in usable:
        shown = ", ".join(usable) or "none defined"
        raise InvalidError(f"body.priority_class: found '{name}', expected one the queue allows ({shown})")
    return name, values[name]


def _check_models(spec: JobSpec, fleet: Fleet) -> None:
    catalogue = fleet.catalogue()
    for i, model in enumerate(spec.gpu_models):
        if model not in catalogue:
            shown = ", ".join(sorted(catalogue))
            raise InvalidError(f"body.gpu_models[{i}]: found '{model}', expected a GPU model ({shown})")


def get_visible(session: Session, who: Principal, public_id: str, *, for_update: bool = False) -> JobRow:
    """The job ``public_id`` if the caller may see it; 404 otherwise (other teams' jobs are not revealed)."""
    row_id = parse_job_id(public_id)
    job = job_repo.get(session, row_id, for_update=for_update) if row_id is not None else None
    if job is None or not (who.is_admin or job.team_id == who.team):
        raise NotFoundError(f"no job '{public_id}'")
    return job


def list_page(
    session: Session,
    who: Principal,
    where: job_repo.JobFilter,
    limit: int,
    cursor: str | None,
) -> JobPage:
    """A page of jobs newest first, limited to the caller's team unless it is an admin."""
    if not who.is_admin:
        if where.team is not None and where.team != who.team:
            raise ForbiddenError(f"token '{who.name}' may list only team '{who.team}' jobs, not team '{where.team}'")
        where = job_repo.JobFilter(status=where.status, queue=where.queue, team=who.team or "")
    before = _cursor(cursor)
    rows, next_id = job_repo.page(session, where, min(limit, MAX_PAGE), before)
    return JobPage(items=[to_api(j) for j in rows], next_cursor=str(next_id) if next_id is not None else None)


def _cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise BadRequestError(f"cursor: found '{cursor[:40]}', expected a value from a previous page's next_cursor")
    return int(cursor)


def cancel(session: Session, who: Principal, public_id: str, now: datetime) -> JobRow:
    """Cancel a job that is not final yet; its run, if any, is stopped by the scheduler loop."""
    job = get_visible(session, who, public_id, for_update=True)
    who.require_write(job.team_id)
    if JobStatus(job.status).is_final():
        raise ConflictError(f"job {public_id} is already {job.status}; only pending, placed or running jobs cancel")
    transition(session, job, JobStatus.CANCELLED, f"cancelled by {who.actor}", who.actor, now)
    return job


def to_api(job: JobRow) -> Job:
    """The API view of a job row."""
    return Job(
        id=job.public_id,
        name=job.name,
        queue=job.queue_id,
        team=job.team_id,
        kind=JobKind(job.kind),
        gpus=job.gpus,
        gpu_models=list(job.gpu_models),
        priority_class=job.priority_class,
        status=JobStatus(job.status),
        reason=job.reason,
        attempt=job.attempt,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        cluster=job.cluster,
        gpu_ids=list(job.gpu_ids),
        exit_code=job.exit_code,
        spec=JobSpec.model_validate(job.spec),
    )
