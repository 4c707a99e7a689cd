"""Clusters' observed health: the status the health step last saw for each cluster (``cluster_health``) and the log
of its changes (``cluster_events``), written together in the caller's transaction."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from stargate.store.models import ClusterEventRow, ClusterHealthRow


@dataclass(frozen=True, slots=True)
class Observed:
    """One cluster's observed status: through which executor, why, since when."""

    cluster: str
    executor: str
    status: str
    reason: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """A cluster whose observed status changes: from, to, why (``executor``: whose check saw it)."""

    cluster: str
    executor: str
    from_status: str
    to_status: str
    reason: str


def observed(session: Session) -> dict[str, Observed]:
    """Every stored observed status, by cluster id."""
    rows = session.execute(
        select(
            ClusterHealthRow.cluster,
            ClusterHealthRow.executor,
            ClusterHealthRow.status,
            ClusterHealthRow.reason,
            ClusterHealthRow.since,
        )
    )
    return {r[0]: Observed(*r) for r in rows}


def not_up(session: Session) -> dict[str, Observed]:
    """Every cluster observed other than ``up``, by cluster id (what the scheduler overlays on the fleet; usually
    nothing, so one small query)."""
    query = select(
        ClusterHealthRow.cluster,
        ClusterHealthRow.executor,
        ClusterHealthRow.status,
        ClusterHealthRow.reason,
        ClusterHealthRow.since,
    ).where(ClusterHealthRow.status != "up")
    return {r[0]: Observed(*r) for r in session.execute(query)}


def record(session: Session, changes: Sequence[Change], at: datetime) -> None:
    """Store each cluster's new status (since ``at``) and one event per change, in the caller's transaction."""
    if not changes:
        return
    clusters = sorted({c.cluster for c in changes})
    session.execute(delete(ClusterHealthRow).where(ClusterHealthRow.cluster.in_(clusters)))
    latest = {c.cluster: c for c in changes}
    session.add_all(
        ClusterHealthRow(cluster=c.cluster, executor=c.executor, status=c.to_status, reason=c.reason, since=at)
        for c in latest.values()
    )
    session.add_all(
        ClusterEventRow(
            at=at,
            cluster=c.cluster,
            executor=c.executor,
            from_status=c.from_status,
            to_status=c.to_status,
            reason=c.reason,
        )
        for c in changes
    )


def events(
    session: Session, limit: int, cluster: str | None = None, before_id: int | None = None
) -> list[ClusterEventRow]:
    """Up to ``limit`` cluster events, newest first (of ``cluster`` only, and older than ``before_id``, when
    given)."""
    query = select(ClusterEventRow).order_by(ClusterEventRow.id.desc()).limit(limit)
    if cluster is not None:
        query = query.where(ClusterEventRow.cluster == cluster)
    if before_id is not None:
        query = query.where(ClusterEventRow.id < before_id)
    return list(session.scalars(query))


def last_event_id(session: Session) -> int:
    """The id of the newest cluster event (0 when there is none): it moves whenever an observed status changes."""
    return int(session.scalar(select(func.max(ClusterEventRow.id))) or 0)
