"""Inference services through the API: create (checked against the fleet in force), list, show, delete; team
isolation as for jobs (members and viewers see their own team's services; another team's is a 404).

A service is checked as its replicas' jobs will be (:func:`stargate.server.services.jobs.check` on replica 0:
queue, priority class, GPU models, what the executors can run), plus what is a service's own: every GPU model it may
run on must be in the fleet's catalogue, and ``PORT``, ``STARGATE_SERVICE`` and ``STARGATE_REPLICA`` are the control
plane's to set. Service names are one namespace (a service's URL is ``/services/NAME/``): sending the same spec again
gives the service back; another spec under a taken name is a 409.
"""

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from stargate.domain.services import ServiceSpec
from stargate.engine.replicas import ReplicaState
from stargate.fleetfile.describe import found_text
from stargate.server.auth import Principal
from stargate.server.errors import ConflictError, InvalidError, NotFoundError
from stargate.server.inference.replica_job import PORT_RANGE, RESERVED_ENVIRONMENT, replica_spec
from stargate.server.schemas_services import ReplicaView, ScaleDecisionView, Service, TrafficView
from stargate.server.services import jobs as job_service
from stargate.store import format_job_id
from stargate.store.repositories import services as repo
from stargate.store.service_models import ServiceRow

ACTIVE, DELETING = "active", "deleting"


def check(who: Principal, spec: ServiceSpec, rules: job_service.SubmitRules, now: datetime) -> str:
    """Check ``spec`` against the fleet's rules and the caller's rights (no I/O); the service's team.

    422 for an unknown queue, priority class or GPU model, a reserved environment variable, or replicas no executor
    could run; 403 when the caller may not submit to the queue's team."""
    queue = rules.queues.get(spec.queue)
    if queue is None:
        known = ", ".join(sorted(rules.queues)[:10]) or "none defined"
        raise InvalidError(f"body.queue: found {found_text(spec.queue)}, expected the id of a queue ({known})")
    who.require_write(queue.team)
    for name in RESERVED_ENVIRONMENT:
        if name in spec.environment:
            raise InvalidError(
                f"body.environment.{name}: found a value, expected none: the control plane sets {name} for each "
                "replica (PORT: the loopback port it must listen on)"
            )
    where = "gpu_models" if spec.gpu_models else "profiles"
    for i, model in enumerate(spec.accepted_models()):
        if model not in rules.catalogue:
            shown = ", ".join(sorted(rules.catalogue)[:20])
            field = f"gpu_models[{i}]" if spec.gpu_models else f"profiles[{i}].gpu_model"
            raise InvalidError(
                f"body.{field}: found {found_text(model)}, expected a GPU model of the fleet's catalogue ({shown}); "
                f"every model in {where} is one its replicas may run on"
            )
    if not spec.command and not spec.image:
        raise InvalidError("body.command: found nothing, expected a shell command (or body.image for containers)")
    try:
        replica = replica_spec(spec, 0, PORT_RANGE[0])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidError(
            f"body.{where or 'spec'}: {first.get('msg', 'invalid')} (in its replicas' job spec, which adds PORT, "
            "STARGATE_SERVICE and STARGATE_REPLICA to the environment)"
        ) from None
    job_service.check(who, replica, rules, now)
    return queue.team


def create(session: Session, who: Principal, spec: ServiceSpec, team: str, now: datetime) -> tuple[ServiceRow, bool]:
    """Store a checked service (see :func:`check`); (its row, True) when new, (the stored one, False) when the same
    spec was stored already. 409 for a name another spec (or a service being deleted) holds."""
    data = spec.model_dump(mode="json")
    found = repo.get(session, spec.name, for_update=True)
    if found is not None:
        if found.team_id != team and not (who.is_admin or who.team == found.team_id):
            raise ConflictError(f"body.name: found {found_text(spec.name)}, which another team's service has")
        if found.state == DELETING:
            raise ConflictError(
                f"service {found_text(spec.name)} is being deleted (its replicas drain); send it again once it is gone"
            )
        if found.spec != data:
            raise ConflictError(
                f"service {found_text(spec.name)} exists with another spec; delete it first "
                f"(stargate service {spec.name} --delete) or choose another name"
            )
        return found, False
    decision = {"at": now.isoformat(), "from": 0, "to": spec.min_replicas, "wanted": spec.min_replicas}
    decision["reason"] = f"created: min_replicas {spec.min_replicas}"
    row = ServiceRow(
        name=spec.name,
        team_id=team,
        queue_id=spec.queue,
        spec=data,
        state=ACTIVE,
        desired_replicas=spec.min_replicas,
        current_replicas=0,
        next_number=0,
        decisions=[decision],
        stats={},
        problem="",
        created_at=now,
        created_by=who.actor,
        updated_at=now,
    )
    return repo.add(session, row), True


def get_visible(session: Session, who: Principal, name: str, *, for_update: bool = False) -> ServiceRow:
    """The service ``name`` if the caller may see it; 404 otherwise (another team's is not revealed)."""
    row = repo.get(session, name, for_update=for_update) if len(name) <= 63 else None
    if row is None or not (who.is_admin or row.team_id == who.team):
        raise NotFoundError(f"no service {found_text(name)}")
    return row


def listed(session: Session, who: Principal) -> list[Service]:
    """Every service the caller may see, by name."""
    rows = repo.listed(session, None if who.is_admin else who.team or "")
    replicas = repo.replicas(session, [r.name for r in rows])
    return [to_api(row, [r for r in replicas if r.service == row.name]) for row in rows]


def show(session: Session, who: Principal, name: str) -> Service:
    """The service ``name`` with its replicas (404 when the caller may not see it)."""
    row = get_visible(session, who, name)
    return to_api(row, repo.replicas(session, [row.name]))


def delete(session: Session, who: Principal, name: str, now: datetime) -> Service:
    """Mark the service deleted: the scheduler drains its replicas, then it goes (idempotent)."""
    row = get_visible(session, who, name, for_update=True)
    who.require_write(row.team_id)
    if row.state != DELETING:
        row.state, row.updated_at = DELETING, now
        session.flush()
    return to_api(row, repo.replicas(session, [row.name]))


def to_api(row: ServiceRow, replicas: list[repo.ReplicaJob]) -> Service:
    """The API view of a service row and its replicas."""
    stats: dict[str, Any] = dict(row.stats or {})
    return Service(
        name=row.name,
        team=row.team_id,
        queue=row.queue_id,
        state=DELETING if row.state == DELETING else ACTIVE,
        url=f"/services/{row.name}/",
        desired_replicas=row.desired_replicas,
        ready_replicas=sum(1 for r in replicas if r.state == ReplicaState.READY),
        replicas=[
            ReplicaView(
                number=r.number,
                job=format_job_id(r.job_id),
                state=ReplicaState(r.state),
                since=r.since,
                port=r.port,
                job_status=r.status,
                cluster=r.cluster,
            )
            for r in replicas
        ],
        decisions=[ScaleDecisionView.model_validate(d) for d in row.decisions or []],
        traffic=TrafficView.model_validate(stats) if "window_s" in stats else None,
        problem=row.problem,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        spec=ServiceSpec.model_validate(row.spec),
    )
