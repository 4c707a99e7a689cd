"""Queues and teams as the API lists them, with live job counts."""

from collections.abc import Mapping

from sqlalchemy.orm import Session

from stargate.server.schemas import Queue, Team
from stargate.store import JobStatus
from stargate.store.repositories import jobs as job_repo
from stargate.store.repositories import teams as team_repo


def list_queues(session: Session, model_of: Mapping[str, str]) -> list[Queue]:
    """Every queue with its pending jobs (and why they wait), placed-or-running jobs and the GPUs those hold, by GPU
    model (``model_of``: cluster → its GPU model in the fleet in force; a cluster no longer there counts as
    ``unknown``)."""
    counts = job_repo.counts_by_queue(session)
    reasons = job_repo.pending_reasons_by_queue(session)
    held: dict[str, dict[str, int]] = {}
    for (queue, cluster), gpus in job_repo.held_by_queue_and_cluster(session).items():
        by_model = held.setdefault(queue, {})
        model = model_of.get(cluster, "unknown")
        by_model[model] = by_model.get(model, 0) + gpus
    out = []
    for q in team_repo.list_queues(session):
        pending = counts.get((q.id, JobStatus.PENDING), (0, 0))
        placed = counts.get((q.id, JobStatus.PLACED), (0, 0))
        running = counts.get((q.id, JobStatus.RUNNING), (0, 0))
        out.append(
            Queue(
                id=q.id,
                team=q.team_id,
                cohort=q.cohort,
                quotas=list(q.quotas),
                pending_jobs=pending[0],
                pending_gpus=pending[1],
                pending_reasons=dict(sorted(reasons.get(q.id, {}).items(), key=lambda kv: (-kv[1], kv[0]))),
                running_jobs=placed[0] + running[0],
                running_gpus=placed[1] + running[1],
                held_by_model=dict(sorted(held.get(q.id, {}).items())),
            )
        )
    return out


def list_teams(session: Session) -> list[Team]:
    """Every team with the ids of its queues."""
    queues = team_repo.list_queues(session)
    return [
        Team(id=t.id, name=t.name, queues=[q.id for q in queues if q.team_id == t.id])
        for t in team_repo.list_teams(session)
    ]
