"""Clusters' observed health: the status the health step last saw for each cluster (``cluster_health``) and the log
of its changes (``cluster_events``), written together in the caller's transaction; the failing streak of each
executor whose engine's checks fail now (``executor_checks``: :func:`streaks`, :func:`keep_streaks`,
:func:`clear_streaks`, the next one by the pure :meth:`Streak.failed`); the log's retention
(:func:`prune_cluster_events`, by the pure rule :func:`expired`)."""

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from stargate.store.database import Database
from stargate.store.health_models import ExecutorCheckRow
from stargate.store.models import ClusterEventRow, ClusterHealthRow

KEEP_DAYS = 90.0
"""How many days of cluster events :func:`prune_cluster_events` keeps unless told otherwise."""

PRUNE_BATCH = 5000
"""Most cluster events one pruning statement deletes (one transaction each, given a database)."""


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


@dataclass(frozen=True, slots=True)
class Streak:
    """An executor whose engine's health checks fail now: since when (its first failed check), how many failed in a
    row, what the last one found (one line), when it was made, and whether the engine did not answer (else: it
    answered with every node failed)."""

    executor: str
    since: datetime
    checks: int
    last_error: str
    checked_at: datetime
    unreachable: bool

    @staticmethod
    def failed(
        before: "Streak | None", executor: str, since: datetime, at: datetime, error: str, unreachable: bool
    ) -> "Streak":
        """The streak after one more failed check made at ``at`` (``before``: the streak so far, None when the
        last check did not fail; ``since``: when the streak began, as the health step judges it). Pure."""
        checks = before.checks + 1 if before is not None else 1
        return Streak(executor, since, checks, error, at, unreachable)


def streaks(session: Session) -> dict[str, Streak]:
    """Every executor's failing streak, by executor id (usually none: one small query)."""
    query = select(
        ExecutorCheckRow.executor,
        ExecutorCheckRow.failing_since,
        ExecutorCheckRow.failed_checks,
        ExecutorCheckRow.last_error,
        ExecutorCheckRow.checked_at,
        ExecutorCheckRow.unreachable,
    )
    return {r[0]: Streak(*r) for r in session.execute(query)}


def keep_streaks(session: Session, found: Iterable[Streak]) -> None:
    """Store these streaks (each replacing its executor's), in the caller's transaction."""
    rows = {s.executor: s for s in found}
    if not rows:
        return
    session.execute(delete(ExecutorCheckRow).where(ExecutorCheckRow.executor.in_(sorted(rows))))
    session.add_all(
        ExecutorCheckRow(
            executor=s.executor,
            failing_since=s.since,
            failed_checks=s.checks,
            last_error=s.last_error,
            checked_at=s.checked_at,
            unreachable=s.unreachable,
        )
        for s in rows.values()
    )


def clear_streaks(session: Session, executors: Iterable[str]) -> None:
    """Forget the failing streaks of these executors (their check did not fail), in the caller's transaction."""
    gone = sorted(set(executors))
    if gone:
        session.execute(delete(ExecutorCheckRow).where(ExecutorCheckRow.executor.in_(gone)))


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


def expired(
    events: Iterable[tuple[int, str, datetime]], latest: Mapping[str, int], now: datetime, keep_days: float
) -> list[int]:
    """Which of ``events`` (id, cluster, at) to delete: those older than ``keep_days`` days at ``now``, except each
    cluster's latest event (``latest``: the newest event id of each cluster), kept however old, so the log still
    ends in the cluster's current observed status and says since when. An event is deleted only when a newer one of
    its cluster is known. Pure; ``keep_days`` must be 0 or more (ValueError otherwise)."""
    if not (math.isfinite(keep_days) and keep_days >= 0):
        raise ValueError(f"keep_days: found {keep_days!r}; expected a number of days, 0 or more")
    cutoff = now - timedelta(days=keep_days)
    return [i for i, cluster, at in events if at < cutoff and i < latest.get(cluster, i)]


def prune_cluster_events(session_or_db: Session | Database, now: datetime, keep_days: float = KEEP_DAYS) -> int:
    """Delete the cluster events older than ``keep_days`` days at ``now``, but each cluster's latest (see
    :func:`expired`); returns how many were deleted. Given a session, in the caller's transaction; given a database,
    in write transactions of at most :data:`PRUNE_BATCH` events each, so pruning a long history never holds other
    writers up for long."""
    expired((), {}, now, keep_days)  # a bad keep_days fails before anything is read
    if isinstance(session_or_db, Session):
        session = session_or_db
        return _prune(lambda: nullcontext(session), now, keep_days)
    return _prune(session_or_db.write, now, keep_days)


def _prune(transaction: Callable[[], AbstractContextManager[Session]], now: datetime, keep_days: float) -> int:
    """:func:`prune_cluster_events` with each batch in ``transaction()``: the events older than the cut-off read in
    id order, a batch at a time, and those :func:`expired` names deleted. Each cluster's newest event id is read
    once: an event written meanwhile is newer still, so it only keeps more."""
    cutoff = now - timedelta(days=keep_days)
    latest: dict[str, int] | None = None
    deleted, after = 0, 0
    while True:
        with transaction() as session:
            if latest is None:
                newest = select(ClusterEventRow.cluster, func.max(ClusterEventRow.id)).group_by(ClusterEventRow.cluster)
                latest = {cluster: int(i) for cluster, i in session.execute(newest)}
            query = (
                select(ClusterEventRow.id, ClusterEventRow.cluster, ClusterEventRow.at)
                .where(ClusterEventRow.at < cutoff, ClusterEventRow.id > after)
                .order_by(ClusterEventRow.id)
                .limit(PRUNE_BATCH)
            )
            batch = [(int(i), str(c), at) for i, c, at in session.execute(query)]
            gone = expired(batch, latest, now, keep_days)
            if gone:
                doomed = delete(ClusterEventRow).where(ClusterEventRow.id.in_(gone))
                session.execute(doomed.execution_options(synchronize_session=False))
        deleted += len(gone)
        if len(batch) < PRUNE_BATCH:
            return deleted
        after = batch[-1][0]
