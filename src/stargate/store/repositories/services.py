"""Inference services, their replicas and their measured traffic (see :mod:`stargate.store.service_models`).

Services are few (one per deployed model, not one per request), so plain ORM statements do; every read the proxy
or the scheduler makes each fraction of a second is one small query over a few rows.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from stargate.store.models import JobRow
from stargate.store.repositories import bulk
from stargate.store.service_models import ServiceReplicaRow, ServiceRow, ServiceTrafficRow
from stargate.store.status import JobStatus


@dataclass(frozen=True, slots=True)
class ReplicaJob:
    """A replica with what its job says now: status, cluster, reason and detail of its last change, exit code."""

    service: str
    number: int
    job_id: int
    state: str
    port: int
    since: datetime
    status: JobStatus
    cluster: str | None
    reason: str
    detail: str


def get(session: Session, name: str, *, for_update: bool = False) -> ServiceRow | None:
    """The service ``name``, or None (locked until the transaction ends with ``for_update``, on PostgreSQL)."""
    query = select(ServiceRow).where(ServiceRow.name == name)
    if for_update and bulk.is_postgres(session):
        query = query.with_for_update()
    return session.scalars(query).first()


def add(session: Session, row: ServiceRow) -> ServiceRow:
    """Store a new service (flushed: a name taken meanwhile raises ``IntegrityError`` here)."""
    session.add(row)
    session.flush()
    return row


def listed(session: Session, team: str | None = None) -> list[ServiceRow]:
    """Every service (of ``team`` when given), by name."""
    query = select(ServiceRow).order_by(ServiceRow.name)
    if team is not None:
        query = query.where(ServiceRow.team_id == team)
    return list(session.scalars(query))


def replicas(session: Session, names: Iterable[str] | None = None) -> list[ReplicaJob]:
    """The replicas of these services (every service's with None) with their jobs, by service and number."""
    query = (
        select(
            ServiceReplicaRow.service,
            ServiceReplicaRow.number,
            ServiceReplicaRow.job_id,
            ServiceReplicaRow.state,
            ServiceReplicaRow.port,
            ServiceReplicaRow.since,
            JobRow.status,
            JobRow.cluster,
            JobRow.reason,
            JobRow.detail,
        )
        .join(JobRow, JobRow.id == ServiceReplicaRow.job_id)
        .order_by(ServiceReplicaRow.service, ServiceReplicaRow.number)
    )
    if names is not None:
        query = query.where(ServiceReplicaRow.service.in_(sorted(set(names))))
    return [
        ReplicaJob(s, n, job, state, port, since, JobStatus(status), cluster, reason, detail)
        for s, n, job, state, port, since, status, cluster, reason, detail in session.execute(query)
    ]


def routes(session: Session) -> tuple[list[tuple[str, str, str, dict[str, Any]]], list[tuple[str, int, str, int]]]:
    """What a proxy needs to route: (name, team, state, spec) of every service, and (service, number, state, port)
    of every replica (two small queries)."""
    services = session.execute(select(ServiceRow.name, ServiceRow.team_id, ServiceRow.state, ServiceRow.spec))
    found = session.execute(
        select(ServiceReplicaRow.service, ServiceReplicaRow.number, ServiceReplicaRow.state, ServiceReplicaRow.port)
    )
    return [tuple(r) for r in services], [tuple(r) for r in found]  # type: ignore[misc]


def add_replicas(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Store new replicas (their jobs were inserted in the same transaction)."""
    if rows:
        session.execute(ServiceReplicaRow.__table__.insert(), list(rows))  # type: ignore[attr-defined]


def set_replica_states(session: Session, changes: Sequence[tuple[str, int, str, datetime]]) -> None:
    """Set (service, number) → state since a time, for each change."""
    for service, number, state, since in changes:
        session.execute(
            update(ServiceReplicaRow)
            .where(ServiceReplicaRow.service == service, ServiceReplicaRow.number == number)
            .values(state=state, since=since)
        )


def remove_replicas(session: Session, gone: Sequence[tuple[str, int]]) -> None:
    """Delete these replicas' rows (their jobs stay, as jobs)."""
    for service, number in gone:
        session.execute(
            delete(ServiceReplicaRow).where(ServiceReplicaRow.service == service, ServiceReplicaRow.number == number)
        )


def update_service(session: Session, name: str, values: dict[str, Any]) -> None:
    """Write these columns of service ``name`` (the leader's: counts, numbers, decisions, stats, problem)."""
    session.execute(update(ServiceRow).where(ServiceRow.name == name).values(**values))


def remove(session: Session, name: str) -> None:
    """Delete the service ``name`` with its replicas' and traffic rows."""
    session.execute(delete(ServiceTrafficRow).where(ServiceTrafficRow.service == name))
    session.execute(delete(ServiceReplicaRow).where(ServiceReplicaRow.service == name))
    session.execute(delete(ServiceRow).where(ServiceRow.name == name))


def traffic(session: Session) -> list[tuple[str, str, datetime, datetime, dict[str, Any]]]:
    """(service, process, started_at, updated_at, counters) of every traffic row."""
    query = select(
        ServiceTrafficRow.service,
        ServiceTrafficRow.process,
        ServiceTrafficRow.started_at,
        ServiceTrafficRow.updated_at,
        ServiceTrafficRow.counters,
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in session.execute(query)]


def save_traffic(session: Session, process: str, started_at: datetime, at: datetime, rows: dict[str, Any]) -> None:
    """Write this process's counters of each service in ``rows`` (service → counters), replacing its older ones;
    a service deleted meanwhile is skipped."""
    known = set(session.scalars(select(ServiceRow.name).where(ServiceRow.name.in_(sorted(rows)))))
    values = [
        {"service": s, "process": process, "started_at": started_at, "updated_at": at, "counters": c}
        for s, c in sorted(rows.items())
        if s in known
    ]
    if not values:
        return
    insert = pg_insert if bulk.is_postgres(session) else sqlite_insert
    statement = insert(ServiceTrafficRow).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["service", "process"],
        set_={"updated_at": statement.excluded.updated_at, "counters": statement.excluded.counters},
    )
    session.execute(statement)


def forget_traffic(session: Session, before: datetime) -> None:
    """Delete the traffic rows not updated since ``before`` (of processes gone for good)."""
    session.execute(delete(ServiceTrafficRow).where(ServiceTrafficRow.updated_at < before))
