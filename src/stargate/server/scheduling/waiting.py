"""Scheduler loop, step 2c: write why each pending job waits (``jobs.wait_reason`` and ``jobs.wait_detail``).

The engine judges every pending job (:mod:`stargate.engine.waits`, read through the driver: the simulator reads the
same); this step writes the judgements in the decision's transaction, only for the rows whose reason or detail
changed: one ``UPDATE`` per distinct (reason, detail) over the ids that take it, so a cycle over 10,000 pending jobs
that changes nothing writes no row. A job that left pending (placed, rejected, cancelled) has both cleared; one the
engine has not judged yet (stored after the snapshot was taken) keeps what it has. No event is written: waiting is
not a status change, and the job's own ``reason`` and ``detail`` stay those of its last status change.

The detail of ``clusters_down`` says since when and why each cluster is down, e.g. ``waits for lab-h100 (down since
2026-12-01T10:00:00Z: executor local unreachable for 60 s: connection refused)``.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from stargate.domain.reasons import WaitReason
from stargate.engine.waits import Wait
from stargate.server.scheduling.snapshot import Snapshot
from stargate.store import JobRow, JobStatus

PREFIX = "waits for "
"""How the detail of ``clusters_down`` begins."""
MOST_CLUSTERS = 5
"""Down clusters named in one detail at most (then ``… N more``)."""
_CHUNK = 5000
"""Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters per statement)."""

Value = tuple[str | None, str | None]
"""A row's (wait_reason, wait_detail)."""


def write_waits(session: Session, snap: Snapshot, waits: Mapping[str, Wait], pending: Iterable[tuple[int, str]]) -> int:
    """Write the wait reason and detail of the ``pending`` jobs ((row id, public id), pending once the decision is
    written) that changed, from the engine's ``waits``, and clear those of jobs no longer pending; in the caller's
    transaction. Returns the jobs that wait for down clusters."""
    want: dict[int, Value] = {}
    down = 0
    for row_id, job_id in pending:
        wait = waits.get(job_id)
        if wait is None:
            want[row_id] = (None, None)
        elif wait.reason is WaitReason.CLUSTERS_DOWN:
            want[row_id] = (wait.reason.value, waits_text(wait.clusters, snap.down_reasons, snap.down_since))
            down += 1
        else:
            want[row_id] = (wait.reason.value, wait.detail)
    table = cast(Table, JobRow.__table__)
    held = select(table.c.id, table.c.status, table.c.wait_reason, table.c.wait_detail).where(
        table.c.wait_reason.is_not(None)
    )
    changes: dict[Value, list[int]] = {}
    pending_now = (JobStatus.PENDING, JobStatus.PENDING.value)
    for row_id, status, reason, detail in session.execute(held):
        if status not in pending_now:
            changes.setdefault((None, None), []).append(row_id)
        elif (value := want.pop(row_id, None)) is not None and value != (reason, detail):
            changes.setdefault(value, []).append(row_id)
    for row_id, value in want.items():  # pending and holding none: written unless still none
        if value[0] is not None:
            changes.setdefault(value, []).append(row_id)
    for (reason, detail), ids in changes.items():
        only = () if reason is None else (table.c.status == JobStatus.PENDING.value,)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            session.execute(
                update(table).where(table.c.id.in_(chunk), *only).values(wait_reason=reason, wait_detail=detail)
            )
    return down


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
