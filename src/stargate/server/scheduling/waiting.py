"""Scheduler loop, with step 2c: say why a pending job waits when it waits for clusters that are down.

The engine decides which pending jobs wait only for down clusters (:func:`stargate.engine.waiting.waiting_for_down`:
every cluster they could run on now is down); this step writes it as the job's ``detail``, in the decision's
transaction, e.g. ``waits for lab-h100 (down since 2026-12-01T10:00:00Z: executor local unreachable for 60 s:
connection refused)``. A job that no longer waits for one gets back the detail of its last status change. No event
is written: the job's status and reason do not change (its events keep why it became pending).
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from stargate.domain import ClusterStatus
from stargate.engine import FleetIndex
from stargate.engine.waiting import waiting_for_down
from stargate.server.context import ServerContext
from stargate.server.scheduling.snapshot import Snapshot
from stargate.server.terms import ENGINE_EPOCH, engine_seconds
from stargate.store import JobEventRow, JobRow, JobStatus, parse_job_id

PREFIX = "waits for "
"""How every detail this step writes begins (so a later cycle finds the ones to take back)."""
MOST_CLUSTERS = 5
"""Down clusters named in one detail at most (then ``… N more``)."""
_CHUNK = 5000
"""Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters per statement)."""


def write_waits(ctx: ServerContext, session: Session, snap: Snapshot, pending: Iterable[str], now: datetime) -> int:
    """Set the detail of those of the ``pending`` jobs (public ids, pending once the decision is written) that wait
    only for down clusters, and give back their last status change's detail to the pending jobs that no longer do;
    in the caller's transaction. Returns the jobs that wait for down clusters."""
    down = {c.id for c in snap.fleet.clusters if c.status is ClusterStatus.DOWN}
    texts: dict[int, str] = {}
    if down:
        by_id = {t.id: t for t in snap.terms.values()}
        terms = [by_id[job_id] for job_id in pending if job_id in by_id]
        index = _index(ctx, snap)
        for job_id, clusters in waiting_for_down(index, down, engine_seconds(now), terms).items():
            row_id = parse_job_id(job_id)
            if row_id is not None:
                texts[row_id] = waits_text(clusters, snap.down_reasons, snap.down_since)
    table = cast(Table, JobRow.__table__)
    pending_now = (table.c.status == JobStatus.PENDING.value,)
    stale = [
        row_id
        for row_id in session.scalars(
            select(table.c.id).where(*pending_now, table.c.detail.startswith(PREFIX, autoescape=True))
        )
        if row_id not in texts
    ]
    if stale:
        events = cast(Table, JobEventRow.__table__)
        last = (
            select(events.c.detail)
            .where(events.c.job_id == table.c.id)
            .order_by(events.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        for start in range(0, len(stale), _CHUNK):
            chunk = stale[start : start + _CHUNK]
            session.execute(
                update(table).where(table.c.id.in_(chunk), *pending_now).values(detail=func.coalesce(last, ""))
            )
    by_text: dict[str, list[int]] = {}
    for row_id, text in texts.items():
        by_text.setdefault(text, []).append(row_id)
    for text, ids in by_text.items():
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            session.execute(
                update(table).where(table.c.id.in_(chunk), *pending_now, table.c.detail != text).values(detail=text)
            )
    return len(texts)


def waits_text(clusters: tuple[str, ...], reasons: Mapping[str, str], since: Mapping[str, datetime]) -> str:
    """``waits for lab-h100 (down since 2026-12-01T10:00:00Z: executor local unreachable for 60 s: ...)``; a
    cluster the fleet itself marks down reads ``lab-h100 (marked down in the fleet)``; several are separated by
    ``; `` (at most :data:`MOST_CLUSTERS`, then ``… N more``)."""
    parts = []
    for cluster in clusters[:MOST_CLUSTERS]:
        at = since.get(cluster)
        if at is None or cluster not in reasons:
            parts.append(f"{cluster} (marked down in the fleet)")
        else:
            why = f": {reasons[cluster]}" if reasons[cluster] else ""
            parts.append(f"{cluster} (down since {iso_utc(at)}{why})")
    more = f"; … {len(clusters) - MOST_CLUSTERS} more" if len(clusters) > MOST_CLUSTERS else ""
    return PREFIX + "; ".join(parts) + more


def iso_utc(at: datetime) -> str:
    """``at`` as ISO 8601 UTC to the second, e.g. ``2026-12-01T10:00:00Z`` (a naive time is taken as UTC, as SQLite
    gives them back)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _index(ctx: ServerContext, snap: Snapshot) -> FleetIndex:
    """The engine index of the snapshot's fleet version: the loop's, kept across cycles, when it is of this version
    (the loop keeps it by version), else a new one, kept in its place."""
    cached = ctx.loop.index
    if cached is None or cached[0] != snap.version:
        cached = ctx.loop.index = (snap.version, FleetIndex.from_fleet(snap.fleet, epoch=ENGINE_EPOCH))
    return cached[1]
