"""Simulations asked through the API: recorded when accepted, moved along by the server process that runs them.

Every change of status is one conditional ``UPDATE`` (``WHERE status = ...``), so a run cancelled meanwhile is never
written over by the process running it, and that process learns of the cancellation from the update it tried.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from stargate.store.models import SimulationRow, fit_actor

LIVE = ("queued", "running")
"""The statuses of a simulation not yet over."""


def add(session: Session, row: SimulationRow) -> SimulationRow:
    """Record an accepted simulation."""
    row.created_by = fit_actor(row.created_by)
    session.add(row)
    session.flush()
    return row


def get(session: Session, simulation_id: str) -> SimulationRow | None:
    """The simulation ``simulation_id``, or None."""
    return session.get(SimulationRow, simulation_id)


def newest(session: Session, limit: int) -> Sequence[SimulationRow]:
    """Up to ``limit`` simulations, newest first."""
    query = select(SimulationRow).order_by(SimulationRow.created_at.desc(), SimulationRow.id.desc()).limit(limit)
    return session.scalars(query).all()


def _move(session: Session, simulation_id: str, before: tuple[str, ...], **values: Any) -> bool:
    """Set ``values`` on the simulation when its status is one of ``before``; whether it was."""
    statement = (
        update(SimulationRow)
        .where(SimulationRow.id == simulation_id, SimulationRow.status.in_(before))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def start(session: Session, simulation_id: str, now: datetime) -> bool:
    """queued → running at ``now``; False when it is no longer queued (cancelled meanwhile)."""
    return _move(session, simulation_id, ("queued",), status="running", started_at=now, progress=0.0)


def advance(session: Session, simulation_id: str, progress: float) -> bool:
    """Record the progress (0 to 1) of a running simulation; False when it is no longer running (cancelled)."""
    return _move(session, simulation_id, ("running",), progress=progress)


def succeed(session: Session, simulation_id: str, result: dict[str, Any], now: datetime) -> bool:
    """running → succeeded with its summary; False when it is no longer running."""
    return _move(session, simulation_id, ("running",), status="succeeded", progress=1.0, result=result, finished_at=now)


def fail(session: Session, simulation_id: str, error: str, now: datetime, before: tuple[str, ...] = LIVE) -> bool:
    """queued or running → failed with ``error`` (one line); False when it is over already."""
    return _move(session, simulation_id, before, status="failed", error=error, finished_at=now)


def cancel(session: Session, simulation_id: str, now: datetime) -> bool:
    """queued or running → cancelled; False when it is over already."""
    return _move(session, simulation_id, LIVE, status="cancelled", finished_at=now)


def fail_stale(session: Session, runner: str, error: str, now: datetime) -> int:
    """Fail every queued or running simulation of ``runner`` (a server process that stopped: its queue and its run
    died with it); how many."""
    statement = (
        update(SimulationRow)
        .where(SimulationRow.runner == runner, SimulationRow.status.in_(LIVE))
        .values(status="failed", error=error, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def count(session: Session) -> int:
    """How many simulations are stored (tests check that a refused request stored nothing)."""
    return int(session.scalar(select(func.count()).select_from(SimulationRow)) or 0)
